#include "backends/cuda/sequence_ops.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <memory>

#include "backends/cuda/cuda_status.h"

namespace kiln::cuda {
namespace {

// Whether `count` elements of `dtype` take whole bytes (4-bit types split a
// byte when the count is odd).
bool whole_bytes(DType dtype, int64_t count) {
  return static_cast<int64_t>(dtype_storage_bytes(dtype, count)) * 8 == count * dtype_bits(dtype);
}

// `rows` rows of `width` bytes from `src` (rows `spitch` apart) to `dst`
// (`dpitch` apart), on the device: one copy when contiguous (a 2-D copy's
// pitch is limited to the device's largest pitch), else one 2-D copy.
Status copy_rows(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t rows,
                 cudaStream_t stream) {
  if (width == 0 || rows == 0) return Status::ok();
  if (rows == 1 || (dpitch == width && spitch == width)) {
    KILN_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(dst, src, width * rows, cudaMemcpyDeviceToDevice, stream));
    return Status::ok();
  }
  KILN_CUDA_RETURN_IF_ERROR(cudaMemcpy2DAsync(dst, dpitch, src, spitch, width, rows, cudaMemcpyDeviceToDevice, stream));
  return Status::ok();
}

// Device memory held until the run ends.
Expected<void*> allocate(ControlFlowRun& run, size_t bytes) {
  void* p = nullptr;
  KILN_CUDA_RETURN_IF_ERROR(cudaMallocAsync(&p, std::max<size_t>(bytes, 1), run.stream()));
  run.hold(p);
  return p;
}

// Input `i` of `node` (an error when omitted).
Expected<OuterValue> input(const Node& node, size_t i, ControlFlowRun& run) {
  if (!node.input(i)) return invalid_model("{}: input {} is missing", where(node), i);
  return run.value(node.input(i));
}

bool is_list(const OuterValue& v) { return v.list || (v.host && !v.host->is_tensor()); }

// `v`, a tensor, as a list element.
Expected<DeviceTensor> element_of(const Node& node, const OuterValue& v) {
  if (is_list(v))
    return invalid_argument("{}: '{}' is a sequence or optional, a tensor is needed", where(node),
                            v.value ? v.value->name : "");
  if (v.dtype == DType::kString || (!v.data && v.host && checked_numel(v.dims) != 0))
    return unsupported("{}: '{}' holds {}; the CUDA backend keeps numeric tensors in sequences", where(node),
                       v.value ? v.value->name : "", dtype_name(v.dtype));
  return DeviceTensor{v.dtype, v.dims, const_cast<void*>(v.data)};
}

// A list only the host has, uploaded (held until the run ends).
Expected<std::shared_ptr<const DeviceList>> upload_list(const Node& node, const RunValue& host, ControlFlowRun& run) {
  std::vector<void*> owned;
  auto list = cuda::upload_list(host, run.stream(), owned);
  for (void* p : owned) run.hold(p);
  if (!list) return list.status().with_context(where(node));
  return list;
}

// `v` as a list (uploaded when only the host has it); an error for a tensor.
Expected<std::shared_ptr<const DeviceList>> list_of(const Node& node, const OuterValue& v, ControlFlowRun& run) {
  if (v.list) return v.list;
  if (v.host && !v.host->is_tensor()) return upload_list(node, *v.host, run);
  return invalid_argument("{}: '{}' is a tensor, a sequence or optional is needed", where(node),
                          v.value ? v.value->name : "");
}

// Input `i`, a sequence.
Expected<std::shared_ptr<const DeviceList>> sequence_input(const Node& node, size_t i, ControlFlowRun& run) {
  KILN_ASSIGN_OR_RETURN(OuterValue v, input(node, i, run));
  KILN_ASSIGN_OR_RETURN(auto list, list_of(node, v, run));
  if (list->kind != Type::Kind::kSequence) return invalid_argument("{}: input {} must be a sequence", where(node), i);
  return list;
}

// The position input `i` (read on the host), checked against [-n, n - 1]
// (or [-n, n] when `may_be_end`) and made non-negative; `fallback` when
// omitted.
Expected<int64_t> position(const Node& node, size_t i, int64_t n, bool may_be_end, int64_t fallback,
                           ControlFlowRun& run) {
  if (!node.input(i)) return fallback;
  KILN_ASSIGN_OR_RETURN(OuterValue v, run.value(node.input(i)));
  if (!v.host || !v.host->is_tensor()) return internal_error("{}: the position is not on the host", where(node));
  KILN_ASSIGN_OR_RETURN(auto p, v.host->tensor.to_i64_vector());
  if (p.size() != 1) return invalid_argument("{}: position must be a scalar, has {} elements", where(node), p.size());
  const int64_t hi = may_be_end ? n : n - 1;
  if (p[0] < -n || p[0] > hi)
    return invalid_argument("{}: position {} is out of range [{}, {}]", where(node), p[0], -n, hi);
  return p[0] < 0 ? p[0] + n : p[0];
}

OuterValue of_list(DeviceList list) {
  OuterValue o;
  o.list = std::make_shared<const DeviceList>(std::move(list));
  return o;
}

OuterValue of_element(const DeviceTensor& t) {
  OuterValue o;
  o.dtype = t.dtype;
  o.dims = t.dims;
  o.data = t.data;
  return o;
}

OuterValue of_host(Tensor t) {
  OuterValue o;
  o.dtype = t.dtype();
  o.dims = t.dims();
  o.host = std::make_shared<const RunValue>(RunValue::of(std::move(t)));
  return o;
}

Expected<OuterValue> sequence_construct(const Node& node, ControlFlowRun& run) {
  DeviceList list;
  for (size_t i = 0; i < node.inputs.size(); ++i) {
    KILN_ASSIGN_OR_RETURN(OuterValue v, input(node, i, run));
    KILN_ASSIGN_OR_RETURN(DeviceTensor t, element_of(node, v));
    list.elements.push_back(std::move(t));
  }
  return of_list(std::move(list));
}

Expected<OuterValue> sequence_at(const Node& node, ControlFlowRun& run) {
  KILN_ASSIGN_OR_RETURN(auto seq, sequence_input(node, 0, run));
  const auto n = static_cast<int64_t>(seq->elements.size());
  if (!node.input(1)) return invalid_model("{}: position is missing", where(node));
  KILN_ASSIGN_OR_RETURN(int64_t p, position(node, 1, n, false, 0, run));
  return of_element(seq->elements[static_cast<size_t>(p)]);
}

Expected<OuterValue> sequence_insert(const Node& node, ControlFlowRun& run) {
  KILN_ASSIGN_OR_RETURN(auto seq, sequence_input(node, 0, run));
  const auto n = static_cast<int64_t>(seq->elements.size());
  KILN_ASSIGN_OR_RETURN(int64_t p, position(node, 2, n, true, n, run));
  KILN_ASSIGN_OR_RETURN(OuterValue v, input(node, 1, run));
  KILN_ASSIGN_OR_RETURN(DeviceTensor t, element_of(node, v));
  if (n > 0 && seq->elements[0].dtype != t.dtype)
    return invalid_argument("{}: cannot insert {} into a sequence of {}", where(node), dtype_name(t.dtype),
                            dtype_name(seq->elements[0].dtype));
  DeviceList out = *seq;
  out.elements.insert(out.elements.begin() + p, std::move(t));
  return of_list(std::move(out));
}

Expected<OuterValue> sequence_erase(const Node& node, ControlFlowRun& run) {
  KILN_ASSIGN_OR_RETURN(auto seq, sequence_input(node, 0, run));
  const auto n = static_cast<int64_t>(seq->elements.size());
  if (n == 0) return invalid_argument("{}: the sequence is empty", where(node));
  KILN_ASSIGN_OR_RETURN(int64_t p, position(node, 1, n, false, n - 1, run));
  DeviceList out = *seq;
  out.elements.erase(out.elements.begin() + p);
  return of_list(std::move(out));
}

// The lengths of the pieces SplitToSequence cuts a dim of `len` into.
Expected<std::vector<int64_t>> split_lengths(const Node& node, int64_t len, ControlFlowRun& run) {
  if (!node.input(1)) return std::vector<int64_t>(static_cast<size_t>(len), 1);
  KILN_ASSIGN_OR_RETURN(OuterValue v, run.value(node.input(1)));
  if (!v.host || !v.host->is_tensor()) return internal_error("{}: split is not on the host", where(node));
  KILN_ASSIGN_OR_RETURN(auto split, v.host->tensor.to_i64_vector());
  if (v.host->tensor.rank() == 0) {
    const int64_t s = split[0];
    if (s <= 0) return invalid_argument("{}: split {} must be positive", where(node), s);
    std::vector<int64_t> out;
    for (int64_t at = 0; at < len; at += s) out.push_back(std::min(s, len - at));
    return out;
  }
  int64_t sum = 0;
  for (int64_t s : split) {
    if (s < 0) return invalid_argument("{}: split holds a negative length {}", where(node), s);
    sum += s;
  }
  if (sum != len) return invalid_argument("{}: split sums to {} but the axis has length {}", where(node), sum, len);
  return split;
}

// Each piece is copied (copy_rows: a row per index before the axis).
Expected<OuterValue> split_to_sequence(const Node& node, ControlFlowRun& run) {
  KILN_ASSIGN_OR_RETURN(OuterValue xv, input(node, 0, run));
  KILN_ASSIGN_OR_RETURN(DeviceTensor x, element_of(node, xv));
  const int64_t rank = x.rank();
  int64_t axis = node.attr_int("axis", 0);
  if (axis < 0) axis += rank;
  if (axis < 0 || axis >= rank) return invalid_argument("{}: axis is out of range", where(node));
  const auto a = static_cast<size_t>(axis);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> lengths, split_lengths(node, x.dims[a], run));
  const bool squeeze = !node.input(1) && node.attr_int("keepdims", 1) == 0;
  const int64_t outer = dims_product(x.dims, 0, a), inner = dims_product(x.dims, a + 1, x.dims.size());
  if (!whole_bytes(x.dtype, inner))
    return unsupported("{}: splitting {} along axis {} splits bytes", where(node), dtype_name(x.dtype), axis);
  const size_t inner_bytes = dtype_storage_bytes(x.dtype, inner);
  const size_t row_bytes = static_cast<size_t>(x.dims[a]) * inner_bytes;
  DeviceList list;
  int64_t at = 0;
  for (int64_t len : lengths) {
    DeviceTensor piece{x.dtype, x.dims, nullptr};
    piece.dims[a] = len;
    const size_t piece_row = static_cast<size_t>(len) * inner_bytes;
    KILN_ASSIGN_OR_RETURN(piece.data, allocate(run, piece_row * static_cast<size_t>(outer)));
    KILN_RETURN_IF_ERROR(copy_rows(piece.data, piece_row,
                                   static_cast<const char*>(x.data) + static_cast<size_t>(at) * inner_bytes, row_bytes,
                                   piece_row, static_cast<size_t>(outer), run.stream()));
    at += len;
    if (squeeze) piece.dims.erase(piece.dims.begin() + axis);
    list.elements.push_back(std::move(piece));
  }
  return of_list(std::move(list));
}

