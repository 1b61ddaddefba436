// TfIdfVectorizer: counts the pool's n-grams in each row of tokens (strings
// or integers), optionally with skips between the tokens of an n-gram, then
// weighs the counts (TF, IDF or TFIDF).
#include <map>

#include "backends/cpu/cpu_kernel.h"

namespace kiln {
namespace {

struct NgramPool {
  // n-gram (tokens as strings; integers are printed) -> its output column.
  std::map<std::vector<std::string>, int64_t> column;
  int64_t min_n = 1, max_n = 1;
};

Expected<NgramPool> read_pool(const Node& n) {
  NgramPool p;
  p.min_n = n.attr_int("min_gram_length", 1);
  p.max_n = n.attr_int("max_gram_length", 1);
  std::vector<std::string> pool;
  if (const Attribute* a = n.attr("pool_strings")) pool = a->strings;
  for (int64_t v : n.attr_ints("pool_int64s")) pool.push_back(std::to_string(v));
  auto counts = n.attr_ints("ngram_counts");
  auto indexes = n.attr_ints("ngram_indexes");
  // Pool entries are grouped by n: ngram_counts[k] is where the (k+1)-grams start.
  size_t id = 0;
  for (size_t k = 0; k < counts.size(); ++k) {
    auto gram = static_cast<int64_t>(k + 1);
    size_t begin = static_cast<size_t>(counts[k]);
    size_t end = k + 1 < counts.size() ? static_cast<size_t>(counts[k + 1]) : pool.size();
    if (begin > end || end > pool.size()) return invalid_model("TfIdfVectorizer: ngram_counts does not fit the pool");
    for (size_t at = begin; at + static_cast<size_t>(gram) <= end; at += static_cast<size_t>(gram), ++id) {
      if (id >= indexes.size()) return invalid_model("TfIdfVectorizer: ngram_indexes has fewer entries than the pool");
      if (gram < p.min_n || gram > p.max_n) continue;
      std::vector<std::string> key(pool.begin() + static_cast<long>(at), pool.begin() + static_cast<long>(at) + gram);
      p.column.emplace(std::move(key), indexes[id]);
    }
  }
  return p;
}

std::vector<std::string> tokens_of(const Tensor& x) {
  if (x.dtype() == DType::kString) return x.strings();
  std::vector<std::string> out;
  auto v = x.to_i64_vector();
  if (v)
    for (int64_t t : *v) out.push_back(std::to_string(t));
  return out;
}

Status run_tfidf(CpuKernelContext& ctx) {
  const Node& n = ctx.node();
  KILN_ASSIGN_OR_RETURN(NgramPool pool, read_pool(n));
  const Tensor& x = ctx.input(0);
  if (x.dtype() != DType::kString && x.dtype() != DType::kI32 && x.dtype() != DType::kI64)
    return unsupported("TfIdfVectorizer: input dtype {} must be string, i32 or i64", dtype_name(x.dtype()));
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.allocate_output(0));
  int64_t width = y->dims().back();
  int64_t rows = x.rank() == 2 ? x.dim(0) : 1;
  int64_t cols = x.rank() == 2 ? x.dim(1) : x.numel();
  std::vector<std::string> tokens = tokens_of(x);
  std::vector<double> counts(static_cast<size_t>(rows * width), 0);
  int64_t max_skip = n.attr_int("max_skip_count", 0);
  for (int64_t r = 0; r < rows; ++r) {
    const std::string* row = tokens.data() + r * cols;
    for (int64_t skip = 0; skip <= max_skip; ++skip) {
      // Unigrams do not depend on the skip: count them in the first pass only.
      int64_t lo = skip == 0 ? pool.min_n : std::max<int64_t>(pool.min_n, 2);
      for (int64_t start = 0; start < cols; ++start) {
        std::vector<std::string> key;
        for (int64_t g = 1; g <= pool.max_n; ++g) {
          int64_t at = start + (g - 1) * (skip + 1);
          if (at >= cols) break;
          key.push_back(row[at]);
          if (g < lo) continue;
          auto it = pool.column.find(key);
          if (it != pool.column.end() && it->second >= 0 && it->second < width) counts[r * width + it->second] += 1;
        }
      }
    }
  }
  std::string mode = n.attr_string("mode", "TF");
  auto weights = n.attr_floats("weights");
  auto* out = y->mutable_data<float>();
  for (int64_t i = 0; i < rows * width; ++i) {
    double c = counts[static_cast<size_t>(i)];
    double w = weights.empty() ? 1.0 : weights[static_cast<size_t>(i % width) % weights.size()];
    if (mode == "IDF")
      c = c > 0 ? w : 0;
    else if (mode == "TFIDF")
      c *= w;
    out[i] = static_cast<float>(c);
  }
  return Status::ok();
}

}  // namespace

KILN_CPU_KERNEL("", "TfIdfVectorizer", run_tfidf);

}  // namespace kiln
