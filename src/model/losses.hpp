// losses.hpp: how compile() turns CompileOptions' loss and metrics into the loss op the training step
// issues (Backend::loss or, on a softmax head, its logits), and what y must look like.
#pragma once

#include <cstdint>
#include <string>

#include "backend/backend.hpp"
#include "dropnet/model.hpp"

namespace dropnet {

struct LossSetup {
  bool defined = false;          // a loss was given (else the model is for inference only)
  std::string loss_name;         // as given (for messages)
  backend::LossCall call;        // kind, sparse, metric (grad_scale is set per batch)
  // The loss goes from the last layer's logits (a softmax head with categorical cross-entropy on
  // probabilities: kernels/softmax_xent_math.hpp or the loss op's CategoricalLogits, unclipped) and backward
  // starts at Layer::backward_from_logits; else from the output, and backward starts at Layer::backward.
  bool from_softmax_logits = false;
  // From the logits through Backend::softmax_cross_entropy (dense targets, one row per sample): the path
  // every model had before the other losses, kept bit for bit.
  bool softmax_xent_op = false;
  std::string metric_name;       // the metric's key in the logs, "" for none
  bool metric_is_accuracy = false;
  std::int64_t rows_per_sample = 1;  // rows of the output's last axis per sample
  std::int64_t label_width = 1;      // target values per sample
};

// Checks the names (loss, metrics) before anything is built; InvalidArgument for an unknown one.
void check_loss_names(const CompileOptions& options);
// Resolves the loss and metric for a model whose output (without the batch axis) is `output_shape` and whose
// last layer is a softmax (`softmax_head`). InvalidArgument for a metric that does not fit the loss.
LossSetup resolve_loss(const CompileOptions& options, const Shape& output_shape, bool softmax_head);
// Checks y (the targets of x's N samples) against the loss: its shape, and for the sparse loss, when y is on
// the host, that every value is a class index. `what` names the caller.
void check_targets(const LossSetup& setup, const Shape& output_shape, const Tensor& y, std::int64_t n,
                   const char* what);

}  // namespace dropnet
