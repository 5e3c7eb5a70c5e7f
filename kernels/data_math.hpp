// data_math.hpp: how a byte of an image becomes the float the model sees, on both backends and in the
// data set loaders: float(b) / 255.0f, an IEEE division (not a multiplication by 1/255, which rounds
// differently for some b), so that a batch gathered on the GPU, on the CPU or read by the CIFAR-10
// loader holds the same bits.
#pragma once

#include <cstdint>

#include "hd.hpp"

namespace dropnet::kernels {

DROPNET_HD float unit_from_byte(std::uint8_t b) { return static_cast<float>(b) / 255.0f; }

}  // namespace dropnet::kernels
