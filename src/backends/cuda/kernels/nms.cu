#include <cub/device/device_segmented_sort.cuh>

#include "backends/cuda/kernels/common.cuh"
#include "backends/cuda/kernels/nms.cuh"
#include "backends/cuda/kernels/reduce_common.cuh"

namespace kiln::cuda {
namespace {

struct Corners {
  double y1, x1, y2, x2;
};

// Box i of batch b as corners with y1 <= y2 and x1 <= x2.
__device__ Corners corners_of(const NmsParams& p, int64_t b, int64_t i) {
  const int64_t at = (b * p.spatial + i) * 4;
  const double v0 = load_as_double(p.boxes, p.boxes_dtype, at), v1 = load_as_double(p.boxes, p.boxes_dtype, at + 1),
               v2 = load_as_double(p.boxes, p.boxes_dtype, at + 2), v3 = load_as_double(p.boxes, p.boxes_dtype, at + 3);
  if (p.center_point_box) return {v1 - v3 / 2, v0 - v2 / 2, v1 + v3 / 2, v0 + v2 / 2};
  return {fmin(v0, v2), fmin(v1, v3), fmax(v0, v2), fmax(v1, v3)};
}

// Whether kept box a suppresses box b: IoU above the threshold.
__device__ bool suppresses(const Corners& a, const Corners& b, double threshold) {
  const double ih = fmin(a.y2, b.y2) - fmax(a.y1, b.y1), iw = fmin(a.x2, b.x2) - fmax(a.x1, b.x1);
  if (ih <= 0 || iw <= 0) return false;
  const double inter = ih * iw;
  const double area_a = (a.y2 - a.y1) * (a.x2 - a.x1), area_b = (b.y2 - b.y1) * (b.x2 - b.x1);
  const double uni = area_a + area_b - inter;
  if (area_a <= 0 || area_b <= 0 || uni <= 0) return false;
  return inter / uni > threshold;
}

struct NmsScratch {
  double *keys_in, *keys_out;
  int32_t *idx_in, *idx_out, *kept;
  int64_t *offsets, *counts, *base;
  void* temp;
  size_t temp_bytes, total;
};

Expected<NmsScratch> nms_scratch(const NmsParams& p, void* base) {
  const int64_t pairs = p.batches * p.classes, items = pairs * p.spatial;
  size_t temp_bytes = 0;
  KILN_CUDA_RETURN_IF_ERROR((cub::DeviceSegmentedSort::StableSortPairsDescending<double, int32_t>(
      nullptr, temp_bytes, static_cast<const double*>(nullptr), static_cast<double*>(nullptr),
      static_cast<const int32_t*>(nullptr), static_cast<int32_t*>(nullptr), items, pairs,
      static_cast<int64_t*>(nullptr), static_cast<int64_t*>(nullptr))));
  ScratchCarver carve(base);
  NmsScratch s;
  s.keys_in = static_cast<double*>(carve.take(size_t(items) * 8));
  s.keys_out = static_cast<double*>(carve.take(size_t(items) * 8));
  s.idx_in = static_cast<int32_t*>(carve.take(size_t(items) * 4));
  s.idx_out = static_cast<int32_t*>(carve.take(size_t(items) * 4));
  s.kept = static_cast<int32_t*>(carve.take(size_t(pairs * nms_per_pair(p)) * 4));
  s.offsets = static_cast<int64_t*>(carve.take(size_t(pairs + 1) * 8));
  s.counts = static_cast<int64_t*>(carve.take(size_t(pairs) * 8));
  s.base = static_cast<int64_t*>(carve.take(size_t(pairs) * 8));
  s.temp = carve.take(temp_bytes);
  s.temp_bytes = temp_bytes;
  s.total = carve.total();
  return s;
}

// Keys (scores as double) and box indices per (batch, class) pair.
__global__ void nms_prepare_kernel(NmsParams p, double* __restrict__ keys, int32_t* __restrict__ idx,
                                   int64_t* __restrict__ offsets) {
  const int64_t pairs = p.batches * p.classes, items = pairs * p.spatial;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; t < items; t += stride) {
    keys[t] = load_as_double(p.scores, p.scores_dtype, t);  // scores are [batches, classes, spatial]: t itself
    idx[t] = static_cast<int32_t>(t % p.spatial);
  }
  for (int64_t s = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; s <= pairs; s += stride) offsets[s] = s * p.spatial;
}

// One block per pair: the greedy pass over its boxes in score order. Every
// thread walks the same candidates (count is uniform); the kept boxes are
// checked in parallel.
__global__ void nms_select_kernel(NmsParams p, int64_t limit, const double* __restrict__ keys,
                                  const int32_t* __restrict__ idx, int32_t* __restrict__ kept,
                                  int64_t* __restrict__ counts) {
  const int64_t pair = blockIdx.x, b = pair / p.classes;
  int32_t* mine = kept + pair * limit;
  int64_t count = 0;
  for (int64_t r = 0; r < p.spatial && count < limit; ++r) {
    const int64_t at = pair * p.spatial + r;
    if (p.has_score_threshold && !(keys[at] > p.score_threshold)) break;  // the rest score lower still
    const int32_t i = idx[at];
    const Corners box = corners_of(p, b, i);
    bool drop = false;
    for (int64_t k = threadIdx.x; k < count && !drop; k += blockDim.x)
      drop = suppresses(corners_of(p, b, mine[k]), box, p.iou_threshold);
    if (__syncthreads_or(drop)) continue;
    if (threadIdx.x == 0) mine[count] = i;
    ++count;
    __syncthreads();  // the new kept box is visible to the block
  }
  if (threadIdx.x == 0) counts[pair] = count;
}

// Serial exclusive sum of the pairs' counts (pairs are few) and the dims.
__global__ void nms_offsets_kernel(const int64_t* __restrict__ counts, int64_t pairs, int64_t* __restrict__ base,
                                   int64_t* __restrict__ out_dims) {
  int64_t total = 0;
  for (int64_t s = 0; s < pairs; ++s) {
    base[s] = total;
    total += counts[s];
  }
  out_dims[0] = total;
  out_dims[1] = 3;
}

__global__ void nms_write_kernel(NmsParams p, int64_t limit, const int32_t* __restrict__ kept,
                                 const int64_t* __restrict__ counts, const int64_t* __restrict__ base) {
  const int64_t pair = blockIdx.x;
  for (int64_t k = threadIdx.x; k < counts[pair]; k += blockDim.x) {
    int64_t* row = p.y + (base[pair] + k) * 3;
    row[0] = pair / p.classes;
    row[1] = pair % p.classes;
    row[2] = kept[pair * limit + k];
  }
}

__global__ void nms_empty_dims_kernel(int64_t* __restrict__ out_dims) {
  out_dims[0] = 0;
  out_dims[1] = 3;
}

}  // namespace

