// kiln/device.h: the CUDA GPUs of this process and the calling thread's
// current one (current_device is engine/engine_file.cpp's).
#include <fmt/format.h>

#include "kiln/device.h"

#ifdef KILN_WITH_CUDA
#include <cuda_runtime.h>

#include "backends/cuda/device.h"
#endif

namespace kiln {

int cuda_device_count() {
#ifdef KILN_WITH_CUDA
  return cuda::device_count();
#else
  return 0;
#endif
}

std::string no_cuda_gpu_reason() {
#ifdef KILN_WITH_CUDA
  return cuda::device_count() == 0 ? "no CUDA GPU is visible to this process" : "";
#else
  return "this kiln was built without the CUDA backend";
#endif
}

Status set_cuda_device(int ordinal) {
#ifdef KILN_WITH_CUDA
  int n = cuda::device_count();
  if (ordinal < 0 || ordinal >= n)
    return Status(ErrorCode::kInvalidArgument,
                  fmt::format("GPU {} does not exist: this process sees {} CUDA GPU{}", ordinal, n, n == 1 ? "" : "s"));
  cudaError_t e = cudaSetDevice(ordinal);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    return Status(ErrorCode::kInternal, fmt::format("cudaSetDevice({}): {}", ordinal, cudaGetErrorString(e)));
  }
  return Status::ok();
#else
  return Status(ErrorCode::kUnsupported, fmt::format("GPU {}: this kiln was built without the CUDA backend", ordinal));
#endif
}

}  // namespace kiln
