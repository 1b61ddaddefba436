// The registered elementwise ops (src/backends/cuda/ops/elementwise*.cpp)
// through the CUDA executor, against the CPU backend: every op in f32, the
// float ops in f16, bf16 and f64 too, the integer and bool ops in each width
// they allow, broadcasting (row, column, scalar, middle dim, rank 0, both
// sides, rank 8), Where's three-way broadcast and Cast over every pair of
// dtypes.
#include "gpu_test_util.h"
#include "ir/element_cast.h"

namespace kiln::gpu_test {
namespace {

using Dims = std::vector<int64_t>;

const DType kAllFloat[] = {DType::kF32, DType::kF16, DType::kBF16, DType::kF64};
const DType kSignedInts[] = {DType::kI8, DType::kI16, DType::kI32, DType::kI64};
const DType kUnsignedInts[] = {DType::kU8, DType::kU16, DType::kU32, DType::kU64};
const DType kAllInts[] = {DType::kI8, DType::kI16, DType::kI32, DType::kI64,
                          DType::kU8, DType::kU16, DType::kU32, DType::kU64};

bool is_float(DType t) { return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16 || t == DType::kF64; }

Tensor values(DType t, Dims dims, const std::vector<double>& v) {
  Tensor out(t, std::move(dims));
  for (int64_t i = 0; i < out.numel(); ++i)
    write_scalar(t, out.mutable_raw(), i, Scalar::of_float(v[static_cast<size_t>(i) % v.size()]));
  return out;
}

std::string label(const std::string& op, const std::vector<Tensor>& ins, const std::string& extra = "") {
  std::string s = op;
  for (const Tensor& t : ins)
    if (t.is_valid()) s += " " + std::string(dtype_name(t.dtype())) + shape_str(t.dims());
  return extra.empty() ? s : s + " (" + extra + ")";
}

// Runs op on both backends and compares output `output`: floats within the
// dtype's tolerance, everything else bit for bit.
void check(const std::string& op, const std::vector<Tensor>& ins, const Attrs& attrs = {},
           const std::string& extra = "", size_t output = 0, int num_outputs = 1, bool exact = false) {
  const Tensor ref = run_cpu(op, ins, attrs, output, num_outputs);
  const Tensor got = run_cuda(op, ins, attrs, output, num_outputs);
  ASSERT_TRUE(ref.is_valid()) << label(op, ins, extra);
  ASSERT_TRUE(got.is_valid()) << label(op, ins, extra);
  ASSERT_EQ(got.dims(), ref.dims()) << label(op, ins, extra);
  if (is_float(ref.dtype()) && !exact)
    expect_close(got, ref, tolerance_for(ref.dtype()), label(op, ins, extra));
  else
    expect_equal(got, ref, label(op, ins, extra));
}

// ---- unary -----------------------------------------------------------------------

struct FloatUnaryCase {
  const char* op;
  float lo, hi;
  Attrs attrs;
};

std::vector<FloatUnaryCase> float_unary_cases() {
  auto f = [](float v) { return Attribute::of_float(v); };
  return {
      {"Reciprocal", 0.1f, 4, {}},
      {"Floor", -5, 5, {}},
      {"Ceil", -5, 5, {}},
      {"Sqrt", 0.05f, 8, {}},
      {"Exp", -4, 4, {}},
      {"Log", 0.05f, 8, {}},
      {"Tanh", -3, 3, {}},
      {"Sigmoid", -6, 6, {}},
      {"Sin", -6, 6, {}},
      {"Cos", -6, 6, {}},
      {"Tan", -1.2f, 1.2f, {}},
      {"Asin", -0.95f, 0.95f, {}},
      {"Acos", -0.95f, 0.95f, {}},
      {"Atan", -4, 4, {}},
      {"Sinh", -3, 3, {}},
      {"Cosh", -3, 3, {}},
      {"Asinh", -4, 4, {}},
      {"Acosh", 1.05f, 6, {}},
      {"Atanh", -0.95f, 0.95f, {}},
      {"Erf", -2, 2, {}},
      {"Round", -5, 5, {}},
      {"Softsign", -4, 4, {}},
      {"Softplus", -6, 6, {}},
      {"LeakyRelu", -2, 2, {{"alpha", f(0.1f)}}},
      {"Elu", -3, 3, {{"alpha", f(0.7f)}}},
      {"Selu", -3, 3, {}},
      {"Celu", -3, 3, {{"alpha", f(1.5f)}}},
      {"HardSigmoid", -5, 5, {{"alpha", f(0.25f)}, {"beta", f(0.4f)}}},
      {"HardSwish", -5, 5, {}},
      {"Mish", -4, 4, {}},
      {"Gelu", -4, 4, {}},
      {"Gelu", -4, 4, {{"approximate", Attribute::of_string("tanh")}}},
      {"ThresholdedRelu", -3, 3, {{"alpha", f(0.5f)}}},
      {"Swish", -5, 5, {{"alpha", f(1.5f)}}},
      {"Abs", -2, 2, {}},
      {"Neg", -2, 2, {}},
      {"Sign", -2, 2, {}},
      {"Relu", -2, 2, {}},
      {"Shrink", -2, 2, {{"lambd", f(0.6f)}, {"bias", f(0.2f)}}},
  };
}

TEST_F(GpuTest, FloatUnaryOpsMatchCpuInEveryFloatType) {
  for (const FloatUnaryCase& c : float_unary_cases())
    for (DType t : kAllFloat)
      for (const Dims& dims : std::vector<Dims>{{}, {7}, {3, 1001}})
        check(c.op, {random_tensor(t, dims, c.lo, c.hi)}, c.attrs);
}

TEST_F(GpuTest, FloatUnaryOpsUseManyBlocksAndMisalignedTails) {
  for (const char* op : {"Sigmoid", "Gelu", "Relu"})
    for (DType t : kFloatTypes) check(op, {random_tensor(t, {65537}, -4, 4)});
}

TEST_F(GpuTest, RoundTakesHalvesToEven) {
  for (DType t : kAllFloat) check("Round", {values(t, {9}, {0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.49, -7.5, 8.5})});
}

TEST_F(GpuTest, IntegerUnaryOpsMatchCpuInEveryWidth) {
  for (DType t : kAllInts) {
    const Tensor x = random_tensor(t, {5, 37}, -100, 100);
    for (const char* op : {"Abs", "Sign", "BitwiseNot", "Shrink"})
      check(op, {x}, {{"lambd", Attribute::of_float(2.5f)}});
  }
  for (DType t : kSignedInts) {
    const Tensor x = random_tensor(t, {5, 37}, -100, 100);
    check("Neg", {x});
    check("Relu", {x});
  }
  check("Abs", {values(DType::kI8, {3}, {-128, 127, -5})});  // -(-128) wraps to -128
}

TEST_F(GpuTest, IsNanIsInfAndNot) {
  const double inf = INFINITY;
  for (DType t : kAllFloat) {
    const Tensor x = values(t, {2, 5}, {NAN, inf, -inf, 1.5, -2, 0, inf, NAN, -inf, 3});
    check("IsNaN", {x});
    check("IsInf", {x});
    check("IsInf", {x}, {{"detect_positive", Attribute::of_int(0)}});
    check("IsInf", {x}, {{"detect_negative", Attribute::of_int(0)}});
  }
  check("Not", {random_tensor(DType::kBool, {3, 77})});
}

TEST_F(GpuTest, ClipWithBothBoundsOneBoundOrNone) {
  for (DType t : kAllFloat) {
    const Tensor x = random_tensor(t, {4, 33}, -3, 3);
    check("Clip", {x, values(t, {}, {-1}), values(t, {}, {1.5})});
    check("Clip", {x, values(t, {}, {-0.5}), Tensor()});
    check("Clip", {x, Tensor(), values(t, {}, {0.25})});
    check("Clip", {x});
  }
  for (DType t : kAllInts) {
    const Tensor x = random_tensor(t, {4, 33}, -50, 50);
    check("Clip", {x, values(t, {}, {5}), values(t, {}, {30})});
    check("Clip", {x, Tensor(), values(t, {}, {20})});
  }
}

// ---- binary ------------------------------------------------------------------------

const std::vector<std::pair<Dims, Dims>>& broadcast_shapes() {
  static const std::vector<std::pair<Dims, Dims>> shapes = {
      {{4, 33}, {4, 33}},                                    // same shape
      {{1003}, {1003}},                                      // same shape, a tail after the packs
      {{3, 1, 5}, {4, 1}},                                   // both sides broadcast
      {{}, {5, 7}},                                          // rank 0 on the left
      {{6, 35}, {1}},                                        // scalar
      {{6, 64}, {64}},                                       // row, whole packs
      {{5, 33}, {33}},                                       // row, odd
      {{6, 64}, {6, 1}},                                     // column, whole packs
      {{7, 3}, {7, 1}},                                      // column, odd
      {{64}, {3, 5, 64}},                                    // row on the left
      {{2, 3, 4, 5}, {3, 1, 5}},                             // inner broadcast
      {{4, 6, 64}, {4, 1, 64}},                              // middle broadcast, whole packs
      {{4, 1, 1, 24}, {4, 3, 7, 24}},                        // middle broadcast on the left (NHWC scale)
      {{3, 5, 7}, {3, 1, 7}},                                // middle broadcast, odd inner
      {{2, 1, 3, 1, 2, 1, 2, 3}, {1, 2, 1, 3, 1, 2, 1, 3}},  // rank 8, alternating
      {{300, 1001}, {1001}},                                 // many blocks
      {{0, 3}, {3}},                                         // empty
  };
  return shapes;
}

TEST_F(GpuTest, FloatArithmeticBroadcastsInEveryFloatType) {
  const std::vector<std::pair<const char*, Attrs>> ops = {
      {"Add", {}}, {"Sub", {}},  {"Mul", {}},
      {"Div", {}}, {"Max", {}},  {"Min", {}},
      {"Sum", {}}, {"Mean", {}}, {"Mod", {{"fmod", Attribute::of_int(1)}}},
      {"Mod", {}},  // the divisor's sign
  };
  for (const auto& [op, attrs] : ops)
    for (DType t : kAllFloat)
      for (const auto& [a, b] : broadcast_shapes())
        check(op, {random_tensor(t, a, -4, 4, 1), random_tensor(t, b, -3, 3, 2)}, attrs);
}

TEST_F(GpuTest, IntegerArithmeticWrapsAndDividesLikeTheCpu) {
  for (DType t : kAllInts) {
    const Tensor a = random_tensor(t, {5, 41}, -120, 120, 1);
    const Tensor b = random_tensor(t, {41}, 1, 9, 2);  // never 0: the CPU refuses integer division by zero
    for (const char* op : {"Add", "Sub", "Mul", "Div", "Max", "Min", "Sum"}) check(op, {a, b});
    check("Mod", {a, b});
    check("Mod", {a, b}, {{"fmod", Attribute::of_int(1)}});
    check("Mul", {a, a});  // wraps in i8 and u8
    // The middle broadcast in 128-bit packs of every width (16 x i8 .. 2 x i64), broadcast operand first.
    check("Sub", {random_tensor(t, {3, 1, 128}, -120, 120, 5), random_tensor(t, {3, 4, 128}, -120, 120, 6)});
  }
  for (DType t : kSignedInts) {  // negative divisors: truncation toward zero and the sign rules of Mod
    const Tensor a = random_tensor(t, {3, 17}, -60, 60, 3);
    const Tensor b = random_tensor(t, {3, 1}, -9, -1, 4);
    check("Div", {a, b});
    check("Mod", {a, b});
    check("Mod", {a, b}, {{"fmod", Attribute::of_int(1)}});
  }
  check("Div", {values(DType::kI32, {2}, {-2147483648.0, 7}), values(DType::kI32, {2}, {-1, -2})});
}

TEST_F(GpuTest, ComparisonsGiveBoolsForEveryNumericDtype) {
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kF64, DType::kI8, DType::kI16, DType::kI32,
                  DType::kI64, DType::kU8, DType::kU16, DType::kU32, DType::kU64}) {
    // Integer values, so Equal finds equal pairs.
    const Tensor a = values(t, {3, 1, 5}, {-2, -1, 0, 1, 2, 3, 1});
    const Tensor b = values(t, {4, 1}, {1, 0, 2, -1});
    for (const char* op : {"Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"}) check(op, {a, b});
  }
  const Tensor p = random_tensor(DType::kBool, {6, 64}, 0, 1, 1), q = random_tensor(DType::kBool, {64}, 0, 1, 2);
  for (const char* op : {"Equal", "And", "Or", "Xor"}) {
    check(op, {p, q});
    check(op, {random_tensor(DType::kBool, {3, 1, 5}, 0, 1, 3), random_tensor(DType::kBool, {4, 1}, 0, 1, 4)});
  }
}