size_t nms_workspace_bytes(const NmsParams& p) {
  auto s = nms_scratch(p, nullptr);
  return s ? s->total : 0;
}

Status launch_nms(const NmsParams& p, cudaStream_t stream) {
  const int64_t pairs = p.batches * p.classes, items = pairs * p.spatial;
  if (p.spatial > INT32_MAX)
    return unsupported("NonMaxSuppression: {} boxes (the CUDA kernel takes up to 2^31)", p.spatial);
  if (pairs > INT32_MAX) return unsupported("NonMaxSuppression: {} (batch, class) pairs", pairs);
  if (items == 0 || nms_per_pair(p) == 0) {
    nms_empty_dims_kernel<<<1, 1, 0, stream>>>(p.out_dims);
    return last_launch_status("nms_empty_dims_kernel");
  }
  KILN_ASSIGN_OR_RETURN(NmsScratch s, nms_scratch(p, p.workspace));
  if (!p.workspace || p.workspace_bytes < s.total)
    return invalid_argument("NonMaxSuppression: workspace of {} bytes, {} needed", p.workspace_bytes, s.total);
  constexpr int kBlock = 256;
  nms_prepare_kernel<<<grid_for(items, kBlock), kBlock, 0, stream>>>(p, s.keys_in, s.idx_in, s.offsets);
  KILN_RETURN_IF_ERROR(last_launch_status("nms_prepare_kernel"));
  size_t temp_bytes = s.temp_bytes;
  KILN_CUDA_RETURN_IF_ERROR(cub::DeviceSegmentedSort::StableSortPairsDescending(
      s.temp, temp_bytes, s.keys_in, s.keys_out, s.idx_in, s.idx_out, items, pairs, s.offsets, s.offsets + 1, stream));
  const auto blocks = static_cast<unsigned>(pairs);
  nms_select_kernel<<<blocks, 128, 0, stream>>>(p, nms_per_pair(p), s.keys_out, s.idx_out, s.kept, s.counts);
  KILN_RETURN_IF_ERROR(last_launch_status("nms_select_kernel"));
  nms_offsets_kernel<<<1, 1, 0, stream>>>(s.counts, pairs, s.base, p.out_dims);
  KILN_RETURN_IF_ERROR(last_launch_status("nms_offsets_kernel"));
  nms_write_kernel<<<blocks, 128, 0, stream>>>(p, nms_per_pair(p), s.kept, s.counts, s.base);
  return last_launch_status("nms_write_kernel");
}

}  // namespace kiln::cuda
