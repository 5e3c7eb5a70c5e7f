# dropnet-bench's sources: built as dropnet-bench (benchmarks/CMakeLists.txt) and, on the emulated device, as
# dropnet-bench-emulated (tests/emulated_device/CMakeLists.txt: sweep --concurrent with runs on their own
# streams, tests/bench/test_sweep_emulated.sh).
set(DROPNET_BENCH_SOURCES
  main.cpp
  bench_util.cpp
  sweep.cpp
  study_variants.cpp
  sweep_report.cpp
  study_analysis.cpp
  study_records.cpp
  study_merge.cpp
  slurm.cpp
  study_stats.cpp
  kernels_bench.cpp
  throughput_bench.cpp
  throughput_concurrent.cpp)
list(TRANSFORM DROPNET_BENCH_SOURCES PREPEND ${CMAKE_CURRENT_LIST_DIR}/)
