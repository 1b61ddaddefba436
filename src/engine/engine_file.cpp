#include "engine/engine_file.h"

#include <engine.pb.h>
#include <fmt/format.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <algorithm>
#include <bit>
#include <climits>
#include <cstdlib>
#include <cstring>

#ifdef KILN_WITH_CUDA
#include "backends/cuda/device.h"
#endif
#include "engine/graph_codec.h"
#include "engine/hash.h"
#include "kiln/device.h"

namespace kiln {
namespace {

constexpr char kMagic[4] = {'K', 'I', 'L', 'N'};
constexpr size_t kVersionOffset = 16, kVersionLen = 16;
constexpr size_t kBackendOffset = 32, kBackendLen = 16;
constexpr size_t kDeviceOffset = 48, kDeviceLen = 40;
constexpr size_t kMetaOffsetAt = 88, kMetaSizeAt = 96, kFileSizeAt = 104, kPayloadSumAt = 112, kHeaderSumAt = 120;

// The file is little-endian on every host.
template <typename T>
T to_little(T v) {
  if constexpr (std::endian::native == std::endian::big) {
    if constexpr (sizeof(T) == 8)
      return static_cast<T>(__builtin_bswap64(v));
    else
      return static_cast<T>(__builtin_bswap32(v));
  }
  return v;
}

template <typename T>
void put(std::vector<uint8_t>& b, size_t at, T v) {
  v = to_little(v);
  std::memcpy(b.data() + at, &v, sizeof(T));
}

template <typename T>
T get(const std::byte* p, size_t at) {
  T v;
  std::memcpy(&v, p + at, sizeof(T));
  return to_little(v);
}

Status put_string(std::vector<uint8_t>& b, size_t at, size_t len, const std::string& s, const char* what) {
  if (s.size() >= len) return invalid_argument("engine header: {} '{}' is longer than {} bytes", what, s, len - 1);
  std::memcpy(b.data() + at, s.data(), s.size());
  return Status::ok();
}

// A NUL-padded field; every byte after the first NUL must be NUL too, so a
// damaged padding byte is caught.
Expected<std::string> get_string(const std::byte* p, size_t at, size_t len, const char* what) {
  const char* s = reinterpret_cast<const char*>(p + at);
  size_t n = strnlen(s, len);
  if (n == len) return Status(ErrorCode::kCorrupt, fmt::format("engine header: the {} field is not terminated", what));
  for (size_t i = n; i < len; ++i)
    if (s[i] != 0) return Status(ErrorCode::kCorrupt, fmt::format("engine header: the {} field is damaged", what));
  return std::string(s, n);
}

size_t align_up(size_t v) {
  return (v + kEngineSectionAlignment - 1) / kEngineSectionAlignment * kEngineSectionAlignment;
}

Status corrupt(std::string msg) { return Status(ErrorCode::kCorrupt, std::move(msg)); }

void encode_profiles(const EngineContents& c, engine::Metadata& m) {
  for (const auto& p : c.profiles) {
    auto* pp = m.add_profiles();
    for (const auto& [name, r] : p.ranges) {
      auto* pr = pp->add_ranges();
      pr->set_input(name);
      *pr->mutable_min() = {r.min.begin(), r.min.end()};
      *pr->mutable_opt() = {r.opt.begin(), r.opt.end()};
      *pr->mutable_max() = {r.max.begin(), r.max.end()};
    }
  }
  auto* s = m.mutable_settings();
  s->set_fp16(c.settings.fp16);
  s->set_bf16(c.settings.bf16);
  s->set_tf32(c.settings.tf32);
  s->set_strongly_typed(c.settings.strongly_typed);
  s->set_workspace_limit_bytes(c.settings.workspace_limit_bytes);
  s->set_optimization_level(c.settings.optimization_level);
  s->set_allow_cpu_fallback(c.settings.allow_cpu_fallback);
  auto* mem = m.mutable_memory();
  mem->set_weight_bytes(c.memory.weight_bytes);
  mem->set_activations_planned(c.memory.activations_planned);
  for (const ProfileMemory& p : c.memory.profiles) {
    auto* pm = mem->add_profiles();
    pm->set_activation_bytes_opt(p.activation_bytes_opt);
    pm->set_activation_bytes_max(p.activation_bytes_max);
    pm->set_workspace_bytes(p.workspace_bytes);
    pm->set_exact(p.exact);
  }
}

void decode_profiles(const engine::Metadata& m, EngineContents& c) {
  for (const auto& pp : m.profiles()) {
    EngineProfile p;
    for (const auto& pr : pp.ranges())
      p.ranges.emplace_back(pr.input(), ShapeRange{{pr.min().begin(), pr.min().end()},
                                                   {pr.opt().begin(), pr.opt().end()},
                                                   {pr.max().begin(), pr.max().end()}});
    c.profiles.push_back(std::move(p));
  }
  const auto& s = m.settings();
  c.settings = {s.fp16(),
                s.bf16(),
                s.tf32(),
                s.strongly_typed(),
                s.workspace_limit_bytes(),
                s.optimization_level(),
                s.allow_cpu_fallback()};
  const auto& mem = m.memory();
  c.memory.weight_bytes = mem.weight_bytes();
  c.memory.workspace_limit_bytes = s.workspace_limit_bytes();
  c.memory.activations_planned = mem.activations_planned();
  for (const auto& pm : mem.profiles())
    c.memory.profiles.push_back(
        {pm.activation_bytes_opt(), pm.activation_bytes_max(), pm.workspace_bytes(), pm.exact()});
}

// Header fields that need no metadata: magic, size, version, checksums.
struct Header {
  std::string kiln_version, backend, device;
  uint64_t meta_offset = 0, meta_size = 0;
};

Expected<Header> check_header(const FileBytes& f) {
  const std::byte* p = f.data;
  if (f.size == 0) return corrupt("the engine file is empty");
  if (f.size < sizeof(kMagic) || std::memcmp(p, kMagic, sizeof(kMagic)) != 0)
    return corrupt("not a kiln engine: the file does not start with \"KILN\"");
  if (f.size < kEngineHeaderSize)
    return corrupt(fmt::format("truncated engine: {} bytes, the header alone is {}", f.size, kEngineHeaderSize));
  auto version = get<uint32_t>(p, 4);
  if (version != kEngineFormatVersion)
    return Status(ErrorCode::kUnsupported,
                  fmt::format("engine format version {}, this kiln reads version {}: rebuild the engine", version,
                              kEngineFormatVersion));
  if (hash64(p, kHeaderSumAt) != get<uint64_t>(p, kHeaderSumAt)) return corrupt("engine header checksum mismatch");
  if (get<uint32_t>(p, 8) != kEngineHeaderSize || get<uint32_t>(p, 12) != 0)
    return corrupt("engine header: unknown header size or flags");
  auto file_size = get<uint64_t>(p, kFileSizeAt);
  if (f.size < file_size)
    return corrupt(fmt::format("truncated engine: {} bytes, the header says {}", f.size, file_size));
  if (f.size > file_size)
    return corrupt(fmt::format("engine file has {} bytes after its end (the header says {} bytes)", f.size - file_size,
                               file_size));
  if (hash64(p + kEngineHeaderSize, f.size - kEngineHeaderSize) != get<uint64_t>(p, kPayloadSumAt))
    return corrupt("engine checksum mismatch: the file is damaged");
  Header h;
  KILN_ASSIGN_OR_RETURN(h.kiln_version, get_string(p, kVersionOffset, kVersionLen, "kiln version"));
  KILN_ASSIGN_OR_RETURN(h.backend, get_string(p, kBackendOffset, kBackendLen, "backend"));
  KILN_ASSIGN_OR_RETURN(h.device, get_string(p, kDeviceOffset, kDeviceLen, "device"));
  h.meta_offset = get<uint64_t>(p, kMetaOffsetAt);
  h.meta_size = get<uint64_t>(p, kMetaSizeAt);
  if (h.meta_offset < kEngineHeaderSize || h.meta_offset > f.size || h.meta_size > f.size - h.meta_offset)
    return corrupt(
        fmt::format("engine metadata at [{}, +{}) lies outside the {}-byte file", h.meta_offset, h.meta_size, f.size));
  if (h.meta_size > static_cast<uint64_t>(INT_MAX))
    return corrupt(fmt::format("engine metadata of {} bytes is over 2 GB", h.meta_size));
  return h;
}

Status check_compatible(const Header& h) {
  if (h.kiln_version != KILN_VERSION)
    return Status(ErrorCode::kUnsupported, fmt::format("the engine was built by kiln {}, this is kiln {}: rebuild it",
                                                       h.kiln_version, KILN_VERSION));
  auto device = current_device(h.backend);
  if (!device) return device.status();
  if (h.backend == "cuda") {
    // A CUDA engine runs on any GPU of the compute capability it was built
    // for ("cuda:sm_90 NVIDIA H100 ..." and "cuda:sm_90 NVIDIA H200" agree).
    auto arch = [](const std::string& d) { return d.substr(0, d.find(' ')); };
    if (arch(*device) != arch(h.device))
      return Status(ErrorCode::kUnsupported,
                    fmt::format("the engine was built for {} ({}), this GPU is {} ({}): kernels and tactics are "
                                "chosen per compute capability, so rebuild the engine on this GPU (kiln build "
                                "MODEL.onnx --backend cuda), or serve the ONNX model and let kiln rebuild it",
                                arch(h.device).substr(5), h.device.substr(h.device.find(' ') + 1),
                                arch(*device).substr(5), device->substr(device->find(' ') + 1)));
    return Status::ok();
  }
  if (*device != h.device)
    return Status(
        ErrorCode::kUnsupported,
        fmt::format("the engine was built for device '{}', this machine is '{}': rebuild it here", h.device, *device));
  return Status::ok();
}

Expected<SectionSource> check_sections(const engine::Metadata& m, const FileBytes& f, uint64_t meta_offset) {
  SectionSource src;
  src.owner = f.owner;
  for (int i = 0; i < m.sections_size(); ++i) {
    const auto& s = m.sections(i);
    if (s.offset() % kEngineSectionAlignment != 0 || s.offset() < kEngineHeaderSize || s.offset() > meta_offset ||
        s.size() > meta_offset - s.offset())
      return corrupt(fmt::format("engine section {} at [{}, +{}) is misaligned or outside [{}, {})", i, s.offset(),
                                 s.size(), kEngineHeaderSize, meta_offset));
    src.sections.push_back({f.data + s.offset(), s.size()});
  }
  return src;
}

}  // namespace

const ShapeRange* EngineProfile::find(const std::string& input) const {
  for (const auto& [name, r] : ranges)
    if (name == input) return &r;
  return nullptr;
}

Expected<std::string> current_device(const std::string& backend) {
  if (backend == "cpu") {
#if defined(__x86_64__)
    return std::string("cpu:x86_64");
#elif defined(__aarch64__)
    return std::string("cpu:aarch64");
#else
    return std::string("cpu:other");
#endif
  }
  if (backend == "cuda") {
#ifdef KILN_WITH_CUDA
    if (cuda::device_count() == 0) return unsupported("backend 'cuda': {} (use --backend cpu)", no_cuda_gpu_reason());
    int index = 0;
    if (cudaGetDevice(&index) != cudaSuccess) index = 0;
    KILN_ASSIGN_OR_RETURN(auto info, cuda::device_info(index));
    int major = info.cc_major, minor = info.cc_minor;
    // A test hook: pretend another compute capability (e.g. KILN_PRETEND_SM=80).
    if (const char* pretend = std::getenv("KILN_PRETEND_SM"); pretend && std::strlen(pretend) >= 2) {
      major = std::atoi(pretend) / 10;
      minor = std::atoi(pretend) % 10;
    }
    std::string d = fmt::format("cuda:sm_{}{} {}", major, minor, info.name);
    return d.substr(0, kDeviceLen - 1);
#else
    return unsupported("backend 'cuda': {} (use --backend cpu)", no_cuda_gpu_reason());
#endif
  }
  return invalid_argument("unknown backend '{}' (kiln has 'cpu' and 'cuda')", backend);
}

Expected<std::vector<uint8_t>> write_engine(const EngineContents& c) {
  if (!c.graph) return internal_error("write_engine: no graph");
  engine::Metadata m;
  SectionList sections;
  KILN_RETURN_IF_ERROR(encode_graph(*c.graph, sections, m.mutable_graph()));
  encode_profiles(c, m);
  for (const auto& o : c.opsets) {
    auto* po = m.add_opsets();
    po->set_domain(o.domain);
    po->set_version(o.version);
  }
  m.set_producer_name(c.producer_name);
  m.set_producer_version(c.producer_version);
  size_t at = kEngineHeaderSize;
  for (const Tensor* t : sections.tensors) {
    at = align_up(at);
    auto* s = m.add_sections();
    s->set_offset(at);
    s->set_size(t->nbytes());
    at += t->nbytes();
  }
  size_t meta_offset = align_up(at);
  std::string meta;
  {
    google::protobuf::io::StringOutputStream stream(&meta);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    if (!m.SerializeToCodedStream(&coded)) return internal_error("engine metadata did not serialize");
  }
  std::vector<uint8_t> b(meta_offset + meta.size(), 0);
  for (int i = 0; i < m.sections_size(); ++i)
    if (m.sections(i).size())
      std::memcpy(b.data() + m.sections(i).offset(), sections.tensors[i]->raw(), m.sections(i).size());
  std::memcpy(b.data() + meta_offset, meta.data(), meta.size());
  std::memcpy(b.data(), kMagic, sizeof(kMagic));
  put<uint32_t>(b, 4, kEngineFormatVersion);
  put<uint32_t>(b, 8, kEngineHeaderSize);
  KILN_RETURN_IF_ERROR(put_string(b, kVersionOffset, kVersionLen, c.kiln_version, "kiln version"));
  KILN_RETURN_IF_ERROR(put_string(b, kBackendOffset, kBackendLen, c.backend, "backend"));
  KILN_RETURN_IF_ERROR(put_string(b, kDeviceOffset, kDeviceLen, c.device, "device"));
  put<uint64_t>(b, kMetaOffsetAt, meta_offset);
  put<uint64_t>(b, kMetaSizeAt, meta.size());
  put<uint64_t>(b, kFileSizeAt, b.size());
  put<uint64_t>(b, kPayloadSumAt, hash64(b.data() + kEngineHeaderSize, b.size() - kEngineHeaderSize));
  put<uint64_t>(b, kHeaderSumAt, hash64(b.data(), kHeaderSumAt));
  return b;
}

bool reseal_engine(std::vector<uint8_t>& b) {
  if (b.size() < kEngineHeaderSize) return false;
  put<uint64_t>(b, kPayloadSumAt, hash64(b.data() + kEngineHeaderSize, b.size() - kEngineHeaderSize));
  put<uint64_t>(b, kHeaderSumAt, hash64(b.data(), kHeaderSumAt));
  return true;
}

Expected<EngineContents> read_engine(const FileBytes& f) {
  KILN_ASSIGN_OR_RETURN(Header h, check_header(f));
  KILN_RETURN_IF_ERROR(check_compatible(h));
  engine::Metadata m;
  if (!m.ParseFromArray(f.data + h.meta_offset, static_cast<int>(h.meta_size)))
    return corrupt("engine metadata does not parse");
  KILN_ASSIGN_OR_RETURN(SectionSource sections, check_sections(m, f, h.meta_offset));
  EngineContents c;
  c.kiln_version = h.kiln_version;
  c.backend = h.backend;
  c.device = h.device;
  KILN_ASSIGN_OR_RETURN(c.graph, decode_graph(m.graph(), sections));
  decode_profiles(m, c);
  const size_t planned = std::max<size_t>(c.profiles.size(), 1);
  if (c.memory.activations_planned && c.memory.profiles.size() != planned)
    return corrupt(fmt::format("engine metadata: the memory report covers {} profiles, the engine has {}",
                               c.memory.profiles.size(), planned));
  for (const auto& o : m.opsets()) c.opsets.push_back({o.domain(), o.version()});
  c.producer_name = m.producer_name();
  c.producer_version = m.producer_version();
  return c;
}

}  // namespace kiln
