// kiln's device API: the CUDA GPUs this process sees and the calling
// thread's current one, so that a program (kiln serve) can build, load and
// run engines on a chosen GPU:
//
//   if (kiln::cuda_device_count() > 1) {
//     kiln::Status st = kiln::set_cuda_device(1);   // this thread's GPU
//   }
//   auto engine = kiln::Runtime::deserialize_file("model.kiln");  // for GPU 1
//
// This header is public and self-contained (standard library only).
#pragma once

#include <string>

#include "kiln/status.h"

namespace kiln {

// CUDA GPUs this process can use: 0 when kiln was built without the CUDA
// backend, or there is no driver or no GPU (never an error).
int cuda_device_count();

// Why cuda_device_count() is 0, in words that follow "but ": "no CUDA GPU is
// visible to this process" or "this kiln was built without the CUDA
// backend"; empty when there is a GPU.
std::string no_cuda_gpu_reason();

// Makes GPU `ordinal` the calling thread's CUDA device (cudaSetDevice):
// engines built or deserialized, contexts created and runs made on this
// thread afterwards use that GPU. An error names the ordinal and the GPUs
// there are.
Status set_cuda_device(int ordinal);

// The device an engine built or loaded now on this thread is for, as
// Engine::device() spells it ("cpu:x86_64", "cuda:sm_90 NVIDIA H100 80GB
// HBM3": the thread's CUDA device); an error without such a device.
Expected<std::string> current_device(const std::string& backend);

}  // namespace kiln
