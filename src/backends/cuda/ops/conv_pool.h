// kiln::FusedConv with pool attributes (ops/fused_pool.h) on the GPU: conv.cpp's
// FusedConv registration hands such nodes to these.
#pragma once

#include <string>
#include <vector>

#include "backends/cuda/cuda_kernel.h"

namespace kiln::cuda {

bool has_fused_pool(const Node& node);

// "kiln_igemm_pool" (stem_conv_pool.cuh: the convolution and the pool in one
// pass) where the kernel takes the layer, then "kiln_igemm", the unfused
// route, so the tuner times one against the other (and a fused kernel that
// disagrees with the CPU loses).
std::vector<std::string> pooled_conv_tactics(const KernelQuery& q, size_t limit);

// "kiln_igemm_pool": none; the unfused route ("" and any other tactic): the
// convolution's output, rounded up to 256 bytes.
size_t pooled_conv_workspace(const KernelQuery& q);

// The fused kernel under "kiln_igemm_pool" where it takes the layer; else the
// convolution into the workspace (kiln_igemm where it takes the layer, the
// direct kernel and the epilogue pass otherwise), then the MaxPool kernel.
Status run_pooled_conv(KernelContext& ctx);

}  // namespace kiln::cuda
