// The engine file: a fixed 128-byte header, then 64-byte aligned raw sections
// (weights and other large data), then the metadata (engine.proto).
//
//   offset size  field (little-endian)
//        0    4  magic "KILN"
//        4    4  format version (kEngineFormatVersion)
//        8    4  header size (128)
//       12    4  flags (0; reserved)
//       16   16  kiln version, NUL-padded ("0.1.0")
//       32   16  backend, NUL-padded ("cpu", "cuda")
//       48   40  device, NUL-padded ("cpu:x86_64", "cuda:sm_90")
//       88    8  metadata offset
//       96    8  metadata size
//      104    8  file size
//      112    8  checksum of bytes [128, file size)  (hash64)
//      120    8  checksum of bytes [0, 120)
//
// Weight tensors of a loaded engine are views into the file's bytes. Writing
// is deterministic: the same contents give the same bytes.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ir/graph.h"
#include "kiln/runtime.h"
#include "support/file.h"
#include "support/status.h"

namespace kiln {

constexpr uint32_t kEngineFormatVersion = 1;
constexpr size_t kEngineHeaderSize = 128;
constexpr size_t kEngineSectionAlignment = 64;

struct EngineProfile {
  std::vector<std::pair<std::string, ShapeRange>> ranges;  // dynamic inputs only
  const ShapeRange* find(const std::string& input) const;
};

struct EngineSettings {
  bool fp16 = false;
  bool bf16 = false;
  bool tf32 = false;
  bool strongly_typed = false;
  uint64_t workspace_limit_bytes = 0;
  int optimization_level = 3;
  bool allow_cpu_fallback = false;  // cuda: nodes without a GPU kernel run on the host
};

// Everything an engine file holds.
struct EngineContents {
  std::string kiln_version;
  std::string backend;
  std::string device;
  std::shared_ptr<Graph> graph;
  std::vector<OpsetImport> opsets;
  std::string producer_name;
  std::string producer_version;
  std::vector<EngineProfile> profiles;
  EngineSettings settings;
  MemoryReport memory;  // workspace_limit_bytes is settings' (not stored twice)
};

// The device string this process would build for or run on for `backend`;
// an error when the backend is not part of this build.
Expected<std::string> current_device(const std::string& backend);

Expected<std::vector<uint8_t>> write_engine(const EngineContents& contents);

// Recomputes both checksums of an engine's bytes in place (for tools and
// tests that edit an engine on purpose); false when too short to have a header.
bool reseal_engine(std::vector<uint8_t>& bytes);

// Checks the header, checksums, version, backend, device, metadata and every
// section reference; tensors view `file`'s bytes (kept alive by its owner).
Expected<EngineContents> read_engine(const FileBytes& file);

}  // namespace kiln
