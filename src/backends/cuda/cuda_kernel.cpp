#include "backends/cuda/cuda_kernel.h"

#include <cassert>

namespace kiln::cuda {

int64_t DeviceTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

size_t DeviceTensor::nbytes() const { return dtype_storage_bytes(dtype, numel()); }

KernelRegistry& KernelRegistry::instance() {
  static KernelRegistry registry;
  return registry;
}

void KernelRegistry::add(const std::string& domain, const std::string& op, KernelDef def) {
  assert(def.run && "a CUDA kernel needs a run function");
  auto& ops = kernels_[domain];
  assert(ops.find(op) == ops.end() && "one CUDA kernel per op");
  ops.emplace(op, std::move(def));
}

const KernelDef* KernelRegistry::find(std::string_view domain, std::string_view op) const {
  auto d = kernels_.find(domain);
  if (d == kernels_.end()) return nullptr;
  auto k = d->second.find(op);
  return k == d->second.end() ? nullptr : &k->second;
}

std::vector<std::pair<std::string, std::string>> KernelRegistry::ops() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [domain, ops] : kernels_)
    for (const auto& [op, def] : ops) out.emplace_back(domain, op);
  return out;
}

}  // namespace kiln::cuda
