// checkpoint.hpp: saving and loading weights and training checkpoints as safetensors files, and the
// Keras-style callbacks built on them (ModelCheckpoint, CSVLogger, TerminateOnNaN).
//
//   dropnet::save_weights(model, "model.safetensors");          // weights only, Keras names and layouts
//   dropnet::load_weights(other, "model.safetensors");          // other: the same architecture, compiled
//
//   // Resumable training: weights, Adam moments and iterations, each Dropout layer's step, the epoch (and
//   // batch within it), the model seed and the History so far.
//   dropnet::save_checkpoint(model, "run.safetensors");         // where the last fit stands
//   dropnet::TrainingState s = dropnet::read_training_state("run.safetensors");   // seed, epoch, ...
//   fresh.compile({.loss = "categorical_crossentropy", .seed = s.seed});  // same architecture and seed
//   dropnet::load_checkpoint(fresh, "run.safetensors");
//   dropnet::FitOptions o{.epochs = 10};
//   dropnet::resume_from(o, s);                                 // initial_epoch, initial_step, totals
//   fresh.fit(x, y, o);                                         // bit for bit what one run would give
//
// Weights are stored as "<layer>/kernel" and "<layer>/bias" (F32, Keras layouts: Conv2D kernel
// (rows, cols, in, filters), Dense kernel (in, units)). docs/robustness.md lists every tensor of a
// checkpoint and the Python lines that load the weights into the equivalent Keras model.
//
// Writes are atomic (temporary file, fsync, rename, directory fsync): a crash during a save leaves the
// previous file intact. Every load checks the file completely (a malformed file is a DataError naming the
// file and the problem) and checks names, shapes and dtypes against the model before changing anything.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include "dropnet/errors.hpp"
#include "dropnet/export.hpp"
#include "dropnet/model.hpp"

namespace dropnet {

// Where a training run stands, as a checkpoint records it.
struct TrainingState {
  int epoch = 0;           // the epoch to resume at (the one in progress when step > 0), counted from 0
  std::int64_t step = 0;   // batches of `epoch` already done (0: at the start of `epoch`)
  EpochTotals totals;      // the metric sums of those batches
  History history;         // every completed epoch
  std::uint64_t seed = 0;          // the model's seed (compile with it to resume); taken from the model on save
  std::int64_t iterations = 0;     // optimizer steps; taken from the model on save
  std::map<std::string, std::string> metadata;  // the caller's own strings (keys must not start "dropnet.")
};

// The state of `model` after its last fit (or load_checkpoint): epoch, step, totals and history; seed and
// iterations from the model. A model that never trained is at epoch 0, step 0.
DROPNET_EXPORT TrainingState training_state(const Sequential& model);

// Sets initial_epoch, initial_step and initial_totals of `options` to continue from `state`.
DROPNET_EXPORT void resume_from(FitOptions& options, const TrainingState& state);

// Weights only, under Keras names. `metadata` goes into the header (keys must not start "dropnet.").
// Throws InvalidArgument for an uncompiled model, IoError when the file cannot be written.
DROPNET_EXPORT void save_weights(const Sequential& model, const std::filesystem::path& path,
                                 const std::map<std::string, std::string>& metadata = {});

// Loads the weights of a weights file or a checkpoint into a compiled model of the same architecture.
// Every weight of the model must be in the file with its shape and dtype F32, and the file may hold no
// weight the model lacks; otherwise a DataError lists every mismatch and the model is unchanged.
DROPNET_EXPORT void load_weights(Sequential& model, const std::filesystem::path& path);

// A resumable checkpoint: the weights, "optimizer/<layer>/<param>/m" and ".../v", "optimizer/iterations",
// "<dropout layer>/seed_generator_state" ([seed, step], as Keras' SeedGenerator), the training position
// and History ("training/...", "history/..."). The epoch, step, totals, history and metadata come from
// `state`; the seed, iterations, moments and dropout steps from the model.
DROPNET_EXPORT void save_checkpoint(const Sequential& model, const std::filesystem::path& path,
                                    const TrainingState& state);
// The same with training_state(model).
DROPNET_EXPORT void save_checkpoint(const Sequential& model, const std::filesystem::path& path);

// Restores everything save_checkpoint wrote into a compiled model of the same architecture, compiled
// with the checkpoint's seed (read_training_state tells it), and returns the training state. A DataError
// lists every mismatch (names, shapes, dtypes, seeds) and leaves the model unchanged.
DROPNET_EXPORT TrainingState load_checkpoint(Sequential& model, const std::filesystem::path& path);

// The training state and metadata of a checkpoint, without a model (to compile with the right seed).
DROPNET_EXPORT TrainingState read_training_state(const std::filesystem::path& path);

// The __metadata__ of any safetensors file (the "dropnet.*" keys included).
DROPNET_EXPORT std::map<std::string, std::string> read_metadata(const std::filesystem::path& path);

// ---------------------------------------------------------------------------------------------------
// Callbacks.

// A NaN or infinite loss: thrown by TerminateOnNaN out of fit.
class DROPNET_EXPORT TrainingDiverged : public Error {
 public:
  TrainingDiverged(const std::string& message, int epoch, int batch) : Error(message), epoch(epoch), batch(batch) {}
  int epoch;  // counted from 0
  int batch;  // counted from 0 within the epoch
};

// keras.callbacks.TerminateOnNaN: after each batch, a NaN or infinite running loss ends fit by throwing
// TrainingDiverged ("epoch 3 (of 1..), batch 17: the loss is nan ..."). Throwing rather than setting
// stop_training keeps the epoch-end callbacks (checkpoints) from saving diverged weights.
class DROPNET_EXPORT TerminateOnNaN : public Callback {
 public:
  void on_epoch_begin(int epoch) override { epoch_ = epoch; }
  // Every batch's loss: fit then reads its running sums after every batch (a host wait per step on a GPU).
  bool wants_batch_logs() const override { return true; }
  void on_batch_end(int batch, const Logs& logs) override;

