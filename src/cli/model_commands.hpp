// model_commands.hpp: `dropnet evaluate` and `dropnet predict`, which load saved weights into the seed model.
#pragma once

#include <span>
#include <string>

namespace dropnet::cli {

std::string evaluate_help();
std::string predict_help();

// Return the exit code; throw UsageError for a bad command line and let dropnet::Error through.
int run_evaluate(std::span<const std::string> args);
int run_predict(std::span<const std::string> args);

}  // namespace dropnet::cli
