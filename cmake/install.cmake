# install.cmake: libdropnet as a library other programs link. Included at the end of the top-level
# CMakeLists.txt, once every target exists.
#
#   cmake --install <build> --prefix <prefix>     installs
#     <libdir>/libdropnet.so.0.1.0, libdropnet.so.0 -> , libdropnet.so ->          (component Runtime / Development)
#     <bindir>/dropnet, <bindir>/dropnet-bench                                     (Runtime)
#     <includedir>/dropnet/*.hpp, including the generated export.hpp and version.hpp (Development)
#     <libdir>/cmake/dropnet/dropnet{Config,ConfigVersion,Targets,Targets-<config>}.cmake (Development)
#     <libdir>/pkgconfig/dropnet.pc                                                (Development)
#
# It also sets what only matters for a library others link: the linker version script that keeps the
# dynamic symbol table down to the dropnet API (cmake/dropnet.map), and the RPATHs of the installed files.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)
include(CheckLinkerFlag)

set(DROPNET_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/dropnet" CACHE STRING
    "Where dropnetConfig.cmake goes, relative to the prefix")
set(DROPNET_INSTALL_PKGCONFIGDIR "${CMAKE_INSTALL_LIBDIR}/pkgconfig" CACHE STRING
    "Where dropnet.pc goes, relative to the prefix")
mark_as_advanced(DROPNET_INSTALL_CMAKEDIR DROPNET_INSTALL_PKGCONFIGDIR)

# --- Symbol hygiene of libdropnet.so -------------------------------------------------------------------
# -fvisibility=hidden (set on dropnet_objects) hides our internals; the version script also hides the
# default-visibility code that is not ours (std:: template instantiations, fmt, static runtimes), and
# --exclude-libs keeps the symbols of any static archive linked in (libcudart_static.a, a static fmt) local.
# --no-undefined: the library must name every library it needs, or consumers would fail to link.
set(DROPNET_VERSION_SCRIPT "${PROJECT_SOURCE_DIR}/cmake/dropnet.map")
check_linker_flag(CXX "LINKER:--version-script=${DROPNET_VERSION_SCRIPT}" DROPNET_LINKER_HAS_VERSION_SCRIPT)
if(DROPNET_LINKER_HAS_VERSION_SCRIPT)
  target_link_options(dropnet PRIVATE
    "LINKER:--version-script=${DROPNET_VERSION_SCRIPT}"
    "LINKER:--exclude-libs,ALL"
    "LINKER:--no-undefined")
  set_property(TARGET dropnet APPEND PROPERTY LINK_DEPENDS "${DROPNET_VERSION_SCRIPT}")
else()
  message(WARNING "dropnet: the linker does not take --version-script; libdropnet exports more than its API")
endif()

# --- RPATH -------------------------------------------------------------------------------------------
# Installed programs find libdropnet next door ($ORIGIN/../lib), wherever the prefix is moved to; the
# library and the programs keep the directories of their non-system dependencies (the CUDA toolkit's
# lib64, cuDNN) so that they run without LD_LIBRARY_PATH on the machine they were built for.
file(RELATIVE_PATH _dropnet_bin_to_lib
     "${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}" "${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}")
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(_dropnet_exe_rpath "${CMAKE_INSTALL_LIBDIR}")
else()
  set(_dropnet_exe_rpath "$ORIGIN/${_dropnet_bin_to_lib}")
endif()
set_target_properties(dropnet PROPERTIES INSTALL_RPATH_USE_LINK_PATH ON)
set(_dropnet_programs dropnet_cli)
if(TARGET dropnet-bench)
  list(APPEND _dropnet_programs dropnet-bench)
endif()
set_target_properties(${_dropnet_programs} PROPERTIES
  INSTALL_RPATH "${_dropnet_exe_rpath}"
  INSTALL_RPATH_USE_LINK_PATH ON)

# --- Files -------------------------------------------------------------------------------------------
install(TARGETS dropnet
  EXPORT dropnetTargets
  LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}"
    COMPONENT Runtime
    NAMELINK_COMPONENT Development
  ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT Development
  RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}" COMPONENT Runtime)

install(TARGETS ${_dropnet_programs} RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}" COMPONENT Runtime)

