# The CUDA backend builds whenever nvcc is present (KILN_CUDA=AUTO), or must
# (ON), or never (OFF). CI builds sm_90 only; the GPU machine may add others
# through CMAKE_CUDA_ARCHITECTURES.
set(KILN_HAVE_CUDA OFF)
if(NOT KILN_CUDA STREQUAL "OFF")
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 90)
    endif()
    # C++17 for device code: CMake before 3.26 does not know that nvcc 12+
    # takes C++20, and the kernels need nothing newer.
    set(CMAKE_CUDA_STANDARD 17)
    set(CMAKE_CUDA_STANDARD_REQUIRED ON)
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    set(KILN_HAVE_CUDA ON)
  elseif(KILN_CUDA STREQUAL "ON")
    message(FATAL_ERROR "KILN_CUDA=ON but no CUDA compiler (nvcc) was found")
  endif()
endif()
message(STATUS "kiln: CUDA backend ${KILN_HAVE_CUDA}")

if(KILN_HAVE_CUDA)
  file(GLOB_RECURSE KILN_CUDA_SRC CONFIGURE_DEPENDS
       ${PROJECT_SOURCE_DIR}/src/backends/cuda/*.cu ${PROJECT_SOURCE_DIR}/src/backends/cuda/*.cpp)
endif()
if(KILN_HAVE_CUDA AND NOT KILN_CUDA_SRC)
  message(STATUS "kiln: no CUDA sources yet; the CUDA backend is empty")
  set(KILN_HAVE_CUDA OFF)
endif()
if(KILN_HAVE_CUDA)
  # cuDNN 9 (the graph API) comes from the distribution's or NVIDIA's packages.
  find_path(KILN_CUDNN_INCLUDE cudnn.h HINTS ${CUDAToolkit_INCLUDE_DIRS} PATH_SUFFIXES x86_64-linux-gnu)
  find_library(KILN_CUDNN_LIBRARY cudnn HINTS ${CUDAToolkit_LIBRARY_DIR})
  if(NOT KILN_CUDNN_INCLUDE OR NOT KILN_CUDNN_LIBRARY)
    set(_kiln_cudnn_hint "the CUDA backend needs cuDNN 9 (NVIDIA's apt repository: cudnn9-cuda-13)")
    if(KILN_CUDA STREQUAL "ON")
      message(FATAL_ERROR "kiln: ${_kiln_cudnn_hint}")
    endif()
    message(STATUS "kiln: ${_kiln_cudnn_hint}; building without the CUDA backend")
    set(KILN_HAVE_CUDA OFF)
  endif()
endif()
if(KILN_HAVE_CUDA)
  # An object library: its kernels register themselves from static
  # initializers, which must all reach kiln_runtime (a static archive would
  # drop the files nothing references).
  add_library(kiln_cuda OBJECT ${KILN_CUDA_SRC})
  target_include_directories(kiln_cuda PUBLIC ${PROJECT_SOURCE_DIR}/include ${PROJECT_SOURCE_DIR}/src ${KILN_CUDNN_INCLUDE})
  # NVRTC compiles the fused elementwise kernels (nvrtc_codegen.h); it needs no GPU.
  target_link_libraries(kiln_cuda PUBLIC CUDA::cudart CUDA::cublasLt CUDA::nvrtc ${KILN_CUDNN_LIBRARY} fmt::fmt)
  set_target_properties(kiln_cuda PROPERTIES POSITION_INDEPENDENT_CODE ON CUDA_SEPARABLE_COMPILATION OFF)
  target_compile_options(kiln_cuda PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:--expt-relaxed-constexpr>)
  if(KILN_PTXAS_VERBOSE)
    target_compile_options(kiln_cuda PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-Xptxas=-v>)
  endif()
  # The cuDNN frontend (header-only; scripts/install_deps.sh unpacks its
  # include/ into .deps/cudnn_frontend/include) gives Attention its "cudnn"
  # tactic, cuDNN's fused attention, and kiln.FusedMatMul its "cudnn:<i>"
  # ones (the product with the exact Gelu fused). Only ops/cudnn_attention.cpp
  # and ops/cudnn_matmul.cpp include it.
  find_path(KILN_CUDNN_FRONTEND_INCLUDE cudnn_frontend.h HINTS ${PROJECT_SOURCE_DIR}/.deps/cudnn_frontend/include)
  if(KILN_CUDNN_FRONTEND_INCLUDE)
    message(STATUS "kiln: cuDNN frontend in ${KILN_CUDNN_FRONTEND_INCLUDE}: the cudnn tactics of Attention and FusedMatMul are built")
    set_source_files_properties(${PROJECT_SOURCE_DIR}/src/backends/cuda/ops/cudnn_attention.cpp
      ${PROJECT_SOURCE_DIR}/src/backends/cuda/ops/cudnn_matmul.cpp PROPERTIES
      COMPILE_DEFINITIONS "KILN_HAVE_CUDNN_FRONTEND=1;CUDNN_FRONTEND_SKIP_JSON_LIB"
      INCLUDE_DIRECTORIES "${KILN_CUDNN_FRONTEND_INCLUDE}")
  else()
    message(STATUS "kiln: no cuDNN frontend (run scripts/install_deps.sh); building without the cudnn tactics of Attention and FusedMatMul")
  endif()
endif()
