// main.cpp: the dropnet program: dispatches to a command, prints help and the version, and turns every
// failure into one line on stderr ("dropnet: error: ...") and an exit code. Nothing escapes as an abort.
#include <array>
#include <cstdio>
#include <exception>
#include <new>
#include <span>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "programs/args.hpp"
#include "cli/model_commands.hpp"
#include "cli/train_command.hpp"
#include "dropnet/device.hpp"
#include "dropnet/errors.hpp"
#include "dropnet/version.hpp"

namespace dropnet::cli {
namespace {

constexpr const char* kUsage =
    "Usage: dropnet train [flags]      train the seed convnet on CIFAR-10\n"
    "       dropnet evaluate --weights PATH [flags]\n"
    "                                  test loss and accuracy of saved weights\n"
    "       dropnet predict --weights PATH --input FILE [flags]\n"
    "                                  class probabilities of CIFAR-format records\n"
    "       dropnet help [COMMAND]     explain the commands and flags\n"
    "       dropnet --version\n";

std::string general_help() {
  return fmt::format(
      "dropnet {}: Keras-style convnets and dropout studies on CUDA and the CPU.\n\n{}\n"
      "Commands:\n"
      "  train    Train the seed model (the Keras dropout convnet) on CIFAR-10 and report the test\n"
      "           loss and accuracy.\n"
      "  evaluate Test loss and accuracy of weights saved by 'train --save'.\n"
      "  predict  Class probabilities (optionally Monte Carlo dropout) of records of a CIFAR-format file.\n"
      "  help     \"dropnet help COMMAND\" shows the help of train, evaluate or predict.\n\n"
      "Options: -h, --help (this help); -V, --version (print the version).\n\n"
      "{}",
      DROPNET_VERSION_STRING, kUsage, train_help());
}

// One line: newlines inside a library message become spaces.
void print_error(std::string message) {
  for (char& ch : message)
    if (ch == '\n' || ch == '\r') ch = ' ';
  std::fflush(stdout);  // keep the progress already printed before the error
  std::fprintf(stderr, "dropnet: error: %s\n", message.c_str());
}

int dispatch(const std::vector<std::string>& args) {
  if (args.empty()) {
    std::fputs(kUsage, stderr);
    std::fputs("Run 'dropnet --help' for the flags and exit codes.\n", stderr);
    return kExitUsage;
  }
  const std::string& command = args[0];
  const std::span<const std::string> rest(args.data() + 1, args.size() - 1);
  if (command == "--help" || command == "-h" || (command == "help" && rest.empty())) {
    fmt::print("{}", general_help());
    return kExitOk;
  }
  if (command == "help") {
    if (rest.size() == 1 && rest[0] == "train") {
      fmt::print("{}", train_help());
      return kExitOk;
    }
    if (rest.size() == 1 && rest[0] == "evaluate") {
      fmt::print("{}", evaluate_help());
      return kExitOk;
    }
    if (rest.size() == 1 && rest[0] == "predict") {
      fmt::print("{}", predict_help());
      return kExitOk;
    }
    throw UsageError(fmt::format("no help for '{}'; expected 'dropnet help train|evaluate|predict'", rest[0]));
  }
  if (command == "--version" || command == "-V" || command == "version") {
    fmt::print("dropnet {} (CUDA backend {})\n", DROPNET_VERSION_STRING, cuda_compiled() ? "built in" : "not built");
    return kExitOk;
  }
  if (command == "train") {
    return run_train(rest);
  }
  if (command == "evaluate") return run_evaluate(rest);
  if (command == "predict") return run_predict(rest);
  if (command.rfind("-", 0) == 0)
    throw UsageError(fmt::format("unknown option '{}' before a command; expected 'dropnet train [flags]'", command));
  static constexpr std::array<std::string_view, 4> kCommands = {"train", "evaluate", "predict", "help"};
  const std::string hint = suggest_word(command, kCommands);
  if (!hint.empty()) throw UsageError(fmt::format("unknown command '{}'{}", command, hint));
  throw UsageError(fmt::format("unknown command '{}'; expected train, evaluate, predict, help or --version", command));
}

}  // namespace
}  // namespace dropnet::cli

int main(int argc, char** argv) {
  using namespace dropnet::cli;
  try {
    return dispatch(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const UsageError& e) {
    print_error(e.what());
    return kExitUsage;
  } catch (const dropnet::InvalidArgument& e) {
    // A value the library rejects (a rate outside [0, 1], a validation split too large for --limit):
    // the command line is what must change.
    print_error(e.what());
    return kExitUsage;
  } catch (const dropnet::Error& e) {
    print_error(e.what());
    return kExitRuntime;
  } catch (const std::bad_alloc&) {
    print_error("out of memory (try a smaller --batch-size or --limit)");
    return kExitRuntime;
  } catch (const std::exception& e) {
    print_error(fmt::format("internal error: {}", e.what()));
    return kExitRuntime;
  } catch (...) {
    print_error("internal error: unknown exception");
    return kExitRuntime;
  }
}
