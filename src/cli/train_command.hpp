// train_command.hpp: `dropnet train`, the seed program (the Keras dropout convnet on CIFAR-10).
#pragma once

#include <span>
#include <string>

namespace dropnet::cli {

// The help text of `dropnet train` (usage, every flag with its default, the default data lookup).
std::string train_help();

// Runs `dropnet train` with the words after "train". Returns the exit code; throws UsageError for a bad
// command line and lets the library's dropnet::Error through (main() turns both into one line).
int run_train(std::span<const std::string> args);

}  // namespace dropnet::cli
