// Transpose, Concat, Slice, Gather and Cast against the CPU backend: the
// results must be bit-identical (no arithmetic), for several element sizes.
#include "backends/cuda/kernels/data_movement.cuh"
#include "gpu_test_util.h"

namespace kiln::gpu_test {
namespace {

const DType kMoveTypes[] = {DType::kF32, DType::kF16, DType::kI64, DType::kBool};

int elem_size(DType t) { return dtype_bits(t) / 8; }

TEST_F(GpuTest, TransposeMatchesCpuForTiledNarrowAndGeneralPermutations) {
  const std::vector<std::pair<std::vector<int64_t>, std::vector<int64_t>>> cases = {
      {{33, 65}, {1, 0}},
      {{3, 70, 45}, {0, 2, 1}},
      {{2, 3, 4, 5}, {0, 1, 3, 2}},
      {{2, 3, 4, 5}, {0, 2, 1, 3}},
      {{2, 3, 4, 5}, {3, 2, 1, 0}},
      {{2, 1, 3}, {1, 0, 2}},
      {{5, 6}, {0, 1}},
      {{1, 7, 1, 9}, {3, 2, 1, 0}},
      // Narrow swaps: an image NCHW -> NHWC (3 channels) and back, 8 columns.
      {{2, 3, 7, 9}, {0, 2, 3, 1}},
      {{2, 7, 9, 3}, {0, 3, 1, 2}},
      {{4, 100, 8}, {0, 2, 1}},
  };
  for (DType t : kMoveTypes)
    for (const auto& [dims, perm] : cases) {
      const Tensor x = random_tensor(t, dims, -100.f, 100.f);
      const Tensor ref = run_cpu("Transpose", {x}, {{"perm", Attribute::of_ints(perm)}});
      cuda::DeviceBuffer dx = upload(x), dy = device_zeros(x.nbytes());
      cuda::TransposeParams p{elem_size(t), dx.data(), dy.data(), dims, perm};
      const Status st = cuda::launch_transpose(p, nullptr);
      ASSERT_TRUE(st.is_ok()) << st.to_string();
      expect_equal(download(dy.data(), t, ref.dims()), ref,
                   "Transpose " + std::string(dtype_name(t)) + shape_str(dims) + " perm " + shape_str(perm));
    }
}

TEST_F(GpuTest, ConcatMatchesCpuOnEveryAxis) {
  for (DType t : kMoveTypes)
    for (int64_t axis : {0, 1, -1}) {
      std::vector<std::vector<int64_t>> dims = {{3, 4, 5}, {3, 4, 5}, {3, 4, 5}};
      const size_t a = static_cast<size_t>(axis < 0 ? axis + 3 : axis);
      dims[1][a] = 2;
      dims[2][a] = 7;
      std::vector<Tensor> xs;
      std::vector<cuda::DeviceBuffer> bufs;
      cuda::ConcatParams p;
      p.elem_size = elem_size(t);
      p.axis = axis;
      p.dims = dims;
      for (size_t i = 0; i < dims.size(); ++i) {
        xs.push_back(random_tensor(t, dims[i], -100.f, 100.f, static_cast<uint32_t>(i)));
        bufs.push_back(upload(xs.back()));
        p.inputs.push_back(bufs.back().data());
      }
      const Tensor ref = run_cpu("Concat", xs, {{"axis", Attribute::of_int(axis)}});
      cuda::DeviceBuffer dy = device_zeros(ref.nbytes());
      p.y = dy.data();
      const Status st = cuda::launch_concat(p, nullptr);
      ASSERT_TRUE(st.is_ok()) << st.to_string();
      expect_equal(download(dy.data(), t, ref.dims()), ref,
                   "Concat " + std::string(dtype_name(t)) + " axis " + std::to_string(axis));
    }
}

TEST_F(GpuTest, SliceMatchesCpuWithNegativeAndLargeSteps) {
  // x [5, 8, 6]; starts [1, 7, 0], ends [4, 0, 6], steps [1, -2, 2] give
  // rows 1..3, columns 7, 5, 3, 1 and depths 0, 2, 4.
  for (DType t : kMoveTypes) {
    const Tensor x = random_tensor(t, {5, 8, 6}, -100.f, 100.f);
    const Tensor ref = run_cpu("Slice", {x, Tensor::vector_i64({1, 7, 0}), Tensor::vector_i64({4, 0, 6}),
                                         Tensor::vector_i64({0, 1, 2}), Tensor::vector_i64({1, -2, 2})});
    cuda::DeviceBuffer dx = upload(x), dy = device_zeros(ref.nbytes());
    cuda::SliceParams p{elem_size(t), dx.data(), dy.data(), {5, 8, 6}, {1, 7, 0}, {1, -2, 2}, {3, 4, 3}};
    const Status st = cuda::launch_slice(p, nullptr);
    ASSERT_TRUE(st.is_ok()) << st.to_string();
    expect_equal(download(dy.data(), t, ref.dims()), ref, "Slice " + std::string(dtype_name(t)));
  }
}

TEST_F(GpuTest, SliceRejectsAStartOutsideTheInput) {
  cuda::SliceParams p{4, nullptr, nullptr, {5}, {5}, {1}, {1}};
  EXPECT_FALSE(cuda::launch_slice(p, nullptr).is_ok());
}

void check_gather(DType t, const std::vector<int64_t>& dims, int64_t axis, DType index_type,
                  const std::vector<int64_t>& idx) {
  const Tensor x = random_tensor(t, dims, -100.f, 100.f);
  Tensor indices = Tensor::vector_i64(idx);
  if (index_type == DType::kI32) {
    std::vector<int32_t> v(idx.begin(), idx.end());
    indices = Tensor::from_vector(DType::kI32, {static_cast<int64_t>(v.size())}, v);
  }
  const Tensor ref = run_cpu("Gather", {x, indices}, {{"axis", Attribute::of_int(axis)}});
  cuda::DeviceBuffer dx = upload(x), di = upload(indices), dy = device_zeros(ref.nbytes()), flag = device_zeros(4);
  cuda::GatherParams p;
  p.elem_size = elem_size(t);
  p.data = dx.data();
  p.dims = dims;
  p.axis = axis;
  p.indices = di.data();
  p.index_dtype = index_type;
  p.num_indices = static_cast<int64_t>(idx.size());
  p.y = dy.data();
  p.out_of_range = flag.as<int>();
  const Status st = cuda::launch_gather(p, nullptr);
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  const std::string what = "Gather " + std::string(dtype_name(t)) + shape_str(dims) + " axis " + std::to_string(axis);
  expect_equal(download(dy.data(), t, ref.dims()), ref, what);
  EXPECT_EQ(download(flag.data(), DType::kI32, {1}).data<int32_t>()[0], 0) << what;
}

TEST_F(GpuTest, GatherMatchesCpuForEmbeddingRowsAndInnerAxes) {
  for (DType t : kMoveTypes)
    for (DType it : {DType::kI64, DType::kI32}) {
      check_gather(t, {50, 64}, 0, it, {3, 0, 49, -1, 7, 7});  // axis-0 rows: 128-bit path for f32/f16/i64
      check_gather(t, {50, 3}, 0, it, {1, -50, 20});           // rows not a multiple of 16 bytes
      check_gather(t, {4, 9, 5}, 1, it, {8, 0, -2});
      check_gather(t, {4, 9}, -1, it, {2});
    }
}

TEST_F(GpuTest, GatherFlagsAnOutOfRangeIndex) {
  const Tensor x = random_tensor(DType::kF32, {4, 4});
  const Tensor indices = Tensor::vector_i64({1, 4});
  cuda::DeviceBuffer dx = upload(x), di = upload(indices), dy = device_zeros(32 * 4), flag = device_zeros(4);
  cuda::GatherParams p;
  p.data = dx.data();
  p.dims = {4, 4};
  p.indices = di.data();
  p.num_indices = 2;
  p.y = dy.data();
  p.out_of_range = flag.as<int>();
  ASSERT_TRUE(cuda::launch_gather(p, nullptr).is_ok());
  EXPECT_EQ(download(flag.data(), DType::kI32, {1}).data<int32_t>()[0], 1);
}

TEST_F(GpuTest, CastMatchesCpuBetweenEveryPairOfSupportedTypes) {
  const DType types[] = {DType::kF32, DType::kF16, DType::kBF16, DType::kI32, DType::kI64, DType::kBool};
  for (DType from : types)
    for (DType to : types) {
      const Tensor x = random_tensor(from, {3, 37}, -300.f, 300.f, 9);
      const Tensor ref = run_cpu("Cast", {x}, {{"to", Attribute::of_int(static_cast<int>(to))}});
      cuda::DeviceBuffer dx = upload(x), dy = device_zeros(ref.nbytes());
      cuda::CastParams p{from, to, dx.data(), dy.data(), x.numel()};
      const Status st = cuda::launch_cast(p, nullptr);
      ASSERT_TRUE(st.is_ok()) << st.to_string();
      expect_equal(download(dy.data(), to, ref.dims()), ref,
                   "Cast " + std::string(dtype_name(from)) + " to " + std::string(dtype_name(to)));
    }
}

}  // namespace
}  // namespace kiln::gpu_test
