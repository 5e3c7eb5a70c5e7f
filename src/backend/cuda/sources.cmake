# The CUDA backend: host code that calls cuDNN, cuBLAS and the kernels (.cpp, compiled by the C++
# compiler) and the kernels themselves (kernels/*.cu, compiled by nvcc). Included from src/CMakeLists.txt
# when DROPNET_WITH_CUDA; paths are relative to src/.
target_sources(dropnet_objects PRIVATE
  backend/cuda/cuda_check.cpp
  backend/cuda/device_resources.cpp
  backend/cuda/device_context.cpp
  backend/cuda/conv_cudnn.cpp
  backend/cuda/pool_cudnn.cpp
  backend/cuda/dense_cublas.cpp
  backend/cuda/cuda_backend.cpp
  backend/cuda/cuda_ops.cpp
  backend/cuda/cuda_entry.cpp
  backend/cuda/graph.cpp
  ${PROJECT_SOURCE_DIR}/kernels/elementwise.cu
  ${PROJECT_SOURCE_DIR}/kernels/dropout.cu
  ${PROJECT_SOURCE_DIR}/kernels/adam.cu
  ${PROJECT_SOURCE_DIR}/kernels/maxnorm.cu
  ${PROJECT_SOURCE_DIR}/kernels/softmax_xent.cu
  ${PROJECT_SOURCE_DIR}/kernels/gather.cu
  ${PROJECT_SOURCE_DIR}/kernels/step.cu)

# The kernels are C++17: CMake 3.25 knows no C++20 flag for nvcc, and a target that requires "CUDA20"
# (which cxx_std_20 on a target holding CUDA objects implies) fails to generate. The directory default
# below covers dropnet_objects and the libraries made from its objects; the .cu files need nothing newer.
set(CMAKE_CUDA_STANDARD 17)
set(CMAKE_CUDA_STANDARD_REQUIRED ON)
set_target_properties(dropnet_objects PROPERTIES
  CUDA_STANDARD 17
  CUDA_STANDARD_REQUIRED ON
  # The libraries link the shared cudart (CUDA::cudart); keep nvcc's objects on the same runtime.
  CUDA_RUNTIME_LIBRARY Shared)

# No --use_fast_math: dropout must divide by keep_prob exactly as the CPU does (IEEE division), and the
# Philox uniform must round as on the host, for the masks and outputs to be bit-identical.
# -Wno-unknown-pragmas: nvcc's host pass sees the `#pragma unroll` of the shared __host__ __device__ headers.
target_compile_options(dropnet_objects PRIVATE
  $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra,-Wno-unknown-pragmas>)

# Adam without FMA contraction: nvcc fuses a * b + c into one fma by default (-fmad=true), which rounds once
# where the CPU backend's float code rounds twice; -fmad=false makes the GPU's Adam the CPU's bit for bit.
# The kernel is bound by memory, so the two extra roundings cost nothing measurable.
set_source_files_properties(${PROJECT_SOURCE_DIR}/kernels/adam.cu PROPERTIES COMPILE_OPTIONS -fmad=false)
