// Fused elementwise kernels generated at build time: a kiln::FusedElementwise
// program (ops/elementwise_program.h) becomes CUDA C source, NVRTC compiles
// it to a cubin for the target GPU's compute capability (no GPU needed), the
// builder stores the cubin in the node (attribute `cubin`, a u8 tensor the
// engine keeps in a raw section), and the runtime loads it with the runtime
// API's library calls (cudaLibraryLoadData: no libcuda link, so kiln still
// loads on machines without a driver).
//
// The kernel takes one argument, FusedElementwiseParams by value: one thread
// per output element (grid-stride), each input read through its broadcast
// strides (0 along broadcast dims), every instruction in float, rounded to
// its dtype as the CPU reference does.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "ops/elementwise_program.h"
#include "support/status.h"

namespace kiln::cuda {

inline constexpr int kFusedMaxRank = 8;
inline constexpr const char* kFusedKernelName = "kiln_fused_elementwise";

// The generated kernel's argument; the source declares the same layout
// (every field 8 bytes, so host and device agree without padding rules).
struct FusedElementwiseParams {
  int64_t n = 0;               // output elements
  int64_t rank = 0;            // output rank, at most kFusedMaxRank
  int64_t all_contiguous = 0;  // every input has the output's dims: offsets are the index
  int64_t dims[kFusedMaxRank] = {};
  int64_t strides[kMaxProgramInputs][kFusedMaxRank] = {};  // per input, in elements
  const void* in[kMaxProgramInputs] = {};
  void* out = nullptr;
};
static_assert(sizeof(FusedElementwiseParams) ==
                  8 * (3 + kFusedMaxRank * (1 + kMaxProgramInputs) + kMaxProgramInputs + 1),
              "the generated kernel reads the parameter block as packed 8-byte fields");

// CUDA C source of the kernel kFusedKernelName computing `program` on inputs
// of `input_dtypes` (f32, f16 or bf16; one per program input).
Expected<std::string> fused_elementwise_source(const ElementwiseProgram& program,
                                               const std::vector<DType>& input_dtypes);

// Compiles `source` with NVRTC to a cubin for sm_<sm> (90 for H100). A
// failure is an error naming `what` (the layer), the architecture and
// NVRTC's log.
Expected<std::vector<uint8_t>> compile_to_cubin(const std::string& source, int sm, const std::string& what);

// The source of `node`'s kernel, from its program and its inputs' declared dtypes.
Expected<std::string> fused_elementwise_source(const Node& node);

// Compiles every kiln::FusedElementwise node of `graph` for sm_<sm> and stores
// the cubin in the node's `cubin` attribute; identical sources compile once.
// Returns how many distinct kernels were compiled.
Expected<size_t> compile_fused_kernels(Graph& graph, int sm);

// The compute capability of the current device as 10 * major + minor.
Expected<int> current_device_sm();

// The kernel of a cubin, loaded once per process (cached by content).
Expected<cudaKernel_t> load_fused_kernel(const void* cubin, size_t size, const std::string& what);

}  // namespace kiln::cuda
