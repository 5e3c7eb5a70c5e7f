// errors.hpp: the exceptions dropnet throws. The library never exits or aborts: every failure is one of
// these, with a message that says what was wrong and what was expected.
#pragma once

#include <stdexcept>
#include <string>

#include "dropnet/export.hpp"

namespace dropnet {

// Base of everything dropnet throws.
class DROPNET_EXPORT Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A bad argument at the API boundary (Keras raises ValueError for these): a dropout rate outside [0, 1],
// a non-positive filter count, an unknown activation name, mismatched shapes.
class DROPNET_EXPORT InvalidArgument : public Error {
 public:
  using Error::Error;
};

// A file that exists but whose content is wrong: truncated, malformed header, bad label byte.
class DROPNET_EXPORT DataError : public Error {
 public:
  using Error::Error;
};

// A file that cannot be opened, read or written.
class DROPNET_EXPORT IoError : public Error {
 public:
  using Error::Error;
};

// A CUDA, cuDNN, cuBLAS or cuRAND call failed; the message names the call and file:line.
class DROPNET_EXPORT DeviceError : public Error {
 public:
  using Error::Error;
};

// The CUDA device was asked for but this build has no CUDA backend or the machine has no GPU.
class DROPNET_EXPORT DeviceUnavailable : public DeviceError {
 public:
  using DeviceError::DeviceError;
};

}  // namespace dropnet
