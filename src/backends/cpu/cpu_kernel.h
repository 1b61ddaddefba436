// The CPU backend's kernel interface. A kernel is one function per op, in its
// own file under src/backends/cpu/kernels/, registered with
//
//   KILN_CPU_KERNEL("", "Relu", run_relu);
//
// A kernel reads its inputs, allocates its outputs (with the dims shape
// inference computed, or its own for data-dependent ops) and fills them. It is
// the oracle every other backend is checked against: clarity first.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ir/graph.h"
#include "ir/run_value.h"
#include "support/status.h"

namespace kiln {

class CpuKernelContext {
 public:
  virtual ~CpuKernelContext() = default;

  virtual const Node& node() const = 0;
  size_t num_inputs() const { return node().inputs.size(); }
  size_t num_outputs() const { return node().outputs.size(); }
  // Whether input i was given (in range and not an omitted optional input).
  bool has_input(size_t i) const { return i < num_inputs() && node().inputs[i] != nullptr; }
  // Whether output i is wanted (not an omitted optional output).
  bool has_output(size_t i) const { return i < num_outputs() && node().outputs[i] != nullptr; }
  virtual const RunValue& input_value(size_t i) const = 0;
  // Input i as a tensor (the common case).
  const Tensor& input(size_t i) const { return input_value(i).tensor; }

  // What shape inference computed for output i with the actual inputs: the
  // dtype, and the dims when they did not depend on input data.
  virtual DType output_dtype(size_t i) const = 0;
  virtual std::optional<std::vector<int64_t>> inferred_dims(size_t i) const = 0;

  // Allocates output i (zero-filled) with the inferred dtype and these dims.
  virtual Tensor& allocate_output(size_t i, std::vector<int64_t> dims) = 0;
  // Allocates output i with the inferred dtype and dims (error if data-dependent).
  Expected<Tensor*> allocate_output(size_t i);
  // Sets output i to an existing tensor (a view, e.g. Reshape) or any value.
  virtual void set_output(size_t i, RunValue value) = 0;
  void set_output(size_t i, Tensor t) { set_output(i, RunValue::of(std::move(t))); }

  // Runs a subgraph (If/Loop/Scan bodies) with values for its inputs; the
  // body reads values of enclosing graphs from the running scope.
  virtual Expected<std::vector<RunValue>> run_subgraph(const Graph& body, std::vector<RunValue> inputs) = 0;
};

using CpuKernelFn = std::function<Status(CpuKernelContext&)>;

class CpuKernelRegistry {
 public:
  static CpuKernelRegistry& instance();
  void add(const std::string& domain, const std::string& op, CpuKernelFn fn);
  // Runs once per node per inference: a map lookup, no allocation.
  const CpuKernelFn* find(std::string_view domain, std::string_view op) const;
  std::vector<std::pair<std::string, std::string>> ops() const;  // (domain, op), sorted

 private:
  // domain -> op -> kernel
  std::map<std::string, std::map<std::string, CpuKernelFn, std::less<>>, std::less<>> kernels_;
};

struct CpuKernelRegistration {
  CpuKernelRegistration(const std::string& domain, const std::string& op, CpuKernelFn fn) {
    CpuKernelRegistry::instance().add(domain, op, std::move(fn));
  }
};

}  // namespace kiln

#define KILN_CPU_KERNEL(domain, op, fn) \
  static const ::kiln::CpuKernelRegistration KILN_CONCAT(kiln_cpu_kernel_, __LINE__)(domain, op, fn)