 private:
  int epoch_ = 0;
};

struct ModelCheckpointOptions {
  std::string monitor = "val_loss";  // with save_best_only: the log minimised
  bool save_best_only = false;       // save only when `monitor` improves on the best so far
  bool save_weights_only = false;    // save_weights instead of save_checkpoint
  // The best value to beat at the start (Keras' initial_value_threshold): when resuming, the best of
  // the history so far.
  std::optional<double> initial_value_threshold;
  std::map<std::string, std::string> metadata;  // passed to every save
};

// keras.callbacks.ModelCheckpoint: saves at the end of every epoch (or when `monitor` improved). Without
// save_weights_only the file is a resumable checkpoint. With save_best_only and `monitor` missing from the
// logs (no validation data), nothing is saved and `skipped()` says so.
class DROPNET_EXPORT ModelCheckpoint : public Callback {
 public:
  explicit ModelCheckpoint(std::filesystem::path path, ModelCheckpointOptions options = {});
  void on_train_begin(Sequential& model) override { model_ = &model; }
  void on_epoch_end(int epoch, const Logs& logs) override;

  const std::filesystem::path& path() const noexcept { return path_; }
  std::optional<double> best() const noexcept { return best_; }
  // The epoch (from 0) of the last save, if any.
  std::optional<int> last_saved_epoch() const noexcept { return last_saved_; }
  bool skipped() const noexcept { return skipped_; }

 private:
  std::filesystem::path path_;
  ModelCheckpointOptions options_;
  Sequential* model_ = nullptr;
  std::optional<double> best_;
  std::optional<int> last_saved_;
  bool skipped_ = false;
};

// keras.callbacks.CSVLogger: one row per epoch, "epoch,<sorted log keys>" (epoch,accuracy,loss,
// val_accuracy,val_loss), written and flushed at each epoch end so that an interrupted run keeps its
// history. With append, the file is first rewritten atomically to hold exactly the model's History so far
// (training_state(model).history: after load_checkpoint, the resumed run's earlier epochs), so that after
// a resume it matches the checkpoint, with no missing or repeated rows; otherwise it starts anew.
class DROPNET_EXPORT CSVLogger : public Callback {
 public:
  explicit CSVLogger(std::filesystem::path path, bool append = false, char separator = ',');
  ~CSVLogger() override;
  void on_train_begin(Sequential& model) override;
  void on_epoch_end(int epoch, const Logs& logs) override;
  void on_train_end(const Logs& logs) override;

 private:
  void write_row(int epoch, const Logs& logs);
  std::filesystem::path path_;
  bool append_;
  char separator_;
  std::FILE* file_ = nullptr;
  std::vector<std::string> keys_;
};

}  // namespace dropnet