// The elements copied side by side along the axis (copy_rows, one per element).
Expected<OuterValue> concat_from_sequence(const Node& node, ControlFlowRun& run) {
  KILN_ASSIGN_OR_RETURN(auto seq, sequence_input(node, 0, run));
  if (seq->elements.empty()) return invalid_argument("{}: the sequence is empty", where(node));
  const bool new_axis = node.attr_int("new_axis", 0) != 0;
  const DeviceTensor& first = seq->elements[0];
  const int64_t rank = first.rank() + (new_axis ? 1 : 0);
  int64_t axis = node.attr_int("axis", 0);
  if (axis < -rank || axis >= rank) return invalid_argument("{}: axis {} is out of range", where(node), axis);
  if (axis < 0) axis += rank;
  const auto a = static_cast<size_t>(axis);
  // Each element's dims as the output sees them (1 inserted at a new axis).
  std::vector<std::vector<int64_t>> dims;
  for (size_t e = 0; e < seq->elements.size(); ++e) {
    const DeviceTensor& t = seq->elements[e];
    std::vector<int64_t> d = t.dims;
    if (new_axis) d.insert(d.begin() + axis, 1);
    bool fits = t.dtype == first.dtype && static_cast<int64_t>(d.size()) == rank;
    for (size_t k = 0; fits && k < d.size(); ++k) fits = k == a || e == 0 || d[k] == dims.front()[k];
    if (!fits)
      return invalid_argument("{}: element {} is {} {}, element 0 is {} {}", where(node), e, dtype_name(t.dtype),
                              Shape::of(t.dims).to_string(), dtype_name(first.dtype),
                              Shape::of(first.dims).to_string());
    if (new_axis && e > 0 && t.dims != first.dims)
      return invalid_argument("{}: element {} is {}, element 0 is {}; stacking needs equal dims", where(node), e,
                              Shape::of(t.dims).to_string(), Shape::of(first.dims).to_string());
    dims.push_back(std::move(d));
  }
  std::vector<int64_t> out_dims = dims[0];
  out_dims[a] = 0;
  for (const auto& d : dims) out_dims[a] += d[a];
  const int64_t outer = dims_product(out_dims, 0, a);
  const int64_t out_inner = dims_product(out_dims, a, out_dims.size());
  if (!whole_bytes(first.dtype, dims_product(out_dims, a + 1, out_dims.size())))
    return unsupported("{}: concatenating {} along axis {} splits bytes", where(node), dtype_name(first.dtype), axis);
  const size_t out_row = dtype_storage_bytes(first.dtype, out_inner);
  KILN_ASSIGN_OR_RETURN(void* out, allocate(run, out_row * static_cast<size_t>(outer)));
  size_t offset = 0;
  for (size_t e = 0; e < seq->elements.size(); ++e) {
    const size_t row = dtype_storage_bytes(first.dtype, dims_product(dims[e], a, dims[e].size()));
    KILN_RETURN_IF_ERROR(copy_rows(static_cast<char*>(out) + offset, out_row, seq->elements[e].data, row, row,
                                   static_cast<size_t>(outer), run.stream()));
    offset += row;
  }
  OuterValue o;
  o.dtype = first.dtype;
  o.dims = std::move(out_dims);
  o.data = out;
  return o;
}