TEST_F(GpuTest, BitwiseOpsAndShiftsInEveryIntegerWidth) {
  for (DType t : kAllInts) {
    const Tensor a = random_tensor(t, {4, 1, 9}, -100, 100, 1), b = random_tensor(t, {3, 9}, -100, 100, 2);
    for (const char* op : {"BitwiseAnd", "BitwiseOr", "BitwiseXor"}) check(op, {a, b});
    const Tensor s = random_tensor(t, {3, 9}, 0, 70, 3);  // shifts past the width give 0
    check("BitShift", {a, s}, {{"direction", Attribute::of_string("LEFT")}});
    check("BitShift", {a, s}, {{"direction", Attribute::of_string("RIGHT")}});
  }
}

TEST_F(GpuTest, PowTakesMixedBaseAndExponentDtypes) {
  for (DType t : kAllFloat) {
    check("Pow", {random_tensor(t, {4, 33}, 0.5f, 3, 1), random_tensor(t, {33}, -2, 2, 2)});
    // Negative bases with integer exponents; |base| >= 0.5 keeps f16 results finite.
    check("Pow",
          {values(t, {4, 33}, {-2.5, -1.5, -0.75, 0.5, 1.25, 2, -0.5}), random_tensor(DType::kI32, {4, 1}, -3, 3, 2)});
  }
  for (DType t : kAllInts) {
    check("Pow", {random_tensor(t, {5, 7}, -6, 6, 1), random_tensor(t, {7}, 0, 5, 2)});
    check("Pow", {random_tensor(t, {5, 7}, -6, 6, 1), values(DType::kF32, {}, {2.5})});
  }
  check("Pow", {values(DType::kI32, {6}, {1, -1, -1, 2, 3, -2}), values(DType::kI64, {6}, {-3, -3, -2, -1, 40, 63})});
  check("Pow", {random_tensor(DType::kF16, {3, 8}, 0.5f, 2, 1), random_tensor(DType::kU8, {8}, 0, 4, 2)});
}

