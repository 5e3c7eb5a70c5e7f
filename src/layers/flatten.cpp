// flatten.cpp: keras.layers.Flatten. NHWC row-major order is Keras' channels_last order, so flattening
// moves no data; the copy keeps each layer's output in its own buffer.
#include "layers/layer_util.hpp"

namespace dropnet {

Shape Flatten::build(const Shape& in, std::uint64_t) { return finish_build(in, {element_count(in)}); }

void Flatten::forward(const Tensor& x, Tensor& y, RunContext& ctx) { layer_util::copy(ctx, y, x); }

void Flatten::backward(const Tensor&, const Tensor&, const Tensor& dy, Tensor* dx, RunContext& ctx) {
  if (dx != nullptr) layer_util::copy(ctx, *dx, dy);
}

}  // namespace dropnet
