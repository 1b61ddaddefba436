#include "runtime/npy.h"

#include <fmt/format.h>

#include <cstring>
#include <optional>
#include <utility>

#include "ir/shape.h"
#include "support/file.h"

namespace kiln {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicLen = 6;

struct Descr {
  const char* code;  // without the byte-order character
  DType dtype;
};
constexpr Descr kDescrs[] = {
    {"f2", DType::kF16}, {"f4", DType::kF32},  {"f8", DType::kF64}, {"i1", DType::kI8},    {"i2", DType::kI16},
    {"i4", DType::kI32}, {"i8", DType::kI64},  {"u1", DType::kU8},  {"u2", DType::kU16},   {"u4", DType::kU32},
    {"u8", DType::kU64}, {"b1", DType::kBool}, {"c8", DType::kC64}, {"c16", DType::kC128},
};

Status bad(const std::string& origin, const std::string& why) {
  return Status(ErrorCode::kCorrupt, fmt::format("'{}' is not a usable .npy file: {}", origin, why));
}

// The text after `'key':` in the header dict, trimmed of spaces.
std::optional<std::string> field(const std::string& header, const std::string& key) {
  size_t k = header.find("'" + key + "'");
  if (k == std::string::npos) return std::nullopt;
  size_t colon = header.find(':', k);
  if (colon == std::string::npos) return std::nullopt;
  size_t start = header.find_first_not_of(' ', colon + 1);
  if (start == std::string::npos) return std::nullopt;
  size_t end;
  if (header[start] == '(')
    end = header.find(')', start) + 1;
  else if (header[start] == '\'')
    end = header.find('\'', start + 1) + 1;
  else
    end = header.find_first_of(",}", start);
  if (end == std::string::npos || end == 0) return std::nullopt;
  return header.substr(start, end - start);
}

Expected<DType> parse_descr(const std::string& d, const std::string& origin) {
  if (d.size() < 4 || d.front() != '\'' || d.back() != '\'') return bad(origin, "no 'descr' string in the header");
  std::string s = d.substr(1, d.size() - 2);
  char order = s[0];
  std::string code = s.substr(1);
  if (s == "O" || code == "O" || s[0] == 'O')
    return unsupported("'{}': object arrays ('{}') are not supported", origin, s);
  if (order == '>' && code != "i1" && code != "u1" && code != "b1")
    return unsupported("'{}': big-endian data ('{}') is not supported; save it little-endian", origin, s);
  if (order != '<' && order != '|' && order != '=' && order != '>')
    return unsupported("'{}': dtype '{}' is not supported", origin, s);
  for (const auto& e : kDescrs)
    if (code == e.code) return e.dtype;
  return unsupported("'{}': dtype '{}' is not supported (numeric types and bool only)", origin, s);
}

Expected<std::vector<int64_t>> parse_shape(const std::string& s, const std::string& origin) {
  if (s.size() < 2 || s.front() != '(' || s.back() != ')') return bad(origin, "no 'shape' tuple in the header");
  std::vector<int64_t> dims;
  std::string body = s.substr(1, s.size() - 2);
  size_t i = 0;
  while (i < body.size()) {
    while (i < body.size() && (body[i] == ' ' || body[i] == ',')) ++i;
    if (i >= body.size()) break;
    size_t j = i;
    while (j < body.size() && body[j] >= '0' && body[j] <= '9') ++j;
    if (j == i || j - i > 15) return bad(origin, fmt::format("shape {} has a bad dim", s));
    dims.push_back(std::stoll(body.substr(i, j - i)));
    i = j;
    while (i < body.size() && body[i] == 'L') ++i;  // Python 2 longs
  }
  if (checked_numel(dims) < 0) return bad(origin, fmt::format("shape {} overflows", s));
  return dims;
}

}  // namespace