TEST_F(GpuTest, PReluSlopeBroadcastsOverX) {
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kF64, DType::kI8, DType::kI32, DType::kI64}) {
    check("PRelu", {random_tensor(t, {2, 3, 4, 5}, -9, 9, 1), random_tensor(t, {3, 1, 1}, -3, 3, 2)});
    check("PRelu", {random_tensor(t, {6, 64}, -9, 9, 1), random_tensor(t, {64}, -3, 3, 2)});
  }
}

TEST_F(GpuTest, SwiGluRoundsEachStepLikeTheCpu) {
  for (DType t : kAllFloat) {
    check("SwiGLU", {random_tensor(t, {3, 1001}, -4, 4, 1), random_tensor(t, {3, 1001}, -2, 2, 2)});
    check("SwiGLU", {random_tensor(t, {5, 8}, -4, 4, 1), random_tensor(t, {5, 8}, -2, 2, 2)},
          {{"alpha", Attribute::of_float(1.702f)}});
  }
}

TEST_F(GpuTest, VariadicSumMeanMaxMinFoldManyBroadcastInputs) {
  for (DType t : {DType::kF32, DType::kF16, DType::kF64, DType::kI32, DType::kU8}) {
    std::vector<Tensor> ins;
    const std::vector<Dims> shapes = {{3, 1, 5}, {4, 1}, {}, {3, 4, 5}, {5}, {1, 4, 1}, {4, 5}, {3, 1, 1}, {1}, {5}};
    for (size_t i = 0; i < shapes.size(); ++i)
      ins.push_back(random_tensor(t, shapes[i], 0, 5, static_cast<uint32_t>(i + 1)));
    for (size_t count : {1, 3, 8, 10}) {
      if (count > 8 && (t == DType::kF16)) continue;  // Sum/Mean of > 8 16-bit inputs: refused
      const std::vector<Tensor> some(ins.begin(), ins.begin() + static_cast<long>(count));
      for (const char* op : {"Sum", "Max", "Min", "Mean"})
        if (is_float(t) || std::string(op) != "Mean") check(op, some, {}, std::to_string(count) + " inputs");
    }
  }
}

