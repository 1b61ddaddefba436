// Constant-mode Pad's row kernel (kernels/pad.cu) against the CPU backend,
// bit for bit (a pad is a copy), for every element width (1, 2, 4, 8 bytes):
// the image stems' pads scaled down (NCHW spatial, channels-last 12 -> 16 and
// 3 -> 8), odd sizes, vectors that cross rows, rows narrower than a vector,
// crops, empty axes, a fill value, more than one grid of vectors, the 64-bit
// index path and an output that is not 16-byte aligned. The other modes are
// in gpu_data_movement_ops_test.cpp.
#include "backends/cuda/kernels/layout.cuh"
#include "gpu_test_util.h"

namespace kiln::gpu_test {
namespace {

const DType kWidths[] = {DType::kI8, DType::kF16, DType::kF32, DType::kI64};  // 1, 2, 4 and 8 bytes

std::string what(DType t, const std::vector<int64_t>& dims, const std::vector<int64_t>& pads) {
  std::string s = "Pad " + std::string(dtype_name(t)) + shape_str(dims) + " pads";
  for (int64_t p : pads) s += " " + std::to_string(p);
  return s;
}

// Pads a random x by `pads` (ONNX order: every axis's before, then every
// axis's after) on the GPU and the CPU; `value` is the fill when valid.
void same_pad(DType t, const std::vector<int64_t>& dims, const std::vector<int64_t>& pads, const Tensor& value = {}) {
  const Tensor x = random_tensor(t, dims, -100.f, 100.f, 3);
  std::vector<Tensor> ins = {x, Tensor::vector_i64(pads)};
  if (value.is_valid()) ins.push_back(value);
  const Tensor gpu = run_cuda("Pad", ins), cpu = run_cpu("Pad", ins);
  EXPECT_EQ(gpu.dims(), cpu.dims()) << what(t, dims, pads);
  expect_equal(gpu, cpu, what(t, dims, pads) + (value.is_valid() ? " value" : ""));
}

TEST_F(GpuTest, ConstantPadOfTheStemShapesMatchesCpu) {
  for (DType t : kWidths) {
    same_pad(t, {2, 3, 14, 14}, {0, 0, 1, 1, 0, 0, 1, 1});  // NCHW spatial, before space-to-depth
    same_pad(t, {2, 7, 7, 12}, {0, 0, 0, 0, 0, 0, 0, 4});   // channels-last 12 -> 16
    same_pad(t, {2, 9, 9, 3}, {0, 0, 0, 0, 0, 0, 0, 5});    // channels-last 3 -> 8 (ViT)
    same_pad(t, {4, 3, 60, 61}, {0, 0, 3, 2, 0, 0, 1, 4});  // many blocks, rows of odd length
  }
}

TEST_F(GpuTest, ConstantPadOfOddShapesMatchesCpu) {
  for (DType t : kWidths) {
    same_pad(t, {3, 5, 7}, {1, 0, 2, 2, 3, 1}, random_tensor(t, {}, -100.f, 100.f, 9));
    same_pad(t, {1, 2, 5, 5}, {0, 0, 0, 1, 0, 0, 0, 0});  // one pixel before W
    same_pad(t, {1, 2, 5, 5}, {0, 0, 0, 0, 0, 0, 1, 0});  // one pixel after H: W folds into H
    same_pad(t, {2, 3, 4, 5}, {1, 2, 0, 1, 0, 1, 3, 2});  // every axis but one
    same_pad(t, {3, 37}, {0, 1, 0, 2});                   // rows of 40: vectors cross rows
    same_pad(t, {5, 1}, {0, 1, 0, 1});                    // rows of 3, narrower than a vector
    same_pad(t, {7, 2}, {0, 0, 0, 1});
    same_pad(t, {4, 5, 6}, {1, 0, 0, 2, 0, 0});    // the outer axis only: one merged axis
    same_pad(t, {3, 4, 5}, {-1, 0, 2, 1, -2, 3});  // crops and pads
    same_pad(t, {2, 6}, {0, -2, 0, -3});           // crops only
    same_pad(t, {2, 0, 3}, {0, 1, 0, 0, 2, 0});    // an empty input axis: all fill
    same_pad(t, {0, 3}, {0, 1, 0, 1});             // an empty output
    same_pad(t, {4, 5}, {0, 0, 0, 0});             // no pad: a copy
  }
}

TEST_F(GpuTest, ConstantPadLargerThanOneGridMatchesCpu) {
  // 4.4M f32 elements: over a million 16-byte vectors, more than the grid has
  // threads, so threads loop.
  same_pad(DType::kF32, {4, 1100, 1000}, {0, 0, 1, 0, 0, 3});
}

TEST_F(GpuTest, ConstantPadWithPadsPastInt32TakesTheWideIndexPath) {
  const int64_t big = int64_t(1) << 31;
  for (DType t : kWidths) same_pad(t, {2, 4}, {big, 1, -big, 0}, random_tensor(t, {}, -100.f, 100.f, 5));
}

TEST_F(GpuTest, ConstantPadIntoAMisalignedOutputMatchesCpu) {
  // An output 16-byte aligned takes vector stores; one element further on
  // takes element stores.
  for (DType t : kWidths) {
    const std::vector<int64_t> dims = {2, 3, 5, 12}, pads = {0, 0, 1, 0, 0, 0, 0, 4};
    const Tensor x = random_tensor(t, dims, -100.f, 100.f, 4);
    const Tensor ref = run_cpu("Pad", {x, Tensor::vector_i64(pads)});
    const int es = static_cast<int>(x.nbytes() / static_cast<size_t>(x.numel()));
    cuda::DeviceBuffer dx = upload(x), dy = device_zeros(ref.nbytes() + 16);
    for (int offset : {0, es}) {
      void* y = static_cast<char*>(dy.data()) + offset;
      cuda::PadParams p{es, dx.data(), y, dims, ref.dims(), {0, 0, 1, 0}, cuda::PadMode::kConstant, {}};
      ASSERT_TRUE(cuda::launch_pad(p, nullptr).is_ok());
      expect_equal(download(y, t, ref.dims()), ref, what(t, dims, pads) + " at offset " + std::to_string(offset));
    }
  }
}

}  // namespace
}  // namespace kiln::gpu_test
