// The ONNX importer: a model file in, kiln's IR out, with every problem found
// reported at once.
#pragma once

#include <string>
#include <vector>

#include "ir/diagnostic.h"
#include "ir/graph.h"
#include "support/status.h"

namespace kiln {

struct ImportOptions {
  bool infer_shapes = true;
  // Folder for external data; defaults to the model file's folder.
  std::string external_data_dir;
  // A sparse tensor made dense may not take more (the fuzzer lowers it).
  int64_t max_sparse_dense_bytes = int64_t(1) << 30;
};

struct ImportResult {
  Model model;
  // Every unsupported or invalid node and graph-level problem; empty when the
  // model is fully supported.
  std::vector<Diagnostic> diagnostics;
  bool ok() const { return diagnostics.empty(); }
};

// A Status error when the file cannot be read or is not an ONNX model at all
// (truncated, corrupt, wrong version); diagnostics for everything else.
Expected<ImportResult> import_onnx_file(const std::string& path, const ImportOptions& options = {});
Expected<ImportResult> import_onnx_bytes(const void* data, size_t size, const ImportOptions& options = {});

// Newest IR version and default-domain opset kiln reads.
constexpr int64_t kMaxIrVersion = 14;
constexpr int64_t kMinOpset = 1;
constexpr int64_t kMaxOpset = 28;

}  // namespace kiln