Expected<Tensor> parse_npy(const void* data, size_t size, const std::string& origin) {
  const auto* p = static_cast<const unsigned char*>(data);
  if (size < kMagicLen + 4 || std::memcmp(p, kMagic, kMagicLen) != 0)
    return bad(origin, "it does not start with \"\\x93NUMPY\"");
  int major = p[6];
  size_t header_len, header_at;
  if (major == 1) {
    header_len = p[8] | (size_t(p[9]) << 8);
    header_at = 10;
  } else if (major == 2 || major == 3) {
    if (size < 12) return bad(origin, "truncated header");
    header_len = p[8] | (size_t(p[9]) << 8) | (size_t(p[10]) << 16) | (size_t(p[11]) << 24);
    header_at = 12;
  } else {
    return unsupported("'{}': .npy format version {}.{} (kiln reads 1.0 to 3.0)", origin, major, int(p[7]));
  }
  if (header_len > size - header_at)
    return bad(origin, fmt::format("the header needs {} bytes, the file is {}", header_len, size));
  std::string header(reinterpret_cast<const char*>(p + header_at), header_len);
  auto descr = field(header, "descr");
  auto fortran = field(header, "fortran_order");
  auto shape = field(header, "shape");
  if (!descr || !fortran || !shape) return bad(origin, "the header lacks 'descr', 'fortran_order' or 'shape'");
  if (*fortran == "True")
    return unsupported("'{}': Fortran-order arrays are not supported; save with np.ascontiguousarray", origin);
  if (*fortran != "False") return bad(origin, fmt::format("fortran_order is '{}'", *fortran));
  KILN_ASSIGN_OR_RETURN(DType dtype, parse_descr(*descr, origin));
  KILN_ASSIGN_OR_RETURN(auto dims, parse_shape(*shape, origin));
  size_t body = size - header_at - header_len;
  size_t want = dtype_storage_bytes(dtype, checked_numel(dims));
  if (body != want)
    return bad(origin, fmt::format("{} bytes of data, shape {} of {} needs {}", body, Shape::of(dims).to_string(),
                                   dtype_name(dtype), want));
  KILN_ASSIGN_OR_RETURN(Tensor t, Tensor::allocate(dtype, dims));
  if (want) std::memcpy(t.mutable_raw(), p + header_at + header_len, want);
  return t;
}

Expected<Tensor> read_npy_file(const std::string& path) {
  KILN_ASSIGN_OR_RETURN(FileBytes f, map_file(path));
  return parse_npy(f.data, f.size, path);
}

std::string encode_npy(const Tensor& t) {
  const char* code = "f4";
  for (const auto& e : kDescrs)
    if (e.dtype == t.dtype()) code = e.code;
  std::string shape = "(";
  for (int64_t d : t.dims()) shape += fmt::format("{}, ", d);
  if (t.dims().size() > 1)
    shape.resize(shape.size() - 2);
  else if (t.dims().size() == 1)
    shape.resize(shape.size() - 1);
  shape += ")";
  char order = (t.dtype() == DType::kBool || t.dtype() == DType::kI8 || t.dtype() == DType::kU8) ? '|' : '<';
  std::string dict = fmt::format("{{'descr': '{}{}', 'fortran_order': False, 'shape': {}, }}", order, code, shape);
  bool v2 = dict.size() + 11 > 65535;
  size_t prefix = v2 ? 12 : 10;
  size_t total = (prefix + dict.size() + 1 + 63) / 64 * 64;  // header ends with '\n', aligned to 64
  dict.append(total - prefix - dict.size() - 1, ' ');
  dict += '\n';
  std::string out(kMagic, kMagicLen);
  out += static_cast<char>(v2 ? 2 : 1);
  out += '\0';
  size_t n = dict.size();
  out += static_cast<char>(n & 0xff);
  out += static_cast<char>((n >> 8) & 0xff);
  if (v2) {
    out += static_cast<char>((n >> 16) & 0xff);
    out += static_cast<char>((n >> 24) & 0xff);
  }
  out += dict;
  out.append(static_cast<const char*>(t.raw()), t.nbytes());
  return out;
}

Status write_npy_file(const std::string& path, const Tensor& t) {
  bool known = false;
  for (const auto& e : kDescrs) known |= e.dtype == t.dtype();
  if (!known) return unsupported("'{}': .npy has no dtype for {}", path, dtype_name(t.dtype()));
  std::string bytes = encode_npy(t);
  return write_file(path, bytes.data(), bytes.size());
}

}  // namespace kiln