Expected<OuterValue> optional(const Node& node, ControlFlowRun& run) {
  DeviceList list;
  list.kind = Type::Kind::kOptional;
  if (node.input(0)) {
    KILN_ASSIGN_OR_RETURN(OuterValue v, run.value(node.input(0)));
    if (is_list(v)) {
      KILN_ASSIGN_OR_RETURN(auto seq, list_of(node, v, run));
      if (seq->kind != Type::Kind::kSequence)
        return invalid_argument("{}: the input is an optional, a tensor or sequence is needed", where(node));
      list.holds_sequence = true;
      list.elements = seq->elements;
    } else {
      KILN_ASSIGN_OR_RETURN(DeviceTensor t, element_of(node, v));
      list.elements.push_back(std::move(t));
    }
  } else {
    list.present = false;
    const Attribute* t = node.attr("type");
    list.holds_sequence = t && t->type.kind == Type::Kind::kSequence;
  }
  return of_list(std::move(list));
}

Expected<OuterValue> optional_has_element(const Node& node, ControlFlowRun& run) {
  bool has = false;
  if (node.input(0)) {
    KILN_ASSIGN_OR_RETURN(OuterValue v, run.value(node.input(0)));
    if (v.list) {
      has = v.list->kind != Type::Kind::kOptional || v.list->present;
    } else if (v.host && !v.host->is_tensor()) {
      has = v.host->kind != Type::Kind::kOptional || v.host->present;
    } else {
      has = true;  // a tensor
    }
  }
  return of_host(Tensor::from_vector<uint8_t>(DType::kBool, {}, {static_cast<uint8_t>(has)}));
}

