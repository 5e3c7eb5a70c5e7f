// main.cpp: Catch2's runner for the CPU suite (v2 or v3: support/catch.hpp).
#define DROPNET_CATCH_SESSION
#include "support/catch.hpp"

int main(int argc, char* argv[]) { return Catch::Session().run(argc, argv); }
