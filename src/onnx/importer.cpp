#include "onnx/importer.h"

#include <fmt/format.h>
#include <google/protobuf/io/coded_stream.h>
#include <onnx/onnx-ml.pb.h>

#include <filesystem>
#include <limits>

#include "onnx/function_inliner.h"
#include "onnx/graph_importer.h"
#include "ops/shape_inference.h"
#include "support/file.h"

namespace kiln {
namespace {

Status parse_model(const void* data, size_t size, onnx::ModelProto& proto) {
  if (size == 0) return make_error(ErrorCode::kCorrupt, "the file is empty");
  // A protobuf message cannot exceed 2 GB; larger models keep weights in external data.
  if (size > static_cast<size_t>(std::numeric_limits<int>::max()))
    return make_error(ErrorCode::kCorrupt,
                      "the file is {} bytes; an ONNX protobuf is at most 2 GB (larger models keep "
                      "their weights in external data files)",
                      size);
  google::protobuf::io::CodedInputStream in(static_cast<const uint8_t*>(data), static_cast<int>(size));
  in.SetTotalBytesLimit(std::numeric_limits<int>::max());
  in.SetRecursionLimit(256);
  if (!proto.ParseFromCodedStream(&in) || !in.ConsumedEntireMessage())
    return make_error(ErrorCode::kCorrupt, "not a valid ONNX model: the protobuf is truncated or corrupt");
  if (!proto.has_graph())
    return make_error(ErrorCode::kCorrupt, "not a valid ONNX model: it has no graph (is this an ONNX file?)");
  return Status::ok();
}

void report_model(std::vector<Diagnostic>& ds, Diagnostic::Reason reason, std::string message, std::string hint = {}) {
  Diagnostic d;
  d.reason = reason;
  d.graph = "main";
  d.message = std::move(message);
  d.hint = std::move(hint);
  ds.push_back(std::move(d));
}

}  // namespace

Expected<ImportResult> import_onnx_bytes(const void* data, size_t size, const ImportOptions& options) {
  onnx::ModelProto proto;
  KILN_RETURN_IF_ERROR(parse_model(data, size, proto));
  if (proto.ir_version() <= 0) return make_error(ErrorCode::kCorrupt, "not a valid ONNX model: ir_version is missing");
  if (proto.ir_version() > kMaxIrVersion)
    return unsupported("the model has IR version {}; kiln reads IR versions up to {}", proto.ir_version(),
                       kMaxIrVersion);

  ImportResult result;
  Model& m = result.model;
  m.ir_version = proto.ir_version();
  m.producer_name = proto.producer_name();
  m.producer_version = proto.producer_version();
  m.domain = proto.domain();
  m.model_version = proto.model_version();
  m.doc_string = proto.doc_string();
  for (const auto& kv : proto.metadata_props()) m.metadata[kv.key()] = kv.value();

  std::map<std::string, int64_t> opsets;
  for (const auto& o : proto.opset_import()) {
    std::string domain = o.domain() == "ai.onnx" ? "" : o.domain();
    auto [it, added] = opsets.emplace(domain, o.version());
    if (!added) {
      report_model(result.diagnostics, Diagnostic::Reason::kInvalidModel,
                   fmt::format("opset_import lists domain '{}' twice ({} and {})", domain.empty() ? "ai.onnx" : domain,
                               it->second, o.version()));
      continue;
    }
    m.opsets.push_back({domain, o.version()});
  }
  // IR versions 1 and 2 had no opset_import: it then means ai.onnx opset 1.
  // From IR 3 on it is required, and a file without it is most likely cut short.
  if (proto.opset_import_size() == 0 && proto.ir_version() >= 3)
    report_model(result.diagnostics, Diagnostic::Reason::kInvalidModel,
                 fmt::format("the model (IR version {}) has no opset_import", proto.ir_version()),
                 "every model from IR version 3 on names the opsets it uses");
  if (proto.opset_import_size() == 0) {
    opsets[""] = 1;
    m.opsets.push_back({"", 1});
  }
  auto def = opsets.find("");
  if (def != opsets.end() && (def->second < kMinOpset || def->second > kMaxOpset))
    report_model(result.diagnostics, Diagnostic::Reason::kUnsupportedOp,
                 fmt::format("the model imports ai.onnx opset {}; kiln reads opsets {} to {}", def->second, kMinOpset,
                             kMaxOpset),
                 "re-export the model with a supported opset");

  inline_model_functions(proto, opsets, result.diagnostics);

  ImportScope scope;
  scope.opsets = &opsets;
  scope.tensor_options.base_dir = options.external_data_dir;
  scope.tensor_options.max_sparse_dense_bytes = options.max_sparse_dense_bytes;
  scope.diagnostics = &result.diagnostics;
  m.graph = std::make_shared<Graph>();
  import_graph(proto.graph(), *m.graph, scope, "main");
  if (options.infer_shapes) infer_shapes(*m.graph, result.diagnostics);
  return result;
}

Expected<ImportResult> import_onnx_file(const std::string& path, const ImportOptions& options) {
  auto bytes = map_file(path);
  if (!bytes) return bytes.status();
  ImportOptions opts = options;
  if (opts.external_data_dir.empty()) opts.external_data_dir = std::filesystem::path(path).parent_path().string();
  auto r = import_onnx_bytes(bytes->data, bytes->size, opts);
  if (!r) return r.status().with_context(fmt::format("'{}'", path));
  return r;
}

}  // namespace kiln
