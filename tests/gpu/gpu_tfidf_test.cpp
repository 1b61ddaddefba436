// TfIdfVectorizer on integer tokens through the CUDA executor against the
// CPU backend, bit for bit: random pools and token rows (tokens outside the
// pool too) in every mode, skips 0..2, gram lengths 1..3, 1-D and 2-D
// inputs, int32 and int64, with and without weights; repeated pool grams,
// negative columns, empty inputs, and the refusal of string tokens.
#include <algorithm>
#include <numeric>

#include "gpu_test_util.h"

namespace kiln::gpu_test {
namespace {

constexpr const char* kOp = "TfIdfVectorizer";
constexpr int kOpset = 9;
constexpr const char* kStringsOnHost =
    "TfIdfVectorizer: string tokens stay on the host; int32/int64 tokens run on the GPU";

// A pool of 1-, 2- and 3-grams over tokens 0..4 (so rows hit them often),
// some repeated, each with a column; the weights have one per column.
Attrs random_pool(std::mt19937& rng) {
  std::uniform_int_distribution<int64_t> token(0, 4);
  std::vector<int64_t> pool, counts;
  int64_t grams = 0;
  for (int64_t n = 1; n <= 3; ++n) {
    counts.push_back(static_cast<int64_t>(pool.size()));
    const int64_t k = 4 + static_cast<int64_t>(rng() % 6);
    for (int64_t g = 0; g < k; ++g, ++grams)
      for (int64_t t = 0; t < n; ++t) pool.push_back(token(rng));
  }
  // Columns: a permutation of 0..grams-1, a few of them shared.
  std::vector<int64_t> indexes(static_cast<size_t>(grams));
  std::iota(indexes.begin(), indexes.end(), 0);
  std::shuffle(indexes.begin(), indexes.end(), rng);
  indexes[1] = indexes[0];
  return {{"pool_int64s", ints(pool)}, {"ngram_counts", ints(counts)}, {"ngram_indexes", ints(indexes)}};
}

std::vector<float> random_weights(std::mt19937& rng, size_t count) {
  std::uniform_real_distribution<float> w(0.1f, 3.f);
  std::vector<float> out(count);
  for (float& v : out) v = w(rng);
  return out;
}

// Tokens 0..6: 5 and 6 are in no pool gram.
Tensor random_tokens(std::mt19937& rng, DType t, std::vector<int64_t> dims) {
  std::uniform_int_distribution<int64_t> token(0, 6);
  std::vector<int64_t> v(static_cast<size_t>(numel(dims)));
  for (int64_t& x : v) x = token(rng);
  if (t == DType::kI64) return Tensor::from_vector<int64_t>(t, std::move(dims), v);
  return Tensor::from_vector<int32_t>(t, std::move(dims), std::vector<int32_t>(v.begin(), v.end()));
}

void same(const std::vector<Tensor>& ins, const Attrs& attrs, const std::string& what) {
  Tensor cpu = run_cpu(kOp, ins, attrs, 0, 1, kOpset);
  expect_equal(run_cuda(kOp, ins, attrs, 0, 1, kOpset), cpu, what);
}

Status cuda_status(const std::vector<Tensor>& ins, const Attrs& attrs) {
  std::vector<RunValue> values;
  auto g = one_node_graph(kOp, ins, attrs, 1, kOpset, values);
  return cuda::run_graph_on_cuda(*g, std::move(values)).status();
}

TEST_F(GpuTest, TfIdfMatchesCpu) {
  std::mt19937 rng(11);
  for (const char* mode : {"TF", "IDF", "TFIDF"})
    for (int64_t skip = 0; skip <= 2; ++skip)
      for (int64_t min_n = 1; min_n <= 3; ++min_n)
        for (int64_t max_n = min_n; max_n <= 3; ++max_n)
          for (DType t : {DType::kI32, DType::kI64})
            for (bool two_d : {false, true})
              for (bool weighted : {false, true}) {
                Attrs attrs = random_pool(rng);
                attrs["mode"] = s(mode);
                attrs["max_skip_count"] = i(skip);
                attrs["min_gram_length"] = i(min_n);
                attrs["max_gram_length"] = i(max_n);
                if (weighted)
                  attrs["weights"] = Attribute::of_floats(random_weights(rng, attrs["ngram_indexes"].ints.size()));
                const std::vector<int64_t> dims = two_d ? std::vector<int64_t>{5, 13} : std::vector<int64_t>{17};
                same({random_tokens(rng, t, dims)}, attrs,
                     std::string(mode) + " skip " + std::to_string(skip) + " grams " + std::to_string(min_n) + ".." +
                         std::to_string(max_n) + " " + std::string(dtype_name(t)) + " " + shape_str(dims) +
                         (weighted ? " weighted" : ""));
              }
}

TEST_F(GpuTest, TfIdfLongRowsAndManySkips) {
  std::mt19937 rng(5);
  Attrs attrs = random_pool(rng);
  attrs["mode"] = s("TFIDF");
  attrs["min_gram_length"] = i(1);
  attrs["max_gram_length"] = i(3);
  attrs["weights"] = Attribute::of_floats(random_weights(rng, 3));  // fewer weights than columns
  for (int64_t skip : {int64_t{5}, int64_t{1000}}) {
    attrs["max_skip_count"] = i(skip);
    same({random_tokens(rng, DType::kI64, {37, 301})}, attrs, "[37,301] skip " + std::to_string(skip));
  }
  // A row of two tokens: only skip 0 fits a bigram.
  same({random_tokens(rng, DType::kI32, {4, 2})}, attrs, "[4,2] skip 1000");
}

// The first of equal grams keeps its column; grams longer than
// max_gram_length and negative columns count nowhere; columns may repeat.
TEST_F(GpuTest, TfIdfRepeatedGramsAndNegativeColumns) {
  Attrs attrs{{"mode", s("TF")},
              {"min_gram_length", i(1)},
              {"max_gram_length", i(2)},
              {"max_skip_count", i(1)},
              // 1-grams 7, 8, 7, -3; 2-grams (7 8), (8 7), (7 8); a 3-gram (7 8 7).
              {"pool_int64s", ints({7, 8, 7, -3, 7, 8, 8, 7, 7, 8, 7, 8, 7})},
              {"ngram_counts", ints({0, 4, 10})},
              {"ngram_indexes", ints({0, 1, 4, -1, 2, 3, 5, 5})}};
  const Tensor x = Tensor::from_vector<int64_t>(DType::kI64, {2, 6}, {7, 8, 7, -3, 8, 9, 8, 8, 7, 7, 8, 7});
  const Tensor cpu = run_cpu(kOp, {x}, attrs, 0, 1, kOpset);
  ASSERT_EQ(cpu.dims(), (std::vector<int64_t>{2, 6}));
  expect_equal(run_cuda(kOp, {x}, attrs, 0, 1, kOpset), cpu, "repeated grams");
  // Row 0: unigrams 7, 8 twice each; (7 8) at skip 0 and 1, (8 7) at skip 0.
  // Row 1: 8, 7 thrice each; (7 8) once at each skip, (8 7) twice at each.
  // Columns 4 (the second 7) and 5 (the second (7 8), the 3-gram) stay 0.
  const std::vector<double> expect{2, 2, 2, 1, 0, 0, 3, 3, 2, 4, 0, 0};
  for (int64_t k = 0; k < cpu.numel(); ++k)
    EXPECT_EQ(cpu.element_as_double(k), expect[static_cast<size_t>(k)]) << "element " << k;
}

TEST_F(GpuTest, TfIdfEmptyInputs) {
  std::mt19937 rng(3);
  Attrs attrs = random_pool(rng);
  attrs["mode"] = s("IDF");
  attrs["min_gram_length"] = i(1);
  attrs["max_gram_length"] = i(2);
  attrs["max_skip_count"] = i(2);
  for (const std::vector<int64_t>& dims : {std::vector<int64_t>{0, 5}, {3, 0}, {0}})
    for (DType t : {DType::kI32, DType::kI64}) same({random_tokens(rng, t, dims)}, attrs, "empty " + shape_str(dims));
}

TEST_F(GpuTest, TfIdfStringTokensStayOnHost) {
  Attrs attrs{{"mode", s("TF")},           {"min_gram_length", i(1)},
              {"max_gram_length", i(1)},   {"pool_strings", Attribute::of_strings({"a", "b"})},
              {"ngram_counts", ints({0})}, {"ngram_indexes", ints({0, 1})}};
  Tensor x(DType::kString, {3});
  x.strings() = {"a", "b", "a"};
  const Status st = cuda_status({x}, attrs);
  EXPECT_EQ(st.code(), ErrorCode::kUnsupported) << st.to_string();
  EXPECT_NE(st.message().find(kStringsOnHost), std::string::npos) << st.to_string();
}

}  // namespace
}  // namespace kiln::gpu_test
