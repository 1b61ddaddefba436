// Unary and binary elementwise kernels against the CPU backend.
#include "backends/cuda/kernels/elementwise.cuh"
#include "gpu_test_util.h"

namespace kiln::gpu_test {
namespace {

using cuda::BinaryOp;
using cuda::UnaryOp;

struct UnaryCase {
  UnaryOp op;
  const char* onnx;
  float lo, hi;
  std::map<std::string, Attribute> attrs;
};

std::vector<UnaryCase> unary_cases() {
  return {
      {UnaryOp::kRelu, "Relu", -2, 2, {}},
      {UnaryOp::kSigmoid, "Sigmoid", -6, 6, {}},
      {UnaryOp::kTanh, "Tanh", -3, 3, {}},
      {UnaryOp::kGelu, "Gelu", -4, 4, {}},
      {UnaryOp::kGeluTanh, "Gelu", -4, 4, {{"approximate", Attribute::of_string("tanh")}}},
      {UnaryOp::kExp, "Exp", -4, 4, {}},
      {UnaryOp::kLog, "Log", 0.05f, 8, {}},
      {UnaryOp::kSqrt, "Sqrt", 0.05f, 8, {}},
      {UnaryOp::kNeg, "Neg", -2, 2, {}},
      {UnaryOp::kAbs, "Abs", -2, 2, {}},
      {UnaryOp::kErf, "Erf", -2, 2, {}},
      {UnaryOp::kReciprocal, "Reciprocal", 0.1f, 4, {}},
      {UnaryOp::kLeakyRelu, "LeakyRelu", -2, 2, {{"alpha", Attribute::of_float(0.01f)}}},
      {UnaryOp::kFloor, "Floor", -5, 5, {}},
      {UnaryOp::kCeil, "Ceil", -5, 5, {}},
      {UnaryOp::kSin, "Sin", -6, 6, {}},
      {UnaryOp::kCos, "Cos", -6, 6, {}},
  };
}

// Runs the unary kernel at an element offset (0: aligned, 128-bit path; 1:
// misaligned, scalar path) and compares with the CPU.
void check_unary(const UnaryCase& c, DType t, const std::vector<int64_t>& dims, int offset) {
  const Tensor x = random_tensor(t, dims, c.lo, c.hi);
  const Tensor ref = run_cpu(c.onnx, {x}, c.attrs);
  const size_t es = dtype_bits(t) / 8;
  Tensor shifted(t, {x.numel() + offset});
  std::memcpy(static_cast<char*>(shifted.mutable_raw()) + offset * es, x.raw(), x.nbytes());
  cuda::DeviceBuffer dx = upload(shifted), dy = device_zeros(shifted.nbytes());
  cuda::UnaryParams p;
  p.op = c.op;
  p.dtype = t;
  p.x = dx.as<char>() + offset * es;
  p.y = dy.as<char>() + offset * es;
  p.n = x.numel();
  p.alpha = 0.01f;
  ASSERT_TRUE(cuda::launch_unary(p, nullptr).is_ok());
  const Tensor got = download(p.y, t, dims);
  expect_close(
      got, ref, tolerance_for(t),
      std::string(c.onnx) + " " + std::string(dtype_name(t)) + shape_str(dims) + " offset " + std::to_string(offset));
}

TEST_F(GpuTest, UnaryOpsMatchCpuForEveryFloatTypeAlignedAndNot) {
  for (const UnaryCase& c : unary_cases())
    for (DType t : kFloatTypes)
      for (const auto& dims : std::vector<std::vector<int64_t>>{{1}, {7}, {4, 33}, {3, 1000}, {65537}})
        for (int offset : {0, 1}) check_unary(c, t, dims, offset);
}

TEST_F(GpuTest, SiluMatchesCpuSwish) {
  for (DType t : kFloatTypes) {
    UnaryCase c{UnaryOp::kSilu, "Swish", -5, 5, {}};
    check_unary(c, t, {5, 77}, 0);
  }
}

struct BinaryCase {
  BinaryOp op;
  const char* onnx;
};

void check_binary(BinaryCase c, DType t, const std::vector<int64_t>& a_dims, const std::vector<int64_t>& b_dims) {
  const bool pow = c.op == BinaryOp::kPow;
  const Tensor a = random_tensor(t, a_dims, pow ? 0.5f : -2.f, 2.f, 1);
  const Tensor b = random_tensor(t, b_dims, pow ? -2.f : -2.f, 2.f, 2);
  const Tensor ref = run_cpu(c.onnx, {a, b});
  ASSERT_TRUE(ref.is_valid());
  cuda::DeviceBuffer da = upload(a), db = upload(b), dy = device_zeros(ref.nbytes());
  cuda::BinaryParams p;
  p.op = c.op;
  p.dtype = t;
  p.a = da.data();
  p.b = db.data();
  p.y = dy.data();
  p.a_dims = a_dims;
  p.b_dims = b_dims;
  const Status st = cuda::launch_binary(p, nullptr);
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  const Tensor got = download(dy.data(), t, ref.dims());
  expect_close(got, ref, tolerance_for(t),
               std::string(c.onnx) + " " + std::string(dtype_name(t)) + shape_str(a_dims) + shape_str(b_dims));
}

TEST_F(GpuTest, BinaryOpsMatchCpuWithBroadcasting) {
  const std::vector<BinaryCase> ops = {{BinaryOp::kAdd, "Add"}, {BinaryOp::kSub, "Sub"}, {BinaryOp::kMul, "Mul"},
                                       {BinaryOp::kDiv, "Div"}, {BinaryOp::kPow, "Pow"}, {BinaryOp::kMax, "Max"},
                                       {BinaryOp::kMin, "Min"}};
  const std::vector<std::pair<std::vector<int64_t>, std::vector<int64_t>>> shapes = {
      {{4, 33}, {4, 33}},                                    // same shape
      {{1003}, {1003}},                                      // same shape, a tail after the 128-bit packs
      {{4, 33}, {33}},                                       // row broadcast, odd row: generic kernel
      {{6, 64}, {64}},                                       // row broadcast, packed rows
      {{64}, {3, 5, 64}},                                    // row on the left, packed
      {{1001}, {1}},                                         // scalar, packed with a tail
      {{4, 33}, {}},                                         // scalar
      {{1}, {5, 9}},                                         // scalar on the left
      {{4, 1, 5}, {3, 1}},                                   // both broadcast
      {{2, 3, 4, 5}, {3, 1, 5}},                             // inner broadcast
      {{2, 1, 3, 1, 2, 1, 2, 3}, {1, 2, 1, 3, 1, 2, 1, 3}},  // rank 8, alternating
  };
  for (const auto& c : ops)
    for (DType t : kFloatTypes)
      for (const auto& [a, b] : shapes) check_binary(c, t, a, b);
}

// a [outer, mid, inner] against s [outer, 1, inner] (s first when s_first),
// every tensor `offset` elements past a 16-byte boundary: 0 takes the packed
// middle-broadcast kernel where inner is whole packs, 1 its one-element path.
void check_mid_broadcast(BinaryCase c, DType t, const std::vector<int64_t>& x_dims, const std::vector<int64_t>& s_dims,
                         bool s_first, int offset) {
  const Tensor x = random_tensor(t, x_dims, -2.f, 2.f, 1), s = random_tensor(t, s_dims, 0.5f, 2.f, 2);
  const Tensor ref = s_first ? run_cpu(c.onnx, {s, x}) : run_cpu(c.onnx, {x, s});
  ASSERT_TRUE(ref.is_valid());
  const size_t es = dtype_bits(t) / 8;
  auto at_offset = [&](const Tensor& h) {
    Tensor shifted(t, {h.numel() + offset});
    std::memcpy(static_cast<char*>(shifted.mutable_raw()) + offset * es, h.raw(), h.nbytes());
    return upload(shifted);
  };
  cuda::DeviceBuffer dx = at_offset(x), ds = at_offset(s), dy = device_zeros(ref.nbytes() + offset * es);
  const void* px = dx.as<char>() + offset * es;
  const void* ps = ds.as<char>() + offset * es;
  cuda::BinaryParams p;
  p.op = c.op;
  p.dtype = t;
  p.a = s_first ? ps : px;
  p.b = s_first ? px : ps;
  p.a_dims = s_first ? s_dims : x_dims;
  p.b_dims = s_first ? x_dims : s_dims;
  p.y = dy.as<char>() + offset * es;
  const Status st = cuda::launch_binary(p, nullptr);
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  expect_close(download(p.y, t, ref.dims()), ref, tolerance_for(t),
               std::string(c.onnx) + " " + std::string(dtype_name(t)) + shape_str(p.a_dims) + shape_str(p.b_dims) +
                   " offset " + std::to_string(offset));
}

// The squeeze-excitation scale: channels-last x [N,H,W,C] and s [N,1,1,C]
// collapse to [N, H*W, C] and [N, 1, C]. Sub and Div tell the operand order
// apart; C = 24 and 64 are whole packs of every float type, C = 12 of f32
// only, C = 7 of none (every slice holds a warp's units at least, so the
// kernel takes it); N = 1 collapses to a row broadcast (the rank-2 kernel);
// 66000 outer slices pass the grid's 65535 rows (offset 1: 32 elements a
// slice; aligned, the 4 packs a slice take the strided walk).
TEST_F(GpuTest, BinaryOpsBroadcastOverTheMiddleDimInBothOrders) {
  const std::vector<BinaryCase> ops = {{BinaryOp::kMul, "Mul"}, {BinaryOp::kSub, "Sub"}, {BinaryOp::kDiv, "Div"}};
  const std::vector<std::pair<std::vector<int64_t>, std::vector<int64_t>>> shapes = {{{2, 3, 5, 24}, {2, 1, 1, 24}},
                                                                                     {{3, 17, 64}, {3, 1, 64}},
                                                                                     {{2, 4, 4, 12}, {2, 1, 1, 12}},
                                                                                     {{4, 9, 7}, {4, 1, 7}},
                                                                                     {{1, 2, 2, 8}, {1, 1, 1, 8}}};
  for (const auto& c : ops)
    for (DType t : kFloatTypes)
      for (const auto& [x, s] : shapes)
        for (bool s_first : {true, false})
          for (int offset : {0, 1}) check_mid_broadcast(c, t, x, s, s_first, offset);
  for (bool s_first : {true, false})
    for (int offset : {0, 1})
      check_mid_broadcast({BinaryOp::kSub, "Sub"}, DType::kF16, {66000, 4, 8}, {66000, 1, 8}, s_first, offset);
}

TEST_F(GpuTest, BinaryRejectsShapesThatDoNotBroadcast) {
  cuda::BinaryParams p;
  p.a_dims = {3, 4};
  p.b_dims = {5};
  const Status st = cuda::launch_binary(p, nullptr);
  EXPECT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("do not broadcast"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace kiln::gpu_test
