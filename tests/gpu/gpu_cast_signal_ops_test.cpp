// Cast to and from the small dtypes (float8 kinds, e8m0, f4e2m1, 4- and
// 2-bit integers) bit for bit against the CPU, with saturation, NaN, Inf,
// signed zeros, subnormals and halfway values; Quantize/DequantizeLinear with
// e8m0; and the signal kernels (windows, MelWeightMatrix, DFT, STFT) against
// the CPU within the f32 tolerance.
#include "gpu_test_util.h"
#include "ir/element_cast.h"

namespace kiln::gpu_test {
namespace {

using Dims = std::vector<int64_t>;

const DType kSmallFloats[] = {DType::kF8E4M3FN,   DType::kF8E4M3FNUZ, DType::kF8E5M2,
                              DType::kF8E5M2FNUZ, DType::kF8E8M0,     DType::kF4E2M1};
const DType kPackedInts[] = {DType::kU4, DType::kI4, DType::kU2, DType::kI2};
const DType kWide[] = {DType::kF32, DType::kF16, DType::kBF16, DType::kF64, DType::kI32, DType::kU8, DType::kI64};

std::string name(DType t) { return std::string(dtype_name(t)); }

Attrs cast_attrs(DType to, int64_t saturate = 1, const std::string& round_mode = "") {
  Attrs a{{"to", Attribute::of_int(static_cast<int64_t>(to))}, {"saturate", Attribute::of_int(saturate)}};
  if (!round_mode.empty()) a["round_mode"] = Attribute::of_string(round_mode);
  return a;
}

// Values that exercise every branch of the encoders: specials, signed zeros,
// overflow, the largest finite values and their halfway neighbours, the
// subnormal range of each format, ties to even, and random values in range.
Tensor edge_values(DType t) {
  const double inf = INFINITY;
  std::vector<double> v = {NAN,    -NAN,     inf,     -inf,     0.0,      -0.0,     1.0,      -1.0,     0.5,
                           1.5,    2.5,      3.0,     6.0,      7.0,      448.0,    464.0,    480.0,    -480.0,
                           240.0,  248.0,    57344.0, 61440.0,  65504.0,  1e6,      -1e6,     1e-3,     -1e-3,
                           0x1p-6, 0x1p-7,   0x1p-9,  0x1p-10,  0x1p-14,  0x1p-16,  0x1p-17,  0x1p-18,  0x1.8p-17,
                           1e-8,   -0x1p-20, 0x1.1p0, 0x1.08p0, 0x1.18p0, 0x1.04p0, 0x1.0cp0, 3.25,     3.5,
                           5.0,    0.25,     0.75,    1.25,     1.75,     0x1p127,  0x1.8p0,  0x1p-127, 0x1.4p-126};
  Tensor out(t, {static_cast<int64_t>(v.size() + 67)});
  std::mt19937 rng(11);
  std::uniform_real_distribution<double> dist(-20.0, 20.0);
  for (int64_t i = 0; i < out.numel(); ++i) {
    const double x = i < static_cast<int64_t>(v.size()) ? v[static_cast<size_t>(i)] : dist(rng);
    write_scalar(t, out.mutable_raw(), i, Scalar::of_float(x));
  }
  return out;
}

// Every code of a small dtype (2, 4 or 8 bits), in an odd count so the last
// packed byte is partly filled.
Tensor all_codes(DType t) {
  const int bits = dtype_bits(t);
  const int64_t codes = int64_t(1) << bits;
  Tensor out(t, {codes * 2 + 1});  // zero-filled
  auto* bytes = static_cast<uint8_t*>(out.mutable_raw());
  for (int64_t i = 0; i < out.numel(); ++i) {
    const auto code = static_cast<uint32_t>(i % codes);
    if (bits == 8) {
      bytes[i] = static_cast<uint8_t>(code);
    } else {
      const int64_t bit = i * bits;
      bytes[bit / 8] = static_cast<uint8_t>(bytes[bit / 8] | (code << (bit % 8)));
    }
  }
  return out;
}

// Bit for bit, except that a NaN in a float destination (f32, f16, bf16,
// f64) only has to be a NaN: the GPU's conversions may canonicalize payloads.
// Small float and integer codes must match exactly (NaN codes included).
void expect_same_bits(const Tensor& got, const Tensor& ref, const std::string& what) {
  ASSERT_TRUE(ref.is_valid()) << what << ": no CPU result";
  ASSERT_EQ(got.dtype(), ref.dtype()) << what;
  ASSERT_EQ(got.nbytes(), ref.nbytes()) << what;
  const DType t = ref.dtype();
  if (t != DType::kF32 && t != DType::kF16 && t != DType::kBF16 && t != DType::kF64) {
    expect_equal(got, ref, what);
    return;
  }
  const size_t width = ref.nbytes() / static_cast<size_t>(ref.numel() > 0 ? ref.numel() : 1);
  int reported = 0;
  for (int64_t i = 0; i < ref.numel(); ++i) {
    const auto* g = static_cast<const uint8_t*>(got.raw()) + i * static_cast<int64_t>(width);
    const auto* c = static_cast<const uint8_t*>(ref.raw()) + i * static_cast<int64_t>(width);
    const bool both_nan = std::isnan(got.element_as_double(i)) && std::isnan(ref.element_as_double(i));
    if (!both_nan && std::memcmp(g, c, width) != 0 && reported++ < 5)
      ADD_FAILURE() << what << ": element " << i << " gpu " << got.element_as_double(i) << " cpu "
                    << ref.element_as_double(i);
  }
  EXPECT_EQ(reported, 0) << what;
}

void check_cast_equal(const Tensor& x, const Attrs& attrs, const std::string& what) {
  const Tensor ref = run_cpu("Cast", {x}, attrs), got = run_cuda("Cast", {x}, attrs);
  ASSERT_TRUE(got.is_valid()) << what;
  ASSERT_EQ(got.dims(), ref.dims()) << what;
  expect_same_bits(got, ref, what);
}

TEST_F(GpuTest, CastToSmallFloatsMatchesTheCpuBitForBit) {
  for (DType from : {DType::kF32, DType::kF16, DType::kBF16, DType::kF64})
    for (DType to : kSmallFloats)
      for (int64_t saturate : {0, 1})
        check_cast_equal(edge_values(from), cast_attrs(to, saturate),
                         "Cast " + name(from) + " -> " + name(to) + " saturate " + std::to_string(saturate));
}

TEST_F(GpuTest, CastToE8M0FollowsEachRoundMode) {
  for (const char* mode : {"up", "down", "nearest"})
    for (int64_t saturate : {0, 1})
      check_cast_equal(edge_values(DType::kF32), cast_attrs(DType::kF8E8M0, saturate, mode),
                       std::string("Cast f32 -> f8e8m0 round_mode ") + mode + " saturate " + std::to_string(saturate));
}

TEST_F(GpuTest, CastFromEveryCodeOfTheSmallDtypesMatchesTheCpu) {
  std::vector<DType> small(std::begin(kSmallFloats), std::end(kSmallFloats));
  small.insert(small.end(), std::begin(kPackedInts), std::end(kPackedInts));
  for (DType from : small) {
    for (DType to : kWide) check_cast_equal(all_codes(from), cast_attrs(to), "Cast " + name(from) + " -> " + name(to));
    // Between two small dtypes (the CPU goes through double as well).
    for (DType to : small)
      if (to != from) check_cast_equal(all_codes(from), cast_attrs(to), "Cast " + name(from) + " -> " + name(to));
  }
}

TEST_F(GpuTest, CastToPackedIntegersWrapsLikeTheCpu) {
  for (DType to : kPackedInts) {
    check_cast_equal(edge_values(DType::kF32), cast_attrs(to), "Cast f32 -> " + name(to));
    for (DType from : {DType::kI32, DType::kI8, DType::kU16, DType::kI64, DType::kBool})
      check_cast_equal(random_tensor(from, {3, 11}, -40, 40, 5), cast_attrs(to),
                       "Cast " + name(from) + " -> " + name(to));
  }
}

TEST_F(GpuTest, CastLikeTakesTheSmallDtypeOfItsSecondInput) {
  const Tensor x = edge_values(DType::kF32);
  for (DType to : {DType::kF8E4M3FN, DType::kF4E2M1, DType::kI4}) {
    Attrs attrs{{"saturate", Attribute::of_int(0)}};
    const Tensor like(to, {1});
    const Tensor ref = run_cpu("CastLike", {x, like}, attrs), got = run_cuda("CastLike", {x, like}, attrs);
    expect_same_bits(got, ref, "CastLike f32 -> " + name(to));
  }
}

TEST_F(GpuTest, QuantizeAndDequantizeLinearWithE8M0) {
  const Tensor x = random_tensor(DType::kF32, {4, 9}, -30, 30, 3);
  Tensor scale(DType::kF32, {});
  scale.mutable_data<float>()[0] = 0.75f;
  const Attrs q{{"output_dtype", Attribute::of_int(static_cast<int64_t>(DType::kF8E8M0))}};
  const Tensor ref = run_cpu("QuantizeLinear", {x, scale}, q), got = run_cuda("QuantizeLinear", {x, scale}, q);
  expect_equal(got, ref, "QuantizeLinear f32 -> f8e8m0");
  Tensor codes(DType::kF8E8M0, {255});  // every code but 0xFF (NaN, which expect_close never passes)
  for (int64_t i = 0; i < codes.numel(); ++i) static_cast<uint8_t*>(codes.mutable_raw())[i] = static_cast<uint8_t>(i);
  expect_close(run_cuda("DequantizeLinear", {codes, scale}), run_cpu("DequantizeLinear", {codes, scale}), 1e-6,
               "DequantizeLinear f8e8m0 -> f32");
}

// ---- signal ---------------------------------------------------------------------

void check_close(const std::string& op, const std::vector<Tensor>& ins, const Attrs& attrs, const std::string& what) {
  const Tensor ref = run_cpu(op, ins, attrs), got = run_cuda(op, ins, attrs);
  ASSERT_TRUE(ref.is_valid()) << what;
  ASSERT_TRUE(got.is_valid()) << what;
  ASSERT_EQ(got.dims(), ref.dims()) << what;
  if (ref.dtype() == DType::kF32 || ref.dtype() == DType::kF64 || ref.dtype() == DType::kF16)
    expect_close(got, ref, tolerance_for(ref.dtype()), what);
  else
    expect_equal(got, ref, what);
}

TEST_F(GpuTest, WindowGeneratorsMatchTheCpu) {
  for (const char* op : {"HannWindow", "HammingWindow", "BlackmanWindow"})
    for (int64_t periodic : {0, 1})
      for (DType out : {DType::kF32, DType::kF64, DType::kF16, DType::kI32})
        for (int64_t size : {2, 10, 1000}) {  // a symmetric window of 1 is 0 / 0 (NaN)
          const Attrs attrs{{"periodic", Attribute::of_int(periodic)},
                            {"output_datatype", Attribute::of_int(static_cast<int64_t>(out))}};
          check_close(op, {Tensor::scalar_i64(size)}, attrs,
                      std::string(op) + " size " + std::to_string(size) + " periodic " + std::to_string(periodic) +
                          " " + name(out));
        }
}

TEST_F(GpuTest, MelWeightMatrixMatchesTheCpu) {
  auto f32 = [](float v) {
    Tensor t(DType::kF32, {});
    t.mutable_data<float>()[0] = v;
    return t;
  };
  for (DType out : {DType::kF32, DType::kF64})
    for (int64_t bins : {8, 40}) {
      const Attrs attrs{{"output_datatype", Attribute::of_int(static_cast<int64_t>(out))}};
      check_close("MelWeightMatrix",
                  {Tensor::scalar_i64(bins), Tensor::scalar_i64(256), Tensor::scalar_i64(16000), f32(0), f32(7600)},
                  attrs, "MelWeightMatrix " + std::to_string(bins) + " " + name(out));
    }
}

TEST_F(GpuTest, DftMatchesTheCpuOnEveryAxisAndMode) {
  for (int64_t comps : {1, 2})
    for (int64_t axis : {1, 2, -2})
      for (int64_t inverse : {0, 1})
        for (int64_t onesided : {0, 1}) {
          if (comps == 1 && inverse && onesided) continue;  // an irfft takes a complex half spectrum
          for (int64_t length : {0, 5, 12}) {
            const Tensor x = random_tensor(DType::kF32, {2, 7, 6, comps}, -2, 2, 13);
            const Attrs attrs{{"inverse", Attribute::of_int(inverse)}, {"onesided", Attribute::of_int(onesided)}};
            const Tensor dft_length = length ? Tensor::scalar_i64(length) : Tensor();
            check_close("DFT", {x, dft_length, Tensor::scalar_i64(axis)}, attrs,
                        "DFT comps " + std::to_string(comps) + " axis " + std::to_string(axis) + " inverse " +
                            std::to_string(inverse) + " onesided " + std::to_string(onesided) + " length " +
                            std::to_string(length));
          }
        }
}

TEST_F(GpuTest, DftInF64AndF16) {
  for (DType t : {DType::kF64, DType::kF16}) {
    const Tensor x = random_tensor(t, {3, 16, 2}, -1, 1, 2);
    check_close("DFT", {x}, {}, "DFT " + name(t));
  }
}

TEST_F(GpuTest, StftMatchesTheCpu) {
  const Tensor window = random_tensor(DType::kF32, {16}, 0.1f, 1, 4);
  for (int64_t comps : {1, 2})
    for (int64_t onesided : {0, 1}) {
      const Tensor x = random_tensor(DType::kF32, {2, 64, comps}, -1, 1, 6);
      const Attrs attrs{{"onesided", Attribute::of_int(onesided)}};
      const std::string what = "STFT comps " + std::to_string(comps) + " onesided " + std::to_string(onesided);
      check_close("STFT", {x, Tensor::scalar_i64(8), window}, attrs, what + " window");
      check_close("STFT", {x, Tensor::scalar_i64(5), Tensor(), Tensor::scalar_i64(20)}, attrs, what + " no window");
    }
}

// ---- recurrent ------------------------------------------------------------------

// Runs a recurrent op on both backends and compares every output.
void check_recurrent(const std::string& op, const std::vector<Tensor>& ins, const Attrs& attrs, int outputs,
                     const std::string& what) {
  for (int o = 0; o < outputs; ++o) {
    const Tensor ref = run_cpu(op, ins, attrs, static_cast<size_t>(o), outputs);
    const Tensor got = run_cuda(op, ins, attrs, static_cast<size_t>(o), outputs);
    ASSERT_TRUE(got.is_valid()) << what;
    ASSERT_EQ(got.dims(), ref.dims()) << what;
    expect_close(got, ref, 1e-5, what + " output " + std::to_string(o));
  }
}

Tensor lens_i32(const std::vector<int32_t>& v) {
  Tensor t(DType::kI32, {static_cast<int64_t>(v.size())});
  for (size_t i = 0; i < v.size(); ++i) t.mutable_data<int32_t>()[i] = v[i];
  return t;
}

TEST_F(GpuTest, RnnGruLstmMatchTheCpuInEveryDirectionAndLayout) {
  const int64_t seq = 5, batch = 3, input = 4, hidden = 6;
  struct OpCase {
    const char* op;
    int64_t gates;
    int outputs;
  };
  for (const OpCase& c : {OpCase{"RNN", 1, 2}, OpCase{"GRU", 3, 2}, OpCase{"LSTM", 4, 3}})
    for (const char* direction : {"forward", "reverse", "bidirectional"})
      for (int64_t layout : {0, 1}) {
        const int64_t dirs = std::string(direction) == "bidirectional" ? 2 : 1;
        const Dims x_dims = layout ? Dims{batch, seq, input} : Dims{seq, batch, input};
        const Dims state = layout ? Dims{batch, dirs, hidden} : Dims{dirs, batch, hidden};
        std::vector<Tensor> ins = {random_tensor(DType::kF32, x_dims, -1, 1, 1),
                                   random_tensor(DType::kF32, {dirs, c.gates * hidden, input}, -0.5f, 0.5f, 2),
                                   random_tensor(DType::kF32, {dirs, c.gates * hidden, hidden}, -0.5f, 0.5f, 3),
                                   random_tensor(DType::kF32, {dirs, 2 * c.gates * hidden}, -0.5f, 0.5f, 4),
                                   lens_i32({5, 2, 0}),
                                   random_tensor(DType::kF32, state, -1, 1, 5)};
        if (std::string(c.op) == "LSTM") {
          ins.push_back(random_tensor(DType::kF32, state, -1, 1, 6));
          ins.push_back(random_tensor(DType::kF32, {dirs, 3 * hidden}, -0.5f, 0.5f, 7));
        }
        Attrs attrs{{"hidden_size", Attribute::of_int(hidden)},
                    {"direction", Attribute::of_string(direction)},
                    {"layout", Attribute::of_int(layout)}};
        const std::string what = std::string(c.op) + " " + direction + " layout " + std::to_string(layout);
        check_recurrent(c.op, ins, attrs, c.outputs, what);
        // Clip, other activations, GRU's linear_before_reset and LSTM's input_forget.
        attrs["clip"] = Attribute::of_float(0.7f);
        if (std::string(c.op) == "GRU") attrs["linear_before_reset"] = Attribute::of_int(1);
        if (std::string(c.op) == "LSTM") attrs["input_forget"] = Attribute::of_int(1);
        if (std::string(c.op) == "RNN") attrs["activations"] = Attribute::of_strings({"LeakyRelu", "Affine"});
        if (std::string(c.op) == "RNN" && dirs == 1) attrs["activations"] = Attribute::of_strings({"ScaledTanh"});
        attrs["activation_alpha"] = Attribute::of_floats({0.3f, 0.8f});
        check_recurrent(c.op, ins, attrs, c.outputs, what + " with clip and options");
      }
}

TEST_F(GpuTest, LstmWithoutOptionalInputsAndInF64) {
  const Tensor x = random_tensor(DType::kF64, {4, 2, 3}, -1, 1, 8);
  const Tensor w = random_tensor(DType::kF64, {1, 4 * 5, 3}, -0.5f, 0.5f, 9);
  const Tensor r = random_tensor(DType::kF64, {1, 4 * 5, 5}, -0.5f, 0.5f, 10);
  check_recurrent("LSTM", {x, w, r}, {{"hidden_size", Attribute::of_int(5)}}, 3, "LSTM f64 defaults");
}

}  // namespace
}  // namespace kiln::gpu_test
