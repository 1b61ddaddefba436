#include "backends/cpu/cpu_kernel.h"

#include <algorithm>
#include <cassert>

namespace kiln {

Expected<Tensor*> CpuKernelContext::allocate_output(size_t i) {
  auto dims = inferred_dims(i);
  if (!dims)
    return internal_error("{}: the dims of output {} depend on data; the kernel must give them", node().label(), i);
  return &allocate_output(i, std::move(*dims));
}

CpuKernelRegistry& CpuKernelRegistry::instance() {
  static CpuKernelRegistry registry;
  return registry;
}

static std::string canonical(const std::string& d) { return d == "ai.onnx" ? "" : d; }

void CpuKernelRegistry::add(const std::string& domain, const std::string& op, CpuKernelFn fn) {
  assert(!find(domain, op) && "CPU kernel registered twice");
  kernels_.emplace_back(canonical(domain), op, std::move(fn));
}

const CpuKernelFn* CpuKernelRegistry::find(const std::string& domain, const std::string& op) const {
  std::string d = canonical(domain);
  for (const auto& [kd, kop, fn] : kernels_)
    if (kop == op && kd == d) return &fn;
  return nullptr;
}

std::vector<std::pair<std::string, std::string>> CpuKernelRegistry::ops() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [d, op, fn] : kernels_) out.emplace_back(d, op);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace kiln
