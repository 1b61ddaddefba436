// TfIdfVectorizer (ai.onnx 9) on the GPU for int32 and int64 tokens
// (kernels/tfidf_vectorizer.cu), with the CPU kernel's semantics
// (cpu/kernels/tfidf_vectorizer.cpp). On a plan's first run the attributes
// become per-length tables of distinct, sorted n-grams (the first of equal
// n-grams keeps its column, as on the CPU), checked the CPU's way and
// uploaded once into ctx.state() while the plan lives. String tokens (and
// pool_strings) stay on the host.
#include "backends/cuda/kernels/tfidf_vectorizer.cuh"

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <vector>

#include "backends/cuda/cuda_kernel.h"
#include "backends/cuda/device.h"
#include "backends/cuda/ops/device_tables.h"
#include "backends/cuda/ops/norm_op_util.h"

namespace kiln::cuda {
namespace {

constexpr const char* kStringsOnHost =
    "TfIdfVectorizer: string tokens stay on the host; int32/int64 tokens run on the GPU";

// The pool as the kernel reads it, on the host (see TfIdfParams).
struct HostPool {
  std::vector<int64_t> tokens, token_begin, entry_begin;
  std::vector<int32_t> columns;
  int32_t min_n = 1, max_n = 0;  // max_n: the longest gram length with a table
};

Expected<HostPool> read_pool(const Node& n) {
  const int64_t min_n = n.attr_int("min_gram_length", 1), max_n = n.attr_int("max_gram_length", 1);
  const std::vector<int64_t> pool = n.attr_ints("pool_int64s");
  const std::vector<int64_t> counts = n.attr_ints("ngram_counts"), indexes = n.attr_ints("ngram_indexes");
  // Pool entries are grouped by n: ngram_counts[k] is where the (k+1)-grams
  // start. Every gram takes an index, in or out of [min_n, max_n].
  std::vector<std::map<std::vector<int64_t>, int64_t>> grams;
  size_t id = 0;
  for (size_t k = 0; k < counts.size(); ++k) {
    const auto gram = static_cast<int64_t>(k + 1);
    const auto begin = static_cast<size_t>(counts[k]);
    const size_t end = k + 1 < counts.size() ? static_cast<size_t>(counts[k + 1]) : pool.size();
    if (begin > end || end > pool.size()) return invalid_model("TfIdfVectorizer: ngram_counts does not fit the pool");
    for (size_t at = begin; at + static_cast<size_t>(gram) <= end; at += static_cast<size_t>(gram), ++id) {
      if (id >= indexes.size()) return invalid_model("TfIdfVectorizer: ngram_indexes has fewer entries than the pool");
      if (gram < min_n || gram > max_n) continue;
      if (grams.size() <= static_cast<size_t>(gram)) grams.resize(static_cast<size_t>(gram) + 1);
      std::vector<int64_t> key(pool.begin() + static_cast<long>(at), pool.begin() + static_cast<long>(at) + gram);
      grams[static_cast<size_t>(gram)].emplace(std::move(key), indexes[id]);
    }
  }
  const int64_t width = *std::max_element(indexes.begin(), indexes.end()) + 1;
  if (width > INT32_MAX) return unsupported("TfIdfVectorizer: {} output columns (the CUDA kernel takes < 2^31)", width);
  HostPool p;
  // Tables hold only grams of length min_n .. max_n, so both fit int32.
  p.max_n = grams.empty() ? 0 : static_cast<int32_t>(grams.size() - 1);
  p.min_n = grams.empty() ? 1 : static_cast<int32_t>(std::max<int64_t>(min_n, 1));
  grams.resize(static_cast<size_t>(p.max_n) + 2);
  for (size_t g = 0; g < grams.size(); ++g) {
    p.token_begin.push_back(static_cast<int64_t>(p.tokens.size()));
    p.entry_begin.push_back(static_cast<int64_t>(p.columns.size()));
    for (const auto& [key, column] : grams[g]) {
      // The CPU counts only columns inside the output (a negative one never).
      if (column < 0 || column >= width) continue;
      p.tokens.insert(p.tokens.end(), key.begin(), key.end());
      p.columns.push_back(static_cast<int32_t>(column));
    }
  }
  return p;
}

// The pool and weights on the device, kept for the plan: `params` holds
// their pointers.
struct DevicePool {
  DeviceBuffer buffer;
  TfIdfParams params;
};

Expected<std::shared_ptr<DevicePool>> upload(const HostPool& pool, const std::vector<float>& weights,
                                             cudaStream_t stream) {
  std::vector<char> bytes;
  const size_t tokens = add_array(bytes, pool.tokens), token_begin = add_array(bytes, pool.token_begin),
               entry_begin = add_array(bytes, pool.entry_begin), columns = add_array(bytes, pool.columns),
               w = add_array(bytes, weights);
  auto d = std::make_shared<DevicePool>();
  KILN_ASSIGN_OR_RETURN(d->buffer, DeviceBuffer::allocate(std::max<size_t>(bytes.size(), 1)));
  if (!bytes.empty()) KILN_RETURN_IF_ERROR(d->buffer.copy_from_host(bytes.data(), bytes.size(), stream));
  const auto* b = static_cast<const char*>(d->buffer.data());
  TfIdfParams& p = d->params;
  p.tokens = reinterpret_cast<const int64_t*>(b + tokens);
  p.token_begin = reinterpret_cast<const int64_t*>(b + token_begin);
  p.entry_begin = reinterpret_cast<const int64_t*>(b + entry_begin);
  p.columns = reinterpret_cast<const int32_t*>(b + columns);
  p.min_n = pool.min_n, p.max_n = pool.max_n;
  p.weights = reinterpret_cast<const float*>(b + w);
  p.weight_count = static_cast<int64_t>(weights.size());
  return d;
}

// Rows and tokens per row, the CPU's way: a 2-D input is [rows, cols], any
// other is one row.
void rows_cols(const std::vector<int64_t>& dims, int64_t& rows, int64_t& cols) {
  int64_t numel = 1;
  for (int64_t d : dims) numel *= d;
  rows = dims.size() == 2 ? dims[0] : 1;
  cols = dims.size() == 2 ? dims[1] : numel;
}

int64_t output_width(const Node& n) {
  const std::vector<int64_t> indexes = n.attr_ints("ngram_indexes");
  return indexes.empty() ? 0 : *std::max_element(indexes.begin(), indexes.end()) + 1;
}

Status run_tfidf(KernelContext& ctx) {
  const Node& n = ctx.node();
  const DeviceTensor& x = ctx.input(0);
  if (x.dtype != DType::kI32 && x.dtype != DType::kI64) return unsupported("{}", kStringsOnHost);
  std::any& state = ctx.state();
  if (!state.has_value()) {
    KILN_ASSIGN_OR_RETURN(HostPool pool, read_pool(n));
    const std::vector<float> weights = n.attr_floats("weights");
    KILN_ASSIGN_OR_RETURN(std::shared_ptr<DevicePool> d, upload(pool, weights, ctx.stream()));
    state = std::move(d);
  }
  if (!ctx.has_output(0)) return Status::ok();
  TfIdfParams p = std::any_cast<const std::shared_ptr<DevicePool>&>(state)->params;
  const DeviceTensor& y = ctx.output(0);
  p.x_dtype = x.dtype, p.x = x.data;
  rows_cols(x.dims, p.rows, p.cols);
  p.width = y.dims.empty() ? 1 : y.dims.back();
  if (p.rows * p.width != y.numel())
    return invalid_argument("TfIdfVectorizer: output {} elements, expected {} rows of {}", y.numel(), p.rows, p.width);
  // A gram of two or more tokens with skip s spans s + 2 tokens: larger
  // skips find nothing. (A negative max_skip_count counts nothing.)
  const int64_t max_skip = n.attr_int("max_skip_count", 0);
  p.max_skip = max_skip < 0 ? -1 : std::min<int64_t>(max_skip, std::max<int64_t>(p.cols - 2, 0));
  const std::string mode = n.attr_string("mode", "TF");
  p.mode = mode == "IDF" ? TfIdfMode::kIdf : mode == "TFIDF" ? TfIdfMode::kTfIdf : TfIdfMode::kTf;
  p.y = y.as<float>();
  p.counts = static_cast<int32_t*>(ctx.workspace());
  if (p.rows * p.width > 0 && ctx.workspace_bytes() < tfidf_workspace_bytes(p.rows, p.width))
    return internal_error("TfIdfVectorizer: workspace of {} bytes, needs {}", ctx.workspace_bytes(),
                          tfidf_workspace_bytes(p.rows, p.width));
  return launch_tfidf_vectorizer(p, ctx.stream());
}

size_t tfidf_workspace(const KernelQuery& q) {
  const std::vector<int64_t>* dims = q.input_dims(0);
  if (!dims) return 0;
  int64_t rows = 0, cols = 0;
  rows_cols(*dims, rows, cols);
  return tfidf_workspace_bytes(rows, output_width(q.node()));
}

Status supports_tfidf(const Node& n) {
  const DType t = input_dtype(n, 0);
  if (t == DType::kString || n.attr("pool_strings")) return unsupported("{}", kStringsOnHost);
  if (t != DType::kUndefined && t != DType::kI32 && t != DType::kI64)
    return unsupported("TfIdfVectorizer: input dtype {} must be string, i32 or i64", dtype_name(t));
  return Status::ok();
}

KernelDef tfidf_def() {
  KernelDef def;
  def.run = run_tfidf;
  def.workspace = tfidf_workspace;
  def.supports = supports_tfidf;
  return def;
}

}  // namespace

KILN_CUDA_KERNEL("", "TfIdfVectorizer", tfidf_def());

}  // namespace kiln::cuda
