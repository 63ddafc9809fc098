# CUDA backend build support: the gcnet::cuda target for programs that use Tensor<T, Cuda>
# (included by the top CMakeLists.txt when GCNET_CUDA is ON).
#
# One architecture by default: CUDA 13 dropped the pre-Turing ones, CMake 3.25 does not know
# CUDA 13's defaults, and every extra architecture multiplies nvcc time. The target GPUs are
# Hopper (H100/H200, sm_90); pass -DCMAKE_CUDA_ARCHITECTURES=... (or set CUDAARCHS) for others.
if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES AND NOT DEFINED ENV{CUDAARCHS})
  set(CMAKE_CUDA_ARCHITECTURES 90)
endif()
enable_language(CUDA)
find_package(CUDAToolkit REQUIRED)
# gcnet::cuda links the shared runtime (CUDA::cudart) for host-compiled users; .cu targets
# must use the same one, not CMake's default static copy (two runtimes, two states).
if(NOT DEFINED CMAKE_CUDA_RUNTIME_LIBRARY)
  set(CMAKE_CUDA_RUNTIME_LIBRARY Shared)
endif()

add_library(gcnet_cuda INTERFACE)
add_library(gcnet::cuda ALIAS gcnet_cuda)
set_target_properties(gcnet_cuda PROPERTIES EXPORT_NAME cuda)
target_link_libraries(gcnet_cuda INTERFACE gcnet::gcnet CUDA::cudart CUDA::cublas)
target_compile_definitions(gcnet_cuda INTERFACE GCNET_WITH_CUDA)
target_compile_options(gcnet_cuda INTERFACE
  # .cu files need C++20 like .cpp files. CMake 3.25 knows no cuda_std_20 for nvcc, so the
  # flag is given directly, unless the consuming target chose a CUDA_STANDARD itself.
  $<$<AND:$<COMPILE_LANGUAGE:CUDA>,$<STREQUAL:$<TARGET_PROPERTY:CUDA_STANDARD>,>>:-std=c++20>
  # Kernel bodies are [=] GCNET_HD lambdas launched from host code (gcnet/cuda/launch.cuh).
  $<$<COMPILE_LANGUAGE:CUDA>:--extended-lambda>
  $<$<COMPILE_LANGUAGE:CUDA>:--expt-relaxed-constexpr>
  # for_each_index(Cpu) in .cu files stays OpenMP-parallel (OpenMP::OpenMP_CXX covers CXX only).
  $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-fopenmp>)

# NCCL (for cross-GPU SyncBN later): optional, exposed as gcnet::nccl when found.
find_path(GCNET_NCCL_INCLUDE_DIR nccl.h
  HINTS ${CUDAToolkit_INCLUDE_DIRS} PATHS /usr/include /usr/local/cuda/include)
find_library(GCNET_NCCL_LIBRARY nccl
  HINTS ${CUDAToolkit_LIBRARY_DIR} PATHS /usr/lib/x86_64-linux-gnu /usr/local/cuda/lib64)
mark_as_advanced(GCNET_NCCL_INCLUDE_DIR GCNET_NCCL_LIBRARY)
if(GCNET_NCCL_INCLUDE_DIR AND GCNET_NCCL_LIBRARY)
  set(GCNET_HAVE_NCCL ON)
  add_library(gcnet::nccl UNKNOWN IMPORTED)
  set_target_properties(gcnet::nccl PROPERTIES
    IMPORTED_LOCATION "${GCNET_NCCL_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${GCNET_NCCL_INCLUDE_DIR}"
    INTERFACE_COMPILE_DEFINITIONS GCNET_WITH_NCCL)
  message(STATUS "gcnet: NCCL found (${GCNET_NCCL_LIBRARY}); gcnet::nccl available")
else()
  set(GCNET_HAVE_NCCL OFF)
  message(STATUS "gcnet: NCCL not found; gcnet::nccl not defined")
endif()

message(STATUS "gcnet: CUDA backend on (nvcc ${CMAKE_CUDA_COMPILER_VERSION}, "
               "architectures ${CMAKE_CUDA_ARCHITECTURES})")

# Installed as a second export set: find_package(gcnet) loads it (with CUDAToolkit) when present.
install(TARGETS gcnet_cuda EXPORT gcnetCudaTargets)
install(EXPORT gcnetCudaTargets NAMESPACE gcnet:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/gcnet)
