// The CUDA backend's kernel interface. A GPU kernel is one definition per op,
// in a file under src/backends/cuda/ops/, registered with
//
//   KILN_CUDA_KERNEL("", "Relu", {.run = run_relu});
//
// The executor (cuda_executor.h) has already inferred every output's dims and
// placed every tensor in device memory before a kernel runs: a kernel reads
// ctx.input(i), writes ctx.output(i) and launches on ctx.stream(), never
// synchronizing and never allocating (scratch memory comes from
// ctx.workspace(), sized by the definition's `workspace` function). The CPU
// backend is the oracle: a GPU kernel must give the CPU kernel's results
// (tests/gpu compares them on random inputs).
#pragma once

#include <cuda_runtime.h>

#include <any>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "ir/graph.h"
#include "ir/tensor.h"
#include "support/status.h"

namespace kiln::cuda {

class CublasLt;
class Cudnn;
struct DeviceInfo;

// A tensor in device memory: dtype, resolved dims, and its address. Views are
// cheap to copy; the executor owns the memory.
struct DeviceTensor {
  DType dtype = DType::kUndefined;
  std::vector<int64_t> dims;
  void* data = nullptr;

  int64_t numel() const;
  size_t nbytes() const;
  int64_t rank() const { return static_cast<int64_t>(dims.size()); }
  template <typename T>
  T* as() const {
    return static_cast<T*>(data);
  }
};

class KernelContext {
 public:
  virtual ~KernelContext() = default;

  virtual const Node& node() const = 0;
  size_t num_inputs() const { return node().inputs.size(); }
  size_t num_outputs() const { return node().outputs.size(); }
  // Whether input i was given (in range and not an omitted optional input).
  bool has_input(size_t i) const { return i < num_inputs() && node().inputs[i] != nullptr; }
  // Whether output i is wanted (not an omitted optional output).
  bool has_output(size_t i) const { return i < num_outputs() && node().outputs[i] != nullptr; }

  // Input i on the device (dims resolved). An omitted input is an empty view.
  virtual const DeviceTensor& input(size_t i) const = 0;
  // Input i's values on the host, for the inputs a definition lists in
  // `host_inputs` (Reshape's shape, Slice's starts, ...); null for others and
  // for omitted inputs. The executor reads them when it plans the run.
  virtual const Tensor* host_input(size_t i) const = 0;
  // Output i, already placed with the dims shape inference computed (for a
  // definition with `max_output_dims`: those dims, the most it may write).
  virtual const DeviceTensor& output(size_t i) const = 0;
  // A definition with `max_output_dims` stores every output's actual dims
  // here (int64 on the device, each output's rank in output order; omitted
  // outputs take their place too). Null for other definitions.
  virtual int64_t* output_dims() const { return nullptr; }

  // Scratch memory of the size `workspace` asked for (null when 0).
  virtual void* workspace() const = 0;
  virtual size_t workspace_bytes() const = 0;
  // The most scratch bytes the engine lets a kernel use (its workspace
  // limit, --memPoolSize=workspace; SIZE_MAX when unlimited): the same value
  // `workspace` and `tactics` saw, so a choice made within it is remade here.
  virtual size_t workspace_limit() const = 0;

  virtual cudaStream_t stream() const = 0;
  virtual const DeviceInfo& device() const = 0;
  // Library handles of the running context, created on first use.
  virtual Expected<const CublasLt*> cublaslt() = 0;
  virtual Expected<const Cudnn*> cudnn() = 0;
  // Whether the build allowed TF32 tensor cores for f32 math.
  virtual bool allow_tf32() const = 0;

  // State a kernel keeps across runs of the same plan (input dims unchanged):
  // descriptors, chosen algorithms. Empty on a plan's first run.
  virtual std::any& state() = 0;

