#include "run_inputs.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <random>

#include "onnx/value_file.h"
#include "runtime/npy.h"

namespace fs = std::filesystem;

namespace kiln::cli {
namespace {

std::vector<std::string> input_names(const Engine& e) {
  std::vector<std::string> out;
  for (int i = 0; i < e.num_io_tensors(); ++i)
    if (e.tensor_io_mode(e.io_tensor_name(i)) == TensorIOMode::kInput) out.push_back(e.io_tensor_name(i));
  return out;
}

std::string quoted_list(const std::vector<std::string>& names) {
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "'" : ", '") + n + "'";
  return s;
}

Expected<Tensor> read_tensor(const std::string& path) {
  if (fs::path(path).extension() == ".npy") return read_npy_file(path);
  KILN_ASSIGN_OR_RETURN(RunValue v, read_value_file(path, Type::tensor(DType::kUndefined, Shape())));
  return std::move(v.tensor);
}

// "NAME:FILE" where NAME is an engine input; names may hold ':' themselves.
Expected<std::pair<std::string, std::string>> split_item(const std::string& item,
                                                         const std::vector<std::string>& names) {
  for (size_t colon = item.find(':'); colon != std::string::npos; colon = item.find(':', colon + 1)) {
    std::string name = item.substr(0, colon);
    if (std::find(names.begin(), names.end(), name) != names.end()) return std::pair{name, item.substr(colon + 1)};
  }
  return invalid_argument("--load-inputs '{}': expected NAME:FILE with NAME one of the engine's inputs ({})", item,
                          quoted_list(names));
}

}  // namespace

Expected<std::vector<NamedTensor>> load_inputs(const Engine& engine, const std::string& spec) {
  std::vector<std::string> names = input_names(engine);
  std::vector<NamedTensor> out;
  if (fs::is_directory(spec)) {
    for (size_t k = 0; k < names.size(); ++k) {
      std::string path = (fs::path(spec) / fmt::format("input_{}.pb", k)).string();
      if (!fs::exists(path))
        return make_error(ErrorCode::kNotFound, "input '{}' (#{}) has no data: there is no '{}'", names[k], k, path);
      KILN_ASSIGN_OR_RETURN(Tensor t, read_tensor(path));
      out.push_back({names[k], std::move(t)});
    }
    return out;
  }
  size_t start = 0;
  while (start < spec.size()) {
    size_t comma = spec.find(',', start);
    std::string item = spec.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    KILN_ASSIGN_OR_RETURN(auto name_file, split_item(item, names));
    for (const auto& nt : out)
      if (nt.name == name_file.first) return invalid_argument("--load-inputs gives input '{}' twice", nt.name);
    KILN_ASSIGN_OR_RETURN(Tensor t, read_tensor(name_file.second));
    out.push_back({name_file.first, std::move(t)});
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  for (const auto& n : names) {
    bool given = false;
    for (const auto& nt : out) given |= nt.name == n;
    if (!given)
      return invalid_argument("input '{}' has no data: --load-inputs must give every input ({})", n,
                              quoted_list(names));
  }
  return out;
}

Expected<std::vector<NamedTensor>> random_inputs(const Engine& engine, const ShapeSpec& shapes, int profile,
                                                 uint64_t seed) {
  std::vector<std::string> names = input_names(engine);
  for (const auto& [name, dims] : shapes)
    if (std::find(names.begin(), names.end(), name) == names.end())
      return invalid_argument("--shapes: '{}' is not an input of the engine ({})", name, quoted_list(names));
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> real(-1.0, 1.0);
  std::vector<NamedTensor> out;
  for (const auto& name : names) {
    KILN_ASSIGN_OR_RETURN(auto dims, engine.tensor_shape(name));
    if (const auto* given = find_shape(shapes, name)) {
      dims = *given;
    } else if (engine.num_optimization_profiles() > 0) {
      KILN_ASSIGN_OR_RETURN(ShapeRange r, engine.profile_shape(name, profile));
      dims = r.opt;
    }
    for (auto& d : dims)
      if (d < 0) d = 1;
    DType dt = engine.tensor_dtype(name);
    KILN_ASSIGN_OR_RETURN(Tensor t, Tensor::allocate(dt, dims));
    void* p = t.mutable_raw();
    for (int64_t i = 0; i < t.numel(); ++i) {
      double r = real(rng);
      int64_t n = static_cast<int64_t>(rng() % 8);
      switch (dt) {
        case DType::kF32: static_cast<float*>(p)[i] = static_cast<float>(r); break;
        case DType::kF64: static_cast<double*>(p)[i] = r; break;
        case DType::kF16: static_cast<uint16_t*>(p)[i] = f32_to_f16(static_cast<float>(r)); break;
        case DType::kBF16: static_cast<uint16_t*>(p)[i] = f32_to_bf16(static_cast<float>(r)); break;
        case DType::kBool: static_cast<uint8_t*>(p)[i] = static_cast<uint8_t>(n & 1); break;
        case DType::kI8:
        case DType::kU8: static_cast<uint8_t*>(p)[i] = static_cast<uint8_t>(n); break;
        case DType::kI16:
        case DType::kU16: static_cast<uint16_t*>(p)[i] = static_cast<uint16_t>(n); break;
        case DType::kI32:
        case DType::kU32: static_cast<uint32_t*>(p)[i] = static_cast<uint32_t>(n); break;
        case DType::kI64:
        case DType::kU64: static_cast<uint64_t*>(p)[i] = static_cast<uint64_t>(n); break;
        default:
          return unsupported("input '{}': kiln run cannot make random {} data; give it with --load-inputs", name,
                             dtype_name(dt));
      }
    }
    out.push_back({name, std::move(t)});
  }
  return out;
}

}  // namespace kiln::cli
