# git_commit.cmake: run at every build (benchmarks/CMakeLists.txt's dropnet_git_commit target) to write OUT,
# a header defining DROPNET_GIT_COMMIT as the checkout's commit (12 hex digits, "-dirty" when tracked files
# differ from it, "unknown" outside a git checkout). The file is rewritten only when that text changes, so an
# unchanged commit recompiles nothing; a new commit recompiles the one file that records it.
execute_process(COMMAND git -C ${SOURCE_DIR} rev-parse --short=12 HEAD
                OUTPUT_VARIABLE commit OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE failed)
if(failed OR NOT commit)
  set(commit unknown)
else()
  execute_process(COMMAND git -C ${SOURCE_DIR} diff-index --quiet HEAD -- RESULT_VARIABLE dirty ERROR_QUIET)
  if(dirty)
    set(commit "${commit}-dirty")
  endif()
endif()
set(text "// Written by cmake/git_commit.cmake at build time.\n#pragma once\n#define DROPNET_GIT_COMMIT \"${commit}\"\n")
if(EXISTS ${OUT})
  file(READ ${OUT} old)
endif()
if(NOT "${old}" STREQUAL "${text}")
  file(WRITE ${OUT} "${text}")
endif()
