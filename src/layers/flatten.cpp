// flatten.cpp: keras.layers.Flatten. NHWC row-major order is Keras' channels_last order, so flattening
// moves no data; the copy keeps each layer's output in its own buffer.
#include "layers/layer_util.hpp"

namespace dropnet {

Shape Flatten::build(const Shape& in, std::uint64_t) { return finish_build(in, {element_count(in)}); }

void Flatten::forward(const Tensor& x, Tensor& y, RunContext&) { y.copy_from(x); }

void Flatten::backward(const Tensor&, const Tensor&, const Tensor& dy, Tensor* dx, RunContext&) {
  if (dx != nullptr) dx->copy_from(dy);
}

}  // namespace dropnet
