// DepthToSpace and SpaceToDepth on NCHW, in DCR (depth, column, row) or CRD
// order of the channel blocks; Col2Im (the inverse of im2col, summing overlaps).
#include "backends/cpu/cpu_kernel.h"
#include "backends/cpu/dtype_dispatch.h"
#include "backends/cpu/kernels/element_copy.h"

namespace kiln {
namespace {

// The channel of the deep tensor holding block offset (i, j) of channel c.
int64_t deep_channel(bool crd, int64_t c, int64_t i, int64_t j, int64_t b, int64_t shallow_channels) {
  return crd ? (c * b + i) * b + j : (i * b + j) * shallow_channels + c;
}

Status run_depth_space(CpuKernelContext& ctx, bool to_space) {
  const Tensor& in = ctx.input(0);
  if (in.rank() != 4) return invalid_argument("{}: input must be 4-D", ctx.node().op_type);
  const int64_t b = ctx.node().attr_int("blocksize", 1);
  const bool crd = ctx.node().attr_string("mode", "DCR") == "CRD";
  auto dims = ctx.inferred_dims(0);
  if (!dims) return internal_error("{}: output dims unknown at run time", ctx.node().op_type);
  Tensor& out = ctx.allocate_output(0, *dims);
  // (deep: N, C*b*b, H, W) <-> (shallow: N, C, H*b, W*b)
  const auto& deep = to_space ? in.dims() : *dims;
  const auto& shallow = to_space ? *dims : in.dims();
  const int64_t n = deep[0], c_s = shallow[1], h = deep[2], w = deep[3];
  ElementCopier copy(in, out);
  for (int64_t ni = 0; ni < n; ++ni)
    for (int64_t c = 0; c < c_s; ++c)
      for (int64_t i = 0; i < b; ++i)
        for (int64_t j = 0; j < b; ++j) {
          const int64_t dc = deep_channel(crd, c, i, j, b, c_s);
          for (int64_t y = 0; y < h; ++y)
            for (int64_t x = 0; x < w; ++x) {
              int64_t d_at = ((ni * deep[1] + dc) * h + y) * w + x;
              int64_t s_at = ((ni * c_s + c) * shallow[2] + y * b + i) * shallow[3] + x * b + j;
              if (to_space) {
                copy.copy(s_at, d_at);
              } else {
                copy.copy(d_at, s_at);
              }
            }
        }
  return Status::ok();
}

Status run_col2im(CpuKernelContext& ctx) {
  const Tensor& in = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(auto image, ctx.input(1).to_i64_vector());
  KILN_ASSIGN_OR_RETURN(auto block, ctx.input(2).to_i64_vector());
  const size_t nd = image.size();
  auto attr = [&](const char* key, int64_t fill, size_t n) {
    auto v = ctx.node().attr_ints(key);
    return v.empty() ? std::vector<int64_t>(n, fill) : v;
  };
  const auto dil = attr("dilations", 1, nd), strides = attr("strides", 1, nd), pads = attr("pads", 0, 2 * nd);
  if (in.rank() != 3 || block.size() != nd || dil.size() != nd || strides.size() != nd || pads.size() != 2 * nd)
    return invalid_argument("Col2Im: inconsistent ranks of input, image_shape, block_shape and attributes");
  std::vector<int64_t> blocks_per_dim(nd);
  int64_t locations = 1, kernel = 1;
  for (size_t k = 0; k < nd; ++k) {
    int64_t extent = dil[k] * (block[k] - 1) + 1;
    blocks_per_dim[k] = (image[k] + pads[k] + pads[k + nd] - extent) / strides[k] + 1;
    locations *= blocks_per_dim[k];
    kernel *= block[k];
  }
  if (in.dims()[2] != locations)
    return invalid_argument("Col2Im: input has {} blocks, the geometry gives {}", in.dims()[2], locations);
  const int64_t n = in.dims()[0], channels = in.dims()[1] / kernel;
  std::vector<int64_t> out_dims{n, channels};
  out_dims.insert(out_dims.end(), image.begin(), image.end());
  Tensor& out = ctx.allocate_output(0, out_dims);
  const int64_t image_size = dims_numel(image, 0, nd);
  return visit_dtype(in.dtype(), kNumericTypes, [&]<typename T>() -> Status {
    using C = compute_t<T>;
    std::vector<double> acc(static_cast<size_t>(out.numel()), 0.0);
    const T* src = in.data<T>();
    for (int64_t ni = 0; ni < n; ++ni)
      for (int64_t c = 0; c < channels; ++c) {
        std::vector<int64_t> kk(nd, 0);
        for (int64_t kf = 0; kf < kernel; ++kf, next_index(kk, block)) {
          std::vector<int64_t> ll(nd, 0);
          for (int64_t lf = 0; lf < locations; ++lf, next_index(ll, blocks_per_dim)) {
            int64_t at = 0;
            bool inside = true;
            for (size_t k = 0; k < nd && inside; ++k) {
              int64_t p = ll[k] * strides[k] - pads[k] + kk[k] * dil[k];
              inside = p >= 0 && p < image[k];
              at = at * image[k] + p;
            }
            if (inside)
              acc[static_cast<size_t>((ni * channels + c) * image_size + at)] +=
                  static_cast<double>(static_cast<C>(src[((ni * channels + c) * kernel + kf) * locations + lf]));
          }
        }
      }
    T* o = out.mutable_data<T>();
    for (int64_t i = 0; i < out.numel(); ++i) o[i] = T(static_cast<C>(acc[static_cast<size_t>(i)]));
    return Status::ok();
  });
}

}  // namespace

KILN_CPU_KERNEL("", "DepthToSpace", [](CpuKernelContext& c) { return run_depth_space(c, true); });
KILN_CPU_KERNEL("", "SpaceToDepth", [](CpuKernelContext& c) { return run_depth_space(c, false); });
KILN_CPU_KERNEL("", "Col2Im", run_col2im);

}  // namespace kiln
