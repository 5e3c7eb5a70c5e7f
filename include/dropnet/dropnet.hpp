// dropnet.hpp: the whole public API.
#pragma once

#include "dropnet/cifar10.hpp"
#include "dropnet/constraints.hpp"
#include "dropnet/device.hpp"
#include "dropnet/errors.hpp"
#include "dropnet/initializers.hpp"
#include "dropnet/layers.hpp"
#include "dropnet/model.hpp"
#include "dropnet/optimizers.hpp"
#include "dropnet/tensor.hpp"
#include "dropnet/version.hpp"