TEST_F(GpuTest, WhereBroadcastsThreeWaysForEveryElementSize) {
  const Tensor cond = random_tensor(DType::kBool, {3, 1, 5}, 0, 1, 7);
  for (DType t : {DType::kF32, DType::kF16, DType::kF64, DType::kI8, DType::kI64, DType::kBool}) {
    check("Where", {cond, random_tensor(t, {4, 1}, -5, 5, 1), random_tensor(t, {}, -5, 5, 2)});
    check("Where", {random_tensor(DType::kBool, {6, 64}, 0, 1, 3), random_tensor(t, {6, 64}, -5, 5, 1),
                    random_tensor(t, {6, 64}, -5, 5, 2)});
    check("Where", {random_tensor(DType::kBool, {300, 1}, 0, 1, 3), random_tensor(t, {1001}, -5, 5, 1),
                    random_tensor(t, {300, 1001}, -5, 5, 2)});
  }
}

// ---- casts and identities ------------------------------------------------------------

TEST_F(GpuTest, CastCoversEveryPairOfNumericAndBoolDtypes) {
  const DType all[] = {DType::kF32, DType::kF16, DType::kBF16, DType::kF64, DType::kI8,  DType::kI16, DType::kI32,
                       DType::kI64, DType::kU8,  DType::kU16,  DType::kU32, DType::kU64, DType::kBool};
  for (DType from : all) {
    const Tensor x =
        from == DType::kBool ? random_tensor(from, {3, 77}, 0, 1) : random_tensor(from, {3, 77}, -300, 300);
    for (DType to : all) {
      const Attrs attrs = {{"to", Attribute::of_int(static_cast<int64_t>(to))}};
      const Tensor ref = run_cpu("Cast", {x}, attrs), got = run_cuda("Cast", {x}, attrs);
      expect_equal(got, ref,
                   std::string("Cast ") + std::string(dtype_name(from)) + " -> " + std::string(dtype_name(to)));
    }
  }
}

