#include "backends/cuda/cuda_executor.h"

#include "backends/cuda/cuda_runner.h"
#include "backends/cuda/cuda_status.h"

namespace kiln::cuda {

namespace {

// Inputs uploaded from the caller's host values; outputs allocated as the
// plan asks for them.
class HostBindings final : public RunBindings {
 public:
  std::vector<DeviceBuffer> inputs;
  std::vector<DeviceBuffer> outputs;
  std::vector<std::pair<DType, std::vector<int64_t>>> output_types;

  const void* input(int io) override { return inputs.at(static_cast<size_t>(io)).data(); }
  Expected<void*> output(int io, DType dtype, const std::vector<int64_t>& dims) override {
    auto& buf = outputs.at(static_cast<size_t>(io));
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    KILN_ASSIGN_OR_RETURN(buf, DeviceBuffer::allocate(dtype_storage_bytes(dtype, n)));
    output_types.at(static_cast<size_t>(io)) = {dtype, dims};
    return buf.data();
  }
};

}  // namespace

Expected<std::vector<RunValue>> run_graph_on_cuda(const Graph& graph, std::vector<RunValue> inputs,
                                                  const RunOptions& options) {
  if (inputs.size() != graph.inputs.size())
    return internal_error("graph '{}' takes {} inputs, got {}", graph.name, graph.inputs.size(), inputs.size());
  if (device_count() == 0) return unsupported("no CUDA device is visible");
  KILN_ASSIGN_OR_RETURN(auto weights, upload_weights(graph));
  HostBindings bindings;
  std::vector<std::vector<int64_t>> dims;
  std::vector<const RunValue*> host;
  for (const RunValue& v : inputs) {
    if (!v.is_tensor()) return unsupported("the CUDA backend takes tensor inputs only");
    KILN_ASSIGN_OR_RETURN(auto buf, DeviceBuffer::allocate(v.tensor.nbytes()));
    if (v.tensor.nbytes()) KILN_RETURN_IF_ERROR(buf.copy_from_host(v.tensor.raw(), v.tensor.nbytes()));
    bindings.inputs.push_back(std::move(buf));
    dims.push_back(v.tensor.dims());
    host.push_back(&v);
  }
  bindings.outputs.resize(graph.outputs.size());
  bindings.output_types.resize(graph.outputs.size());
  KILN_ASSIGN_OR_RETURN(auto stream, Stream::create());
  Runner runner(graph, weights, RunnerOptions{options, false});
  KILN_RETURN_IF_ERROR(runner.run(dims, host, bindings, stream.get()));
  KILN_RETURN_IF_ERROR(stream.synchronize());
  std::vector<RunValue> outputs;
  for (size_t j = 0; j < graph.outputs.size(); ++j) {
    const auto& [dtype, out_dims] = bindings.output_types[j];
    Tensor t(dtype, out_dims);
    if (t.nbytes()) KILN_RETURN_IF_ERROR(bindings.outputs[j].copy_to_host(t.mutable_raw(), t.nbytes()));
    outputs.push_back(RunValue::of(std::move(t)));
  }
  return outputs;
}

}  // namespace kiln::cuda
