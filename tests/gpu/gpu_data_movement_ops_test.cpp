// The data-movement family's registered CUDA kernels (views, layout,
// indexing, generators, Resize, CumSum, Col2Im) through the executor against
// the CPU backend: bit-identical for moves, within tolerance where values are
// combined in floating point. Several dtypes (f32, f16, i64, bool, u8), odd
// shapes, rank 0/1, zero-size slices, negative axes and indices.
#include "gpu_test_util.h"
#include "ir/half.h"

namespace kiln::gpu_test {
namespace {

const DType kTypes[] = {DType::kF32, DType::kF16, DType::kI64, DType::kBool, DType::kU8};
const DType kNumeric[] = {DType::kF32, DType::kF16, DType::kI64, DType::kU8};

Tensor data(DType t, std::vector<int64_t> dims, uint32_t seed = 1) {
  return random_tensor(t, dims, -100.f, 100.f, seed);
}
Tensor i64s(std::vector<int64_t> v) { return Tensor::vector_i64(v); }
Tensor i32s(std::vector<int32_t> v) {
  return Tensor::from_vector<int32_t>(DType::kI32, {static_cast<int64_t>(v.size())}, v);
}
Tensor f32s(std::vector<float> v) {
  return Tensor::from_vector<float>(DType::kF32, {static_cast<int64_t>(v.size())}, v);
}
Tensor f32_scalar(float v) { return Tensor::from_vector<float>(DType::kF32, {}, {v}); }
std::string name(const std::string& op, DType t, const std::string& what = "") {
  return op + " " + std::string(dtype_name(t)) + (what.empty() ? "" : " " + what);
}

// Every output of the CUDA run equals the CPU's bit for bit.
void same(const std::string& op, const std::vector<Tensor>& ins, const Attrs& attrs, const std::string& what,
          int outputs = 1) {
  for (int o = 0; o < outputs; ++o)
    expect_equal(run_cuda(op, ins, attrs, static_cast<size_t>(o), outputs),
                 run_cpu(op, ins, attrs, static_cast<size_t>(o), outputs), what + " output " + std::to_string(o));
}

// Within the dtype's tolerance (integers: 1e-2 relative, so a rounding tie may differ by one).
void close(const std::string& op, const std::vector<Tensor>& ins, const Attrs& attrs, const std::string& what) {
  const Tensor cpu = run_cpu(op, ins, attrs);
  const double tol = dtype_is_float(cpu.dtype()) ? tolerance_for(cpu.dtype()) : 1e-2;
  expect_close(run_cuda(op, ins, attrs), cpu, tol, what);
}

TEST_F(GpuTest, ViewsAndShapeOpsMatchCpu) {
  for (DType t : kTypes) {
    const Tensor x = data(t, {3, 1, 5, 7});
    same("Reshape", {x, i64s({5, -1, 3})}, {}, name("Reshape", t));
    same("Reshape", {x, i64s({0, 35})}, {}, name("Reshape", t, "0 copies"));
    same("Squeeze", {x, i64s({-3})}, {}, name("Squeeze", t));
    same("Unsqueeze", {x, i64s({0, -1})}, {}, name("Unsqueeze", t));
    same("Flatten", {x}, {{"axis", Attribute::of_int(-2)}}, name("Flatten", t));
    same("Identity", {x}, {}, name("Identity", t));
    same("Identity", {data(t, {})}, {}, name("Identity", t, "rank 0"));
    same("Size", {x}, {}, name("Size", t));
    same("Shape", {x}, {}, name("Shape", t));
    same("Shape", {x}, {{"start", Attribute::of_int(-3)}, {"end", Attribute::of_int(-1)}}, name("Shape", t, "slice"));
    same("Shape", {x}, {{"start", Attribute::of_int(9)}}, name("Shape", t, "empty"));
    same("Shape", {data(t, {})}, {}, name("Shape", t, "rank 0"));
  }
  same("Shape", {data(DType::kF32, {1, 2, 3, 4, 5, 6, 7, 8, 1})}, {}, "Shape of rank 9 (two launches)");
}

TEST_F(GpuTest, TransposeConcatSplitMatchCpu) {
  for (DType t : kTypes) {
    const Tensor x = data(t, {3, 5, 7, 2});
    same("Transpose", {x}, {}, name("Transpose", t, "default perm"));
    same("Transpose", {x}, {{"perm", Attribute::of_ints({0, 2, 1, 3})}}, name("Transpose", t));
    same("Transpose", {data(t, {37, 65})}, {{"perm", Attribute::of_ints({1, 0})}}, name("Transpose", t, "2-D"));
    same("Transpose", {data(t, {2, 3, 7, 2, 5, 2})}, {{"perm", Attribute::of_ints({0, 2, 4, 3, 5, 1})}},
         name("Transpose", t, "space-to-depth stem perm"));
    same("Concat", {data(t, {3, 2, 5}, 1), data(t, {3, 0, 5}, 2), data(t, {3, 7, 5}, 3)},
         {{"axis", Attribute::of_int(-2)}}, name("Concat", t, "with an empty input"));
    same("Concat", {data(t, {4}, 1), data(t, {9}, 2)}, {{"axis", Attribute::of_int(0)}}, name("Concat", t, "1-D"));
    same("Split", {x, i64s({1, 4, 0, 2})}, {{"axis", Attribute::of_int(2)}}, name("Split", t, "split input"), 4);
    same("Split", {data(t, {7, 3})}, {{"num_outputs", Attribute::of_int(3)}}, name("Split", t, "uneven chunks"), 3);
    same("Split", {data(t, {2, 9})}, {{"axis", Attribute::of_int(-1)}}, name("Split", t, "two halves"), 2);
  }
}

TEST_F(GpuTest, TransposeLargerThanOneGridMatchesCpu) {
  // [96,3,130*130] swapping the first two dims takes the general kernel; 4.9M
  // f32 elements are over a million 16-byte vectors, more than the grid has
  // threads, so threads loop.
  same("Transpose", {data(DType::kF32, {96, 3, 130, 130})}, {{"perm", Attribute::of_ints({1, 0, 2, 3})}},
       "Transpose f32 larger than one grid");
}

TEST_F(GpuTest, SliceMatchesCpuWithNegativeStepsAndClamping) {
  for (DType t : kTypes) {
    const Tensor x = data(t, {6, 9, 5});
    auto slice = [&](std::vector<int64_t> s, std::vector<int64_t> e, std::vector<int64_t> a, std::vector<int64_t> st,
                     const std::string& what) {
      same("Slice", {x, i64s(s), i64s(e), i64s(a), i64s(st)}, {}, name("Slice", t, what));
    };
    slice({1, -1}, {5, 0}, {0, 1}, {2, -3}, "negative step");
    slice({-100, 100}, {100, -100}, {-1, 1}, {1, -1}, "clamped");
    slice({3}, {3}, {0}, {1}, "empty");
    slice({8}, {-100}, {1}, {-1}, "whole axis reversed");
    slice({0, 0, 0}, {1, 1, 1}, {0, 1, 2}, {1, 1, 1}, "one element");
    same("Slice", {x, i64s({1}), i64s({4})}, {}, name("Slice", t, "no axes or steps"));
    same("Slice", {data(t, {10}), i32s({-1}), i32s({-11}), i32s({0}), i32s({-4})}, {}, name("Slice", t, "int32"));
  }
}

TEST_F(GpuTest, GathersMatchCpu) {
  for (DType t : kTypes) {
    const Tensor x = data(t, {5, 7, 3});
    same("Gather", {x, i64s({4, -1, 0, 2})}, {{"axis", Attribute::of_int(0)}}, name("Gather", t));
    same("Gather", {x, i32s({-7, 6})}, {{"axis", Attribute::of_int(-2)}}, name("Gather", t, "int32 axis -2"));
    same("Gather", {x, Tensor::scalar_i64(-2)}, {{"axis", Attribute::of_int(2)}}, name("Gather", t, "scalar index"));
    Tensor ge_idx = random_tensor(DType::kI64, {5, 4, 3}, -6.f, 6.f, 3);
    same("GatherElements", {x, ge_idx}, {{"axis", Attribute::of_int(1)}}, name("GatherElements", t));
    same("GatherElements", {x, random_tensor(DType::kI64, {2, 7, 3}, -4.f, 4.f, 4)}, {{"axis", Attribute::of_int(0)}},
         name("GatherElements", t, "axis 0, fewer rows"));
    Tensor nd_idx = Tensor::from_vector<int64_t>(DType::kI64, {2, 2, 2}, {0, 1, 4, -1, -5, 6, 2, 0});
    same("GatherND", {x, nd_idx}, {}, name("GatherND", t));
    Tensor nd_idx1 = Tensor::from_vector<int64_t>(DType::kI64, {5, 1}, {0, 6, -1, 3, 2});  // ONNX: int64 only
    same("GatherND", {x, nd_idx1}, {{"batch_dims", Attribute::of_int(1)}}, name("GatherND", t, "batch_dims 1"));
    Tensor nd_full = Tensor::from_vector<int64_t>(DType::kI64, {2, 3}, {4, 6, 2, 0, 0, -3});
    same("GatherND", {x, nd_full}, {}, name("GatherND", t, "full tuples"));
  }
}

TEST_F(GpuTest, ScattersMatchCpuForEveryReduction) {
  // Unique targets along the axis for "none"; repeated ones for the reductions.
  const Tensor unique_idx = Tensor::from_vector<int64_t>(DType::kI64, {2, 3}, {3, -1, 0, 1, 2, -3});
  const Tensor repeat_idx = Tensor::from_vector<int64_t>(DType::kI64, {3, 3}, {1, 1, 0, 1, -3, 2, 1, -1, 2});
  for (DType t : kTypes) {
    const Tensor x = data(t, {4, 3}, 1);
    same("ScatterElements", {x, unique_idx, data(t, {2, 3}, 2)}, {{"axis", Attribute::of_int(0)}},
         name("ScatterElements", t));
    const std::vector<Tensor> scatter_ins = {x, unique_idx, data(t, {2, 3}, 2)};
    const Attrs axis0 = {{"axis", Attribute::of_int(0)}};
    expect_equal(run_cuda("Scatter", scatter_ins, axis0, 0, 1, 10), run_cpu("Scatter", scatter_ins, axis0, 0, 1, 10),
                 name("Scatter (opset 10)", t));
    same("ScatterElements", {x, repeat_idx, data(t, {3, 3}, 3)}, {{"axis", Attribute::of_int(-1)}},
         name("ScatterElements", t, "repeated indices, none keeps the last"));
    const Tensor nd_idx = Tensor::from_vector<int64_t>(DType::kI64, {2, 1}, {2, -4});
    same("ScatterND", {x, nd_idx, data(t, {2, 3}, 4)}, {}, name("ScatterND", t));
    for (const char* r : {"add", "mul", "max", "min"}) {
      const Attrs a = {{"axis", Attribute::of_int(1)}, {"reduction", Attribute::of_string(r)}};
      const Tensor rep_nd = Tensor::from_vector<int64_t>(DType::kI64, {4, 2}, {0, 1, 3, 2, 0, 1, 0, -2});
      if (t == DType::kF32 || t == DType::kF16) {
        close("ScatterElements", {x, repeat_idx.reshaped({3, 3}), data(t, {3, 3}, 5)}, a,
              name("ScatterElements", t, r));
        close("ScatterND", {x, rep_nd, data(t, {4}, 6)}, {{"reduction", Attribute::of_string(r)}},
              name("ScatterND", t, r));
      } else {
        same("ScatterElements", {x, repeat_idx, data(t, {3, 3}, 5)}, a, name("ScatterElements", t, r));
        same("ScatterND", {x, rep_nd, data(t, {4}, 6)}, {{"reduction", Attribute::of_string(r)}},
             name("ScatterND", t, r));
      }
    }
  }
}

TEST_F(GpuTest, TensorScatterMatchesCpu) {
  for (DType t : kTypes) {
    const Tensor cache = data(t, {2, 3, 7, 4}, 1), update = data(t, {2, 3, 3, 4}, 2);
    same("TensorScatter", {cache, update, i64s({1, 4})}, {}, name("TensorScatter", t, "linear"));
    same("TensorScatter", {cache, update}, {}, name("TensorScatter", t, "no write indices"));
    same("TensorScatter", {cache, update, i64s({6, 5})}, {{"mode", Attribute::of_string("circular")}},
         name("TensorScatter", t, "circular"));
  }
}

TEST_F(GpuTest, ExpandTilePadMatchCpu) {
  for (DType t : kTypes) {
    same("Expand", {data(t, {3, 1}), i64s({2, 1, 3, 5})}, {}, name("Expand", t));
    same("Expand", {data(t, {}), i64s({4, 3})}, {}, name("Expand", t, "from rank 0"));
    same("Expand", {data(t, {1, 300}), i64s({129, 1})}, {}, name("Expand", t, "many blocks"));
    same("Tile", {data(t, {3, 5}), i64s({2, 3})}, {}, name("Tile", t));
    same("Tile", {data(t, {7}), i64s({0})}, {}, name("Tile", t, "zero repeats"));
    const Tensor x = data(t, {3, 4, 5});
    for (const char* mode : {"constant", "reflect", "edge", "wrap"}) {
      const Attrs m = {{"mode", Attribute::of_string(mode)}};
      same("Pad", {x, i64s({1, 2, 3, 2, 1, 3})}, m, name("Pad", t, mode));
      same("Pad", {x, i64s({-1, 0, 2, 1, -2, 3})}, m, name("Pad", t, std::string(mode) + " negative pads"));
      same("Pad", {x, i64s({2, 5}), Tensor(), i64s({-1})}, m, name("Pad", t, std::string(mode) + " axes input"));
    }
    same("Pad", {x, i64s({1, 1, 1, 1, 1, 1}), data(t, {}, 9)}, {}, name("Pad", t, "constant value"));
    same("CenterCropPad", {x, i64s({6, 2, 5})}, {}, name("CenterCropPad", t));
    same("CenterCropPad", {x, i64s({1, 8})}, {{"axes", Attribute::of_ints({-1, 0})}}, name("CenterCropPad", t, "axes"));
  }
}

TEST_F(GpuTest, DepthSpaceTriluReverseSequenceMatchCpu) {
  for (DType t : kTypes) {
    for (const char* mode : {"DCR", "CRD"})
      same("DepthToSpace", {data(t, {2, 12, 3, 5})},
           {{"blocksize", Attribute::of_int(2)}, {"mode", Attribute::of_string(mode)}}, name("DepthToSpace", t, mode));
    same("SpaceToDepth", {data(t, {2, 3, 6, 9})}, {{"blocksize", Attribute::of_int(3)}}, name("SpaceToDepth", t));
    const Tensor x = data(t, {2, 5, 7});
    for (int64_t upper : {0, 1})
      for (int64_t k : {-2, 0, 3}) {
        const Attrs a = {{"upper", Attribute::of_int(upper)}};
        same("Trilu", {x, Tensor::scalar_i64(k)}, a,
             name("Trilu", t, std::to_string(upper) + " k " + std::to_string(k)));
      }
    same("Trilu", {data(t, {6, 4})}, {}, name("Trilu", t, "no k"));
    same("ReverseSequence", {data(t, {5, 4, 3}), i64s({5, 1, 0, 3})}, {}, name("ReverseSequence", t, "time major"));
    same("ReverseSequence", {data(t, {4, 6}), i64s({2, 6, 1, 4})},
         {{"batch_axis", Attribute::of_int(0)}, {"time_axis", Attribute::of_int(1)}},
         name("ReverseSequence", t, "batch major"));
  }
}

TEST_F(GpuTest, GeneratorsMatchCpu) {
  same("Range", {f32_scalar(-3.5f), f32_scalar(50.f), f32_scalar(0.37f)}, {}, "Range f32");
  same("Range", {Tensor::scalar_i64(10), Tensor::scalar_i64(-7), Tensor::scalar_i64(-3)}, {}, "Range i64");
  same("Range",
       {Tensor::from_vector<uint16_t>(DType::kF16, {}, {f32_to_f16(1.5f)}),
        Tensor::from_vector<uint16_t>(DType::kF16, {}, {f32_to_f16(9.f)}),
        Tensor::from_vector<uint16_t>(DType::kF16, {}, {f32_to_f16(0.25f)})},
       {}, "Range f16");
  same("Range", {f32_scalar(1.f), f32_scalar(1.f), f32_scalar(1.f)}, {}, "Range empty");
  same("ConstantOfShape", {i64s({3, 5})}, {}, "ConstantOfShape default zeros");
  same("ConstantOfShape", {i64s({2, 0})}, {}, "ConstantOfShape empty");
  for (DType t : kTypes) {
    same("ConstantOfShape", {i64s({7, 3})}, {{"value", Attribute::of_tensor(data(t, {1}, 4))}},
         name("ConstantOfShape", t));
    same("EyeLike", {data(t, {5, 7})}, {{"k", Attribute::of_int(2)}}, name("EyeLike", t));
    same("EyeLike", {data(t, {6, 3})}, {{"k", Attribute::of_int(-1)}}, name("EyeLike", t, "k -1"));
    same("EyeLike", {data(DType::kF32, {4, 4})}, {{"dtype", Attribute::of_int(static_cast<int>(t))}},
         name("EyeLike", t, "dtype attribute"));
    const Tensor values = data(t, {2}, 5);
    same("OneHot", {i64s({0, 3, -1, 9, -6, 2}), Tensor::scalar_i64(5), values}, {}, name("OneHot", t));
    same("OneHot", {random_tensor(DType::kI32, {3, 4}, -6.f, 6.f), Tensor::scalar_i64(6), values},
         {{"axis", Attribute::of_int(0)}}, name("OneHot", t, "axis 0"));
    same("OneHot", {f32s({1.7f, -2.2f, 3.f}), f32_scalar(4.f), values}, {{"axis", Attribute::of_int(-2)}},
         name("OneHot", t, "float indices"));
  }
}

TEST_F(GpuTest, CumSumCumProdMatchCpu) {
  for (DType t : kNumeric) {
    const Tensor x = t == DType::kU8 ? random_tensor(t, {4, 37, 3}, 0.f, 9.f) : random_tensor(t, {4, 37, 3}, -2.f, 2.f);
    for (int64_t axis : {0, 1, -1})
      for (int exclusive : {0, 1})
        for (int reverse : {0, 1}) {
          const Attrs a = {{"exclusive", Attribute::of_int(exclusive)}, {"reverse", Attribute::of_int(reverse)}};
          const std::string what =
              "axis " + std::to_string(axis) + " ex " + std::to_string(exclusive) + " rev " + std::to_string(reverse);
          same("CumSum", {x, Tensor::scalar_i64(axis)}, a, name("CumSum", t, what));
          const Tensor small =
              t == DType::kU8 ? random_tensor(t, {4, 37, 3}, 0.f, 2.f) : random_tensor(t, {4, 37, 3}, 0.5f, 1.5f);
          same("CumProd", {small, Tensor::scalar_i64(axis)}, a, name("CumProd", t, what));
        }
    same("CumSum", {random_tensor(t, {300}, 0.f, 3.f), i32s({0})}, {}, name("CumSum", t, "1-D"));
  }
}

TEST_F(GpuTest, ResizeMatchesCpuForEveryMode) {
  const Tensor x = random_tensor(DType::kF32, {2, 3, 7, 9}, -2.f, 2.f);
  const Tensor up = f32s({1.f, 1.f, 1.7f, 2.3f}), down = f32s({1.f, 1.f, 0.45f, 0.6f});
  for (const char* ctm : {"half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
                          "tf_half_pixel_for_nn"}) {
    for (const char* nearest : {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"}) {
      const Attrs a = {{"mode", Attribute::of_string("nearest")},
                       {"coordinate_transformation_mode", Attribute::of_string(ctm)},
                       {"nearest_mode", Attribute::of_string(nearest)}};
      close("Resize", {x, Tensor(), up}, a, std::string("Resize nearest up ") + ctm + " " + nearest);
      close("Resize", {x, Tensor(), down}, a, std::string("Resize nearest down ") + ctm + " " + nearest);
    }
    for (const char* mode : {"linear", "cubic"})
      for (int exclude : {0, 1}) {
        const Attrs a = {{"mode", Attribute::of_string(mode)},
                         {"coordinate_transformation_mode", Attribute::of_string(ctm)},
                         {"exclude_outside", Attribute::of_int(exclude)},
                         {"cubic_coeff_a", Attribute::of_float(-0.5f)}};
        const std::string what = std::string("Resize ") + mode + " " + ctm + " exclude " + std::to_string(exclude);
        close("Resize", {x, Tensor(), up}, a, what + " up");
        close("Resize", {x, Tensor(), down}, a, what + " down");
      }
  }
  for (const char* mode : {"linear", "cubic"}) {
    const Attrs a = {{"mode", Attribute::of_string(mode)}, {"antialias", Attribute::of_int(1)}};
    close("Resize", {x, Tensor(), down}, a, std::string("Resize antialias ") + mode);
    close("Resize", {x, Tensor(), f32s({1.f, 1.f, 0.3f, 0.25f})}, a, std::string("Resize antialias /4 ") + mode);
  }
  const Attrs crop = {{"mode", Attribute::of_string("linear")},
                      {"coordinate_transformation_mode", Attribute::of_string("tf_crop_and_resize")},
                      {"extrapolation_value", Attribute::of_float(7.5f)}};
  close("Resize", {x, f32s({0, 0, -0.2f, 0.1f, 1, 1, 0.9f, 1.3f}), up}, crop, "Resize tf_crop_and_resize");
  close("Resize", {x, f32s({0.1f, -0.3f, 0.8f, 1.2f}), Tensor(), i64s({5, 11})},
        {{"mode", Attribute::of_string("nearest")},
         {"coordinate_transformation_mode", Attribute::of_string("tf_crop_and_resize")},
         {"axes", Attribute::of_ints({2, -1})}},
        "Resize tf_crop_and_resize nearest with axes and sizes");
  for (const char* policy : {"stretch", "not_larger", "not_smaller"})
    close("Resize", {x, Tensor(), Tensor(), i64s({10, 5})},
          {{"mode", Attribute::of_string("linear")},
           {"axes", Attribute::of_ints({2, 3})},
           {"keep_aspect_ratio_policy", Attribute::of_string(policy)}},
          std::string("Resize sizes ") + policy);
  for (DType t : {DType::kF16, DType::kU8, DType::kI64}) {
    const Tensor xt = t == DType::kF16 ? random_tensor(t, {1, 2, 5, 6}, -2.f, 2.f) : data(t, {1, 2, 5, 6});
    for (const char* mode : {"nearest", "linear", "cubic"})
      close("Resize", {xt, Tensor(), up}, {{"mode", Attribute::of_string(mode)}}, name("Resize", t, mode));
  }
  close("Resize", {random_tensor(DType::kF32, {3, 64, 48}), Tensor(), f32s({1.f, 2.f, 2.f})},
        {{"mode", Attribute::of_string("linear")}}, "Resize many blocks");
}

TEST_F(GpuTest, Col2ImMatchesCpu) {
  // 2 images of 2 channels, 3x3 blocks, stride 2, dilation (1, 2), pads.
  const Attrs a = {{"strides", Attribute::of_ints({2, 1})},
                   {"dilations", Attribute::of_ints({1, 2})},
                   {"pads", Attribute::of_ints({1, 0, 1, 2})}};
  // image 7x8: blocks per dim (7+2-3)/2+1 = 4 and (8+2-5)/1+1 = 6.
  for (DType t : {DType::kF32, DType::kF16, DType::kI64}) {
    const Tensor x = random_tensor(t, {2, 2 * 9, 24}, -2.f, 2.f);
    close("Col2Im", {x, i64s({7, 8}), i64s({3, 3})}, a, name("Col2Im", t));
  }
  close("Col2Im", {random_tensor(DType::kF32, {1, 4, 10}), i64s({11}), i64s({2})}, {}, "Col2Im 1-D");
}

}  // namespace
}  // namespace kiln::gpu_test