TEST_F(GpuTest, CastOfSpecialFloatsMatchesTheCpu) {
  for (DType from : {DType::kF32, DType::kF64, DType::kF16}) {
    const Tensor x = values(from, {8}, {INFINITY, -INFINITY, 1e30, -1e30, 65519.0, 2.5, -0.0, 70000.0});
    for (DType to :
         {DType::kI8, DType::kI32, DType::kI64, DType::kU32, DType::kU64, DType::kF16, DType::kBF16, DType::kBool}) {
      const Attrs attrs = {{"to", Attribute::of_int(static_cast<int64_t>(to))}};
      expect_equal(run_cuda("Cast", {x}, attrs), run_cpu("Cast", {x}, attrs),
                   std::string("Cast special ") + std::string(dtype_name(from)) + " -> " + std::string(dtype_name(to)));
    }
  }
  const Tensor big = values(DType::kI64, {3}, {9007199254740993.0, -33554433.0, 16777217.0});
  for (DType to : {DType::kF32, DType::kF16, DType::kBF16})
    check("Cast", {big}, {{"to", Attribute::of_int(static_cast<int64_t>(to))}});
}

TEST_F(GpuTest, CastLikeAndBitCast) {
  check("CastLike", {random_tensor(DType::kF32, {5, 9}, -50, 50), random_tensor(DType::kI16, {1})});
  check("CastLike", {random_tensor(DType::kI64, {5, 9}, -50, 50), random_tensor(DType::kBF16, {2})});
  const auto to = [](DType t) { return Attrs{{"to", Attribute::of_int(static_cast<int64_t>(t))}}; };
  // Bit for bit: reinterpreted integers can be NaN as floats.
  check("BitCast", {random_tensor(DType::kF32, {4, 33})}, to(DType::kI32), "", 0, 1, true);
  check("BitCast", {random_tensor(DType::kF16, {4, 33})}, to(DType::kBF16), "", 0, 1, true);
  check("BitCast", {random_tensor(DType::kI64, {7})}, to(DType::kF64), "", 0, 1, true);
  check("BitCast", {values(DType::kU8, {6}, {0, 1, 2, 255, 0, 7})}, to(DType::kBool), "", 0, 1, true);
}

TEST_F(GpuTest, DropoutAtInferenceIsIdentityWithAnAllTrueMask) {
  for (DType t : kFloatTypes) {
    const Tensor x = random_tensor(t, {3, 1001});
    check("Dropout", {x}, {}, "", 0, 2);
    check("Dropout", {x}, {}, "mask", 1, 2);
    check("Dropout", {x, values(DType::kF32, {}, {0.3}), values(DType::kBool, {}, {0})}, {}, "not training", 0, 2);
    check("Dropout", {x, values(DType::kF32, {}, {0}), values(DType::kBool, {}, {1})}, {}, "ratio 0", 1, 2);
  }
}

}  // namespace
}  // namespace kiln::gpu_test