Expected<OuterValue> optional_get_element(const Node& node, ControlFlowRun& run) {
  KILN_ASSIGN_OR_RETURN(OuterValue v, input(node, 0, run));
  if (!is_list(v)) return v;  // a tensor: itself
  KILN_ASSIGN_OR_RETURN(auto list, list_of(node, v, run));
  if (list->kind != Type::Kind::kOptional) return of_list(*list);  // a sequence: itself
  if (!list->present) return invalid_argument("{}: the optional is empty", where(node));
  if (list->holds_sequence) {
    DeviceList seq;
    seq.elements = list->elements;
    return of_list(std::move(seq));
  }
  if (list->elements.size() != 1) return internal_error("{}: the optional holds no tensor", where(node));
  return of_element(list->elements[0]);
}

Expected<OuterValue> run_one(const Node& node, ControlFlowRun& run) {
  const std::string& op = node.op_type;
  if (op == "SequenceConstruct") return sequence_construct(node, run);
  if (op == "SequenceEmpty") return of_list(DeviceList{});
  if (op == "SequenceAt") return sequence_at(node, run);
  if (op == "SequenceInsert") return sequence_insert(node, run);
  if (op == "SequenceErase") return sequence_erase(node, run);
  if (op == "SequenceLength") {
    KILN_ASSIGN_OR_RETURN(auto seq, sequence_input(node, 0, run));
    return of_host(Tensor::scalar_i64(static_cast<int64_t>(seq->elements.size())));
  }
  if (op == "SplitToSequence") return split_to_sequence(node, run);
  if (op == "ConcatFromSequence") return concat_from_sequence(node, run);
  if (op == "Optional") return optional(node, run);
  if (op == "OptionalHasElement") return optional_has_element(node, run);
  if (op == "OptionalGetElement") return optional_get_element(node, run);
  if (op == "Identity") return input(node, 0, run);  // of a sequence or optional: the same list
  return unsupported("{}: not a sequence op the CUDA backend runs", where(node));
}

}  // namespace