  // The tactic the builder chose for this node (one of the definition's
  // `tactics`), or "" for the kernel's own default (the library heuristic).
  virtual const std::string& tactic() const = 0;
};

// What `workspace` and `supports` see: the node and its input types, without
// device memory. Inputs listed in `host_inputs` have their values.
class KernelQuery {
 public:
  virtual ~KernelQuery() = default;
  virtual const Node& node() const = 0;
  bool has_input(size_t i) const { return i < node().inputs.size() && node().inputs[i] != nullptr; }
  // Input i's dtype and dims (dims resolved when asked at plan time; at
  // build time, `supports` sees only what the graph declares).
  virtual DType input_dtype(size_t i) const = 0;
  virtual const std::vector<int64_t>* input_dims(size_t i) const = 0;
  virtual const Tensor* host_input(size_t i) const = 0;
  // The tactic being planned ("" for the default), for `workspace`.
  virtual const std::string& tactic() const = 0;
  // Whether the build allows TF32 tensor cores for f32 math.
  virtual bool allow_tf32() const = 0;
  // The most scratch bytes the kernel may ask for (SIZE_MAX when unlimited).
  // Kernels with a choice (cuBLASLt algorithms, cuDNN engine configs) offer
  // and pick only what fits; a `workspace` above it fails the plan.
  virtual size_t workspace_limit() const = 0;
  // Whether the build asks for the widest search (--builderOptimizationLevel
  // 5): `tactics` may then list, after its first `limit`, every further
  // candidate it knows (cuDNN's engine configs its heuristics do not rank).
  virtual bool exhaustive() const { return false; }
};

struct KernelDef {
  // Launches the op (required).
  std::function<Status(KernelContext&)> run;
  // Inputs the kernel reads on the host (shape-like: Reshape's shape, Slice's
  // starts and ends, TopK's k). The executor computes them while planning.
  std::vector<size_t> host_inputs;
  // Scratch bytes the kernel needs for these input dims and q.tactic() (0
  // when absent), at most q.workspace_limit() where the kernel has a choice.
  std::function<size_t(const KernelQuery&)> workspace;
  // Whether the kernel takes this node (its dtypes and attributes); an error
  // says why not, and the build names the node with it. Absent: every node.
  std::function<Status(const Node&)> supports;
  // Output 0 may share input `alias_input`'s memory (Reshape, Squeeze): the
  // executor then places them together. `run` must copy when their addresses
  // differ (a view that is a graph output gets the caller's buffer).
  int alias_input = -1;
  // Candidate implementations for these input dims, best guess first, at most
  // `limit` (more with q.exhaustive(), the extras after those `limit`; names
  // stable across processes, e.g. "cublaslt:3"): the builder
  // times each on the GPU, checks it against the CPU reference, and stores
  // the fastest in the node; `run` reads it from ctx.tactic(). Absent: one
  // implementation, nothing to tune.
  std::function<std::vector<std::string>(const KernelQuery&, size_t limit)> tactics;
  // Outputs whose dims depend on the input values (NonZero, Compress,
  // Unique, NonMaxSuppression): for these input dims (and host inputs), the
  // largest dims of each output. The executor places the outputs at that
  // size; `run` writes each packed for its actual dims (row-major, as if
  // allocated with them) and stores those dims at ctx.output_dims(). The
  // executor then copies the dims to the host, which synchronizes the stream
  // and ends the plan's segment at this layer: a run holding such a layer is
  // planned piecewise and cannot be captured as a CUDA graph (asking for one
  // is an error naming the layer). Absent: shape inference gives the dims.
  std::function<Expected<std::vector<std::vector<int64_t>>>(const KernelQuery&)> max_output_dims;
};

class KernelRegistry {
 public:
  static KernelRegistry& instance();
  void add(const std::string& domain, const std::string& op, KernelDef def);
  const KernelDef* find(std::string_view domain, std::string_view op) const;
  std::vector<std::pair<std::string, std::string>> ops() const;  // (domain, op), sorted

 private:
  std::map<std::string, std::map<std::string, KernelDef, std::less<>>, std::less<>> kernels_;
};

struct KernelRegistration {
  KernelRegistration(const std::string& domain, const std::string& op, KernelDef def) {
    KernelRegistry::instance().add(domain, op, std::move(def));
  }
};

}  // namespace kiln::cuda

#define KILN_CUDA_KERNEL(domain, op, ...) \
  static const ::kiln::cuda::KernelRegistration KILN_CONCAT(kiln_cuda_kernel_, __LINE__)(domain, op, __VA_ARGS__)