# Public headers only: include/dropnet/ and the two generated ones (src/CMakeLists.txt writes them to
# ${PROJECT_BINARY_DIR}/include/dropnet; its DROPNET_GENERATED_INCLUDE is not visible from here). Private headers (src/, kernels/)
# never leave the source tree.
install(DIRECTORY "${PROJECT_SOURCE_DIR}/include/dropnet"
  DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}"
  COMPONENT Development
  FILES_MATCHING PATTERN "*.hpp")
install(FILES
    "${PROJECT_BINARY_DIR}/include/dropnet/export.hpp"
    "${PROJECT_BINARY_DIR}/include/dropnet/version.hpp"
  DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}/dropnet"
  COMPONENT Development)

# --- CMake package: find_package(dropnet CONFIG) -> dropnet::dropnet ----------------------------------
# The imported target carries the include directory and cxx_std_20. fmt is compiled into the library
# (header-only); zlib, OpenBLAS and the CUDA libraries are private dependencies of a shared library: they are not link requirements of consumers
# (the dynamic loader finds them through libdropnet.so's DT_NEEDED and RUNPATH), so the package does not
# look for them.
install(EXPORT dropnetTargets
  NAMESPACE dropnet::
  DESTINATION "${DROPNET_INSTALL_CMAKEDIR}"
  COMPONENT Development)

configure_package_config_file(
  "${PROJECT_SOURCE_DIR}/cmake/dropnetConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/cmake/dropnetConfig.cmake"
  INSTALL_DESTINATION "${DROPNET_INSTALL_CMAKEDIR}")
# 0.x: a minor release may break the API, so 0.1 accepts only 0.1.*; from 1.0 on, the same major.
if(PROJECT_VERSION_MAJOR EQUAL 0)
  set(_dropnet_compat SameMinorVersion)
else()
  set(_dropnet_compat SameMajorVersion)
endif()
write_basic_package_version_file(
  "${PROJECT_BINARY_DIR}/cmake/dropnetConfigVersion.cmake"
  VERSION "${PROJECT_VERSION}"
  COMPATIBILITY ${_dropnet_compat})
install(FILES
    "${PROJECT_BINARY_DIR}/cmake/dropnetConfig.cmake"
    "${PROJECT_BINARY_DIR}/cmake/dropnetConfigVersion.cmake"
  DESTINATION "${DROPNET_INSTALL_CMAKEDIR}"
  COMPONENT Development)

# --- pkg-config: dropnet.pc --------------------------------------------------------------------------
# Written at install time, so that its paths are those of the prefix actually installed to
# (cmake --install --prefix may differ from the CMAKE_INSTALL_PREFIX configured).
set(_dropnet_pc_staged "${PROJECT_BINARY_DIR}/pkgconfig/dropnet.pc")
install(CODE "
  set(PROJECT_NAME [[${PROJECT_NAME}]])
  set(PROJECT_VERSION [[${PROJECT_VERSION}]])
  set(PROJECT_DESCRIPTION [[${PROJECT_DESCRIPTION}]])
  set(DROPNET_WITH_CUDA [[${DROPNET_WITH_CUDA}]])
  set(DROPNET_PC_PREFIX \"\${CMAKE_INSTALL_PREFIX}\")
  if(IS_ABSOLUTE [[${CMAKE_INSTALL_LIBDIR}]])
    set(DROPNET_PC_LIBDIR [[${CMAKE_INSTALL_LIBDIR}]])
  else()
    set(DROPNET_PC_LIBDIR [[\${prefix}/${CMAKE_INSTALL_LIBDIR}]])
  endif()
  if(IS_ABSOLUTE [[${CMAKE_INSTALL_INCLUDEDIR}]])
    set(DROPNET_PC_INCLUDEDIR [[${CMAKE_INSTALL_INCLUDEDIR}]])
  else()
    set(DROPNET_PC_INCLUDEDIR [[\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}]])
  endif()
  configure_file([[${PROJECT_SOURCE_DIR}/cmake/dropnet.pc.in]] [[${_dropnet_pc_staged}]] @ONLY)
" COMPONENT Development)
install(FILES "${_dropnet_pc_staged}" DESTINATION "${DROPNET_INSTALL_PKGCONFIGDIR}" COMPONENT Development)