Expected<std::shared_ptr<const DeviceList>> upload_list(const RunValue& host, cudaStream_t stream,
                                                        std::vector<void*>& owned) {
  auto list = std::make_shared<DeviceList>();
  list->kind = host.kind;
  list->present = host.present;
  list->holds_sequence = host.holds_sequence;
  std::vector<const Tensor*> items;
  if (host.kind == Type::Kind::kSequence || (host.present && host.holds_sequence)) {
    for (const Tensor& t : host.sequence) items.push_back(&t);
  } else if (host.present) {
    items.push_back(&host.tensor);
  }
  for (const Tensor* t : items) {
    if (t->dtype() == DType::kString)
      return unsupported("a sequence or optional of strings; the CUDA backend keeps numeric tensors in them");
    void* p = nullptr;
    KILN_CUDA_RETURN_IF_ERROR(cudaMallocAsync(&p, std::max<size_t>(t->nbytes(), 1), stream));
    owned.push_back(p);
    if (t->nbytes())
      KILN_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(p, t->raw(), t->nbytes(), cudaMemcpyHostToDevice, stream));
    list->elements.push_back({t->dtype(), t->dims(), p});
  }
  return std::shared_ptr<const DeviceList>(std::move(list));
}

Expected<std::shared_ptr<const DeviceList>> device_list(const Node& node, const OuterValue& v, ControlFlowRun& run) {
  if (v.list) return v.list;
  if (v.host && !v.host->is_tensor()) return upload_list(node, *v.host, run);
  return std::shared_ptr<const DeviceList>();
}

Expected<std::vector<OuterValue>> run_sequence_op(const Node& node, ControlFlowRun& run) {
  if (!is_device_sequence_op(node.domain, node.op_type) && !(node.domain.empty() && node.op_type == "Identity"))
    return unsupported("{}: not a sequence op the CUDA backend runs", where(node));
  KILN_ASSIGN_OR_RETURN(OuterValue out, run_one(node, run));
  std::vector<OuterValue> outs;
  outs.push_back(std::move(out));
  return outs;
}

Expected<RunValue> download_list(const DeviceList& list, cudaStream_t stream) {
  std::vector<Tensor> tensors;
  for (const DeviceTensor& e : list.elements) {
    Tensor t(e.dtype, e.dims);
    if (t.nbytes())
      KILN_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(t.mutable_raw(), e.data, t.nbytes(), cudaMemcpyDeviceToHost, stream));
    tensors.push_back(std::move(t));
  }
  RunValue v;
  v.kind = list.kind;
  v.present = list.present;
  v.holds_sequence = list.holds_sequence;
  if (list.kind == Type::Kind::kSequence || list.holds_sequence) {
    v.sequence = std::move(tensors);
  } else if (!tensors.empty()) {
    v.tensor = std::move(tensors[0]);
  }
  return v;
}

}  // namespace kiln::cuda
