// Expand/Tile, DepthToSpace/SpaceToDepth, Trilu, ReverseSequence, EyeLike
// and fills as index maps (index_map.cuh): one thread per output element
// computes the input element it copies, or a fill. Pad is in pad.cu.
#include <algorithm>

#include "backends/cuda/kernels/index_map.cuh"

namespace kiln::cuda {
namespace {

Status check_rank(const char* op, size_t rank) {
  if (rank > static_cast<size_t>(kMaxRank))
    return unsupported("{}: rank {} (the CUDA kernel takes up to {})", op, rank, kMaxRank);
  return Status::ok();
}

void row_major_strides(const std::vector<int64_t>& dims, int64_t* strides) {
  int64_t s = 1;
  for (size_t d = dims.size(); d-- > 0;) strides[d] = s, s *= dims[d];
}

struct TileMap {
  int rank;
  int64_t out_dims[kMaxRank], in_dims[kMaxRank], in_strides[kMaxRank];
  __device__ int64_t operator()(int64_t i) const {
    int64_t off = 0;
    for (int d = rank - 1; d >= 0; --d) {
      const int64_t c = i % out_dims[d];
      i /= out_dims[d];
      off += (in_dims[d] == out_dims[d] ? c : c % in_dims[d]) * in_strides[d];
    }
    return off;
  }
};

// Deep: (N, C*b*b, H, W); shallow: (N, C, H*b, W*b). Block offset (bi, bj)
// of shallow channel c sits in deep channel (c*b + bi)*b + bj (CRD) or
// (bi*b + bj)*C + c (DCR).
struct DepthSpaceMap {
  bool to_space, crd;
  int64_t b, c_shallow, h, w;
  __device__ int64_t operator()(int64_t i) const {
    const int64_t hb = h * b, wb = w * b, c_deep = c_shallow * b * b;
    if (to_space) {  // i indexes the shallow output
      const int64_t xs = i % wb, ys = (i / wb) % hb, c = (i / (wb * hb)) % c_shallow, n = i / (wb * hb * c_shallow);
      const int64_t bi = ys % b, bj = xs % b;
      const int64_t dc = crd ? (c * b + bi) * b + bj : (bi * b + bj) * c_shallow + c;
      return ((n * c_deep + dc) * h + ys / b) * w + xs / b;
    }
    const int64_t x = i % w, y = (i / w) % h, dc = (i / (w * h)) % c_deep, n = i / (w * h * c_deep);
    const int64_t c = crd ? dc / (b * b) : dc % c_shallow;
    const int64_t bi = crd ? (dc / b) % b : dc / (b * c_shallow);
    const int64_t bj = crd ? dc % b : (dc / c_shallow) % b;
    return ((n * c_shallow + c) * hb + y * b + bi) * wb + x * b + bj;
  }
};

struct TriluMap {
  int64_t rows, cols, k;
  bool upper;
  __device__ int64_t operator()(int64_t i) const {
    const int64_t c = i % cols, r = (i / cols) % rows;
    return (upper ? c - r >= k : c - r <= k) ? i : kFill;
  }
};

struct ReverseSequenceMap {
  int64_t d0, d1, inner;
  const void* lens;
  bool lens64, batch_first;
  __device__ int64_t operator()(int64_t i) const {
    const int64_t e = i % inner, pos = i / inner, first = pos / d1, second = pos % d1;
    const int64_t b = batch_first ? first : second, t = batch_first ? second : first;
    const int64_t steps = batch_first ? d1 : d0;
    const int64_t len = load_index(lens, lens64, b);
    if (len < 0 || len > steps) return kFill;  // the CPU reports this length; write zeros
    const int64_t src_t = t < len ? len - 1 - t : t;
    const int64_t f = batch_first ? b : src_t, s = batch_first ? src_t : b;
    return (f * d1 + s) * inner + e;
  }
};

struct EyeMap {
  int64_t cols, k;
  __device__ int64_t operator()(int64_t i) const { return i % cols - i / cols == k ? kFillAlt : kFill; }
};

struct FillMap {
  __device__ int64_t operator()(int64_t) const { return kFill; }
};

struct I64Values {
  int count;
  int64_t v[8];
};

__global__ void write_i64_kernel(int64_t* y, I64Values values) {
  if (static_cast<int>(threadIdx.x) < values.count) y[threadIdx.x] = values.v[threadIdx.x];
}

}  // namespace

Status launch_tile(const TileParams& p, cudaStream_t stream) {
  const size_t rank = p.out_dims.size();
  if (p.in_dims.size() != rank)
    return invalid_argument("tile: input rank {} differs from output rank {}", p.in_dims.size(), rank);
  KILN_RETURN_IF_ERROR(check_rank("tile", rank));
  const int64_t n = product(p.out_dims, 0, rank);
  if (n == 0) return Status::ok();
  TileMap m{};
  m.rank = static_cast<int>(rank);
  row_major_strides(p.in_dims, m.in_strides);
  for (size_t d = 0; d < rank; ++d) {
    if (p.in_dims[d] <= 0) return invalid_argument("tile: empty input dim {} for a nonempty output", d);
    m.out_dims[d] = p.out_dims[d];
    m.in_dims[d] = p.in_dims[d];
  }
  return launch_map_copy(p.elem_size, p.x, p.y, n, m, "tile_kernel", {}, {}, stream);
}

Status launch_depth_space(const DepthSpaceParams& p, cudaStream_t stream) {
  if (p.in_dims.size() != 4 || p.blocksize < 1) return invalid_argument("depth_space: needs 4-D input, blocksize >= 1");
  const int64_t b = p.blocksize, n = product(p.in_dims, 0, 4);
  if (n == 0) return Status::ok();
  DepthSpaceMap m{p.to_space, p.crd, b, 0, 0, 0};
  if (p.to_space) {
    if (p.in_dims[1] % (b * b) != 0) return invalid_argument("DepthToSpace: channels not divisible by blocksize^2");
    m.c_shallow = p.in_dims[1] / (b * b), m.h = p.in_dims[2], m.w = p.in_dims[3];
  } else {
    if (p.in_dims[2] % b != 0 || p.in_dims[3] % b != 0)
      return invalid_argument("SpaceToDepth: height and width must be divisible by the blocksize");
    m.c_shallow = p.in_dims[1], m.h = p.in_dims[2] / b, m.w = p.in_dims[3] / b;
  }
  return launch_map_copy(p.elem_size, p.x, p.y, n, m, "depth_space_kernel", {}, {}, stream);
}

Status launch_trilu(const TriluParams& p, cudaStream_t stream) {
  const size_t rank = p.dims.size();
  if (rank < 2) return invalid_argument("Trilu: input rank {} < 2", rank);
  const int64_t n = product(p.dims, 0, rank);
  if (n == 0) return Status::ok();
  const TriluMap m{p.dims[rank - 2], p.dims[rank - 1], p.k, p.upper};
  return launch_map_copy(p.elem_size, p.x, p.y, n, m, "trilu_kernel", {}, {}, stream);
}

Status launch_reverse_sequence(const ReverseSequenceParams& p, cudaStream_t stream) {
  const size_t rank = p.dims.size();
  const bool axes_ok = (p.batch_axis == 0 && p.time_axis == 1) || (p.batch_axis == 1 && p.time_axis == 0);
  if (rank < 2 || !axes_ok) return invalid_argument("ReverseSequence: rank >= 2, batch/time axes 0 and 1");
  const int64_t n = product(p.dims, 0, rank);
  if (n == 0) return Status::ok();
  const ReverseSequenceMap m{p.dims[0], p.dims[1], product(p.dims, 2, rank), p.lens, p.lens64, p.batch_axis == 0};
  return launch_map_copy(p.elem_size, p.x, p.y, n, m, "reverse_sequence_kernel", {}, {}, stream);
}

Status launch_eye_like(const EyeLikeParams& p, cudaStream_t stream) {
  const EyeMap m{p.cols, p.k};
  return launch_map_copy(p.elem_size, nullptr, p.y, p.rows * p.cols, m, "eye_like_kernel", {}, p.one, stream);
}

Status launch_fill(int elem_size, void* y, int64_t n, ElemBits value, cudaStream_t stream) {
  return launch_map_copy(elem_size, nullptr, y, n, FillMap{}, "fill_kernel", value, {}, stream);
}

Status launch_write_i64(int64_t* y, const std::vector<int64_t>& values, cudaStream_t stream) {
  for (size_t begin = 0; begin < values.size(); begin += 8) {
    I64Values v{};
    v.count = static_cast<int>(std::min<size_t>(8, values.size() - begin));
    for (int k = 0; k < v.count; ++k) v.v[k] = values[begin + static_cast<size_t>(k)];
    write_i64_kernel<<<1, 32, 0, stream>>>(y + begin, v);
    KILN_RETURN_IF_ERROR(last_launch_status("write_i64_kernel"));
  }
  return Status::ok();
}

}  // namespace kiln::cuda
