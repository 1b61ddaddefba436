// ONNX TensorProto <-> kiln Tensor. Sizes are checked against the data before
// anything is allocated, so a corrupt file cannot ask for terabytes.
#pragma once

#include <string>

#include "ir/tensor.h"
#include "ir/type.h"
#include "support/status.h"

namespace onnx {
class TensorProto;
class TypeProto;
class SparseTensorProto;
}  // namespace onnx

namespace kiln {

// Sparse tensors are made dense; past this many bytes that is refused.
constexpr int64_t kMaxSparseDenseBytes = int64_t(1) << 30;

struct TensorReadOptions {
  // Folder that external data locations are relative to (the model's folder).
  std::string base_dir;
  int64_t max_sparse_dense_bytes = kMaxSparseDenseBytes;
};

Expected<Tensor> tensor_from_proto(const onnx::TensorProto& proto, const TensorReadOptions& options = {});
Expected<Tensor> tensor_from_sparse_proto(const onnx::SparseTensorProto& proto, const TensorReadOptions& options = {});
// Writes raw_data (or string_data) with dims, dtype and name.
void tensor_to_proto(const Tensor& t, const std::string& name, onnx::TensorProto* proto);
// Reads a serialized TensorProto file (.pb), e.g. the ONNX test data's input_0.pb.
Expected<Tensor> read_tensor_file(const std::string& path, std::string* name = nullptr);
Status write_tensor_file(const std::string& path, const Tensor& t, const std::string& name);

// Type from a TypeProto; `origin` names the value in error messages.
Expected<Type> type_from_proto(const onnx::TypeProto& proto, const std::string& origin);

}  // namespace kiln
