# The CUDA test suite's sources: built as dropnet_cuda_tests (tests/cuda/CMakeLists.txt, a real GPU) and as
# dropnet_cuda_tests_emulated (tests/emulated_device/CMakeLists.txt, the emulated device): the same tests.
set(DROPNET_CUDA_TEST_SOURCES
  main.cpp
  test_layer_ops.cpp
  test_training_ops.cpp
  test_loss_ops.cpp
  test_loss_model.cpp
  test_curand_mask.cpp
  test_noise_ops.cpp
  test_model_training.cpp
  test_seed_model_probe.cpp
  test_step_graph.cpp
  test_step_graph_model.cpp
  test_backend_contexts.cpp
  test_concurrent_models.cpp
  test_dropblock_ops.cpp
  test_layer_call.cpp
  test_norm_pool_ops.cpp)
list(TRANSFORM DROPNET_CUDA_TEST_SOURCES PREPEND ${CMAKE_CURRENT_LIST_DIR}/)
