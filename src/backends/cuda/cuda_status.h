// CUDA, cuBLAS(Lt) and cuDNN error codes turned into kiln::Status. Every
// message names the call that failed and the error's name and description,
// e.g. "cudaMalloc(&ptr, bytes): cudaErrorMemoryAllocation (out of memory)".
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include "support/status.h"

#if __has_include(<cudnn.h>)
#include <cudnn.h>
#define KILN_CUDA_HAVE_CUDNN_HEADER 1
#endif

namespace kiln::cuda {

inline Status to_status(cudaError_t err, const char* call) {
  if (err == cudaSuccess) return Status::ok();
  return internal_error("{}: {} ({})", call, cudaGetErrorName(err), cudaGetErrorString(err));
}

inline Status to_status(cublasStatus_t err, const char* call) {
  if (err == CUBLAS_STATUS_SUCCESS) return Status::ok();
  // An unsupported shape/type combination is the caller's to handle, not a bug.
  ErrorCode code = err == CUBLAS_STATUS_NOT_SUPPORTED ? ErrorCode::kUnsupported : ErrorCode::kInternal;
  return Status(code, fmt::format("{}: {} ({})", call, cublasLtGetStatusName(err), cublasLtGetStatusString(err)));
}

#ifdef KILN_CUDA_HAVE_CUDNN_HEADER
// Inline, so only code that uses cuDNN needs to link it.
inline Status to_status(cudnnStatus_t err, const char* call) {
  if (err == CUDNN_STATUS_SUCCESS) return Status::ok();
  char detail[256] = {};  // cuDNN's own account of the last failure, often the useful part
  cudnnGetLastErrorString(detail, sizeof(detail));
  ErrorCode code = err == CUDNN_STATUS_NOT_SUPPORTED ? ErrorCode::kUnsupported : ErrorCode::kInternal;
  return Status(code, fmt::format("{}: cudnn status {} ({}){}{}", call, static_cast<int>(err), cudnnGetErrorString(err),
                                  detail[0] ? ": " : "", detail));
}
#endif

// The error of the last kernel launch on this thread (bad configuration,
// no kernel image for the device), as a Status naming the kernel.
inline Status last_launch_status(const char* kernel) { return to_status(cudaGetLastError(), kernel); }

}  // namespace kiln::cuda

// KILN_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(...)): returns a Status naming the
// call when a CUDA / cuBLAS / cuDNN call fails.
#define KILN_CUDA_RETURN_IF_ERROR(call)                                    \
  do {                                                                     \
    ::kiln::Status _kiln_cuda_st = ::kiln::cuda::to_status((call), #call); \
    if (!_kiln_cuda_st.is_ok()) return _kiln_cuda_st;                      \
  } while (0)
