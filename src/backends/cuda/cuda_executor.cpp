#include "backends/cuda/cuda_executor.h"

#include <algorithm>

#include "backends/cuda/cuda_runner.h"
#include "backends/cuda/cuda_status.h"
#include "backends/cuda/sequence_ops.h"

namespace kiln::cuda {

Expected<std::vector<RunValue>> run_graph_on_cuda(const Graph& graph, std::vector<RunValue> inputs,
                                                  const RunOptions& options) {
  if (inputs.size() != graph.inputs.size())
    return internal_error("graph '{}' takes {} inputs, got {}", graph.name, graph.inputs.size(), inputs.size());
  if (device_count() == 0) return unsupported("no CUDA device is visible");
  KILN_ASSIGN_OR_RETURN(auto weights, upload_weights(graph));
  KILN_ASSIGN_OR_RETURN(auto stream, Stream::create());
  DeviceBindings bindings(graph.outputs.size());
  std::vector<std::vector<int64_t>> dims;
  std::vector<const RunValue*> host;
  // Sequence and optional inputs are bound as lists (sequence_ops.h).
  SubgraphValues lists;
  std::vector<void*> list_memory;
  for (const RunValue& v : inputs) {
    if (!v.is_tensor()) {
      auto list = upload_list(v, stream.get(), list_memory);
      if (!list) {
        for (void* p : list_memory) cudaFreeAsync(p, stream.get());
        return list.status();
      }
      lists.input_lists.push_back(std::move(list).value());
      lists.input_dtypes.push_back(DType::kUndefined);
      bindings.inputs.emplace_back();
      dims.emplace_back();
      host.push_back(nullptr);
      continue;
    }
    lists.input_lists.emplace_back();
    lists.input_dtypes.push_back(v.tensor.dtype());
    KILN_RETURN_IF_ERROR(bindings.add_input(v.tensor, stream.get()));
    dims.push_back(v.tensor.dims());
    host.push_back(&v);
  }
  const bool any_list = !list_memory.empty() || std::any_of(lists.input_lists.begin(), lists.input_lists.end(),
                                                            [](const auto& l) { return l != nullptr; });
  Runner runner(graph, weights, RunnerOptions{options, false});
  Status st = runner.run(dims, host, bindings, stream.get(), nullptr, any_list ? &lists : nullptr);
  for (void* p : list_memory) cudaFreeAsync(p, stream.get());
  KILN_RETURN_IF_ERROR(st);
  KILN_RETURN_IF_ERROR(stream.synchronize());
  std::vector<RunValue> outputs;
  for (size_t j = 0; j < graph.outputs.size(); ++j) {
    if (bindings.lists[j]) {
      outputs.push_back(std::move(*bindings.lists[j]));
      continue;
    }
    KILN_ASSIGN_OR_RETURN(Tensor t, bindings.download_output(j));
    outputs.push_back(RunValue::of(std::move(t)));
  }
  return outputs;
}

}  // namespace kiln::cuda
