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

static std::string_view canonical(std::string_view d) { return d == "ai.onnx" ? std::string_view() : d; }

void CpuKernelRegistry::add(const std::string& domain, const std::string& op, CpuKernelFn fn) {
  assert(!find(domain, op) && "CPU kernel registered twice");
  kernels_[std::string(canonical(domain))].emplace(op, std::move(fn));
}

const CpuKernelFn* CpuKernelRegistry::find(std::string_view domain, std::string_view op) const {
  auto d = kernels_.find(canonical(domain));
  if (d == kernels_.end()) return nullptr;
  auto it = d->second.find(op);
  return it == d->second.end() ? nullptr : &it->second;
}

std::vector<std::pair<std::string, std::string>> CpuKernelRegistry::ops() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [domain, ops] : kernels_)
    for (const auto& [op, fn] : ops) out.emplace_back(domain, op);
  return out;
}

}  // namespace kiln
