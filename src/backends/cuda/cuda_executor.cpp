#include "backends/cuda/cuda_executor.h"

#include "backends/cuda/cuda_runner.h"
#include "backends/cuda/cuda_status.h"

namespace kiln::cuda {

Expected<std::vector<RunValue>> run_graph_on_cuda(const Graph& graph, std::vector<RunValue> inputs,
                                                  const RunOptions& options) {
  if (inputs.size() != graph.inputs.size())
    return internal_error("graph '{}' takes {} inputs, got {}", graph.name, graph.inputs.size(), inputs.size());
  if (device_count() == 0) return unsupported("no CUDA device is visible");
  KILN_ASSIGN_OR_RETURN(auto weights, upload_weights(graph));
  DeviceBindings bindings(graph.outputs.size());
  std::vector<std::vector<int64_t>> dims;
  std::vector<const RunValue*> host;
  for (const RunValue& v : inputs) {
    if (!v.is_tensor()) return unsupported("the CUDA backend takes tensor inputs only");
    KILN_RETURN_IF_ERROR(bindings.add_input(v.tensor));
    dims.push_back(v.tensor.dims());
    host.push_back(&v);
  }
  KILN_ASSIGN_OR_RETURN(auto stream, Stream::create());
  Runner runner(graph, weights, RunnerOptions{options, false});
  KILN_RETURN_IF_ERROR(runner.run(dims, host, bindings, stream.get()));
  KILN_RETURN_IF_ERROR(stream.synchronize());
  std::vector<RunValue> outputs;
  for (size_t j = 0; j < graph.outputs.size(); ++j) {
    KILN_ASSIGN_OR_RETURN(Tensor t, bindings.download_output(j));
    outputs.push_back(RunValue::of(std::move(t)));
  }
  return outputs;
}

}  // namespace kiln::cuda
