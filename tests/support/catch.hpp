// catch.hpp: the one include of Catch2 for every test file, so that the suites build against Catch2 v2
// (Debian 12) and v3 (Debian 13, Ubuntu 24.04) alike. tests/CMakeLists.txt finds either and defines
// DROPNET_CATCH2_MAJOR on Catch2's target; the names the tests use from v2 are given in v3 as well:
//   Approx            (v3: Catch::Approx)
//   Catch::Contains   (v3: Catch::Matchers::ContainsSubstring)
//   Catch::MatcherBase<T> (v3: Catch::Matchers::MatcherBase<T>)
// A file that defines main() defines DROPNET_CATCH_SESSION before including this header and returns
// Catch::Session().run(argc, argv) (v2 needs CATCH_CONFIG_RUNNER in that file; v3's Catch2 library has it).
#pragma once

#ifndef DROPNET_CATCH2_MAJOR
#if __has_include(<catch2/catch_all.hpp>)
#define DROPNET_CATCH2_MAJOR 3
#else
#define DROPNET_CATCH2_MAJOR 2
#endif
#endif

#if DROPNET_CATCH2_MAJOR >= 3

#include <catch2/catch_all.hpp>

#include <string>

using Catch::Approx;

namespace Catch {
inline Matchers::StringContainsMatcher Contains(const std::string& part,
                                                CaseSensitive sensitivity = CaseSensitive::Yes) {
  return Matchers::ContainsSubstring(part, sensitivity);
}
template <typename T>
using MatcherBase = Matchers::MatcherBase<T>;
}  // namespace Catch

#else

#if defined(DROPNET_CATCH_SESSION) && !defined(CATCH_CONFIG_RUNNER)
#define CATCH_CONFIG_RUNNER
#endif
#include <catch2/catch.hpp>

#endif
