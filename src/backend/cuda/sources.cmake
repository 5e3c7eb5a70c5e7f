# The CUDA backend: host code that calls cuDNN, cuBLAS and the kernels (.cpp, compiled by the C++
# compiler) and the kernels themselves (kernels/*.cu, compiled by nvcc). Included from src/CMakeLists.txt.
# The lists are also what the test-only emulated device compiles (tests/emulated_device/CMakeLists.txt),
# the kernels there as host C++.
set(DROPNET_CUDA_HOST_SOURCES
  backend/cuda/cuda_check.cpp
  backend/cuda/device_resources.cpp
  backend/cuda/device_context.cpp
  backend/cuda/conv_cudnn.cpp
  backend/cuda/pool_cudnn.cpp
  backend/cuda/dense_cublas.cpp
  backend/cuda/cuda_backend.cpp
  backend/cuda/cuda_ops.cpp
  backend/cuda/noise_ops.cpp
  backend/cuda/dropblock_ops.cpp
  backend/cuda/batch_norm_cudnn.cpp
  backend/cuda/cuda_device.cpp
  backend/cuda/cuda_memory.cpp
  backend/cuda/graph.cpp)
list(TRANSFORM DROPNET_CUDA_HOST_SOURCES PREPEND ${CMAKE_CURRENT_SOURCE_DIR}/)
set(DROPNET_CUDA_KERNEL_SOURCES
  elementwise.cu
  dropout.cu
  noise.cu
  dropblock.cu
  adam.cu
  maxnorm.cu
  softmax_xent.cu
  loss.cu
  gather.cu
  step.cu
  batch_norm.cu
  avg_pool.cu)
list(TRANSFORM DROPNET_CUDA_KERNEL_SOURCES PREPEND ${PROJECT_SOURCE_DIR}/kernels/)
set(DROPNET_CUDA_HOST_SOURCES ${DROPNET_CUDA_HOST_SOURCES} PARENT_SCOPE)
set(DROPNET_CUDA_KERNEL_SOURCES ${DROPNET_CUDA_KERNEL_SOURCES} PARENT_SCOPE)

if(DROPNET_WITH_CUDA)
  # The kernels are C++17: CMake 3.25 knows no C++20 flag for nvcc, and a target that requires "CUDA20"
  # (which cxx_std_20 on a target holding CUDA objects implies) fails to generate. The directory default
  # covers dropnet_objects and the libraries made from its objects; the .cu files need nothing newer.
  set(CMAKE_CUDA_STANDARD 17)
  set(CMAKE_CUDA_STANDARD_REQUIRED ON)
  # Adam without FMA contraction: nvcc fuses a * b + c into one fma by default (-fmad=true), which rounds
  # once where the CPU backend's float code rounds twice; -fmad=false makes the GPU's Adam the CPU's bit for
  # bit. The kernel is bound by memory, so the two extra roundings cost nothing measurable.
  set_source_files_properties(${PROJECT_SOURCE_DIR}/kernels/adam.cu PROPERTIES COMPILE_OPTIONS -fmad=false)
  # The normal draws (kernels/normal_math.hpp) likewise: every multiply-add there is an explicit fmaf, and
  # -fmad=false keeps nvcc from fusing anything else, so the GPU's normals are the CPU's bit for bit.
  set_source_files_properties(${PROJECT_SOURCE_DIR}/kernels/noise.cu PROPERTIES COMPILE_OPTIONS -fmad=false)
endif()

# Adds the CUDA backend (host sources and nvcc-compiled kernels) to `target`.
function(dropnet_add_cuda_backend target)
  target_sources(${target} PRIVATE ${DROPNET_CUDA_HOST_SOURCES} ${DROPNET_CUDA_KERNEL_SOURCES})
  set_target_properties(${target} PROPERTIES
    CUDA_STANDARD 17
    CUDA_STANDARD_REQUIRED ON
    # The libraries link the shared cudart (CUDA::cudart); keep nvcc's objects on the same runtime.
    CUDA_RUNTIME_LIBRARY Shared)
  # No --use_fast_math: dropout must divide by keep_prob exactly as the CPU does (IEEE division), and the
  # Philox uniform must round as on the host, for the masks and outputs to be bit-identical.
  # -Wno-unknown-pragmas: nvcc's host pass sees the `#pragma unroll` of the shared __host__ __device__ headers.
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra,-Wno-unknown-pragmas>)
endfunction()
