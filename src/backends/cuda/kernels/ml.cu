// Binarizer is elementwise; ArrayFeatureExtractor is an index map (one
// thread per output element); LabelEncoder binary-searches the keys of its
// chunk, which travel as a kernel argument (one launch per chunk).
#include "backends/cuda/kernels/index_map.cuh"
#include "backends/cuda/kernels/ml.cuh"

namespace kiln::cuda {
namespace {

constexpr int kBlock = 256;

template <typename T>
__global__ void binarizer_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t n, double threshold) {
  const T one = store_c<T>(compute_of<T>(1)), zero = store_c<T>(compute_of<T>(0));
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    y[i] = to_double(x[i]) > threshold ? one : zero;
}

// Output element i = (row, k) reads x[row, indices[k]].
struct FeatureMap {
  const void* indices;
  bool idx64;
  int64_t num_indices, features;
  __device__ int64_t operator()(int64_t i) const {
    const int64_t row = i / num_indices, idx = load_index(indices, idx64, i % num_indices);
    return idx >= 0 && idx < features ? row * features + idx : kFill;
  }
};

// The index of the key equal to v (not NaN) among `count` sorted keys, or -1.
__device__ __forceinline__ int find_key(const double* keys, int count, double v) {
  int lo = 0, hi = count;
  while (lo < hi) {
    const int mid = (lo + hi) / 2;
    if (keys[mid] < v)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < count && keys[lo] == v ? lo : -1;
}

// The chunk stays in the constant bank (__grid_constant__: no per-thread
// copy); each block copies its keys and values to shared memory, where the
// threads' searches diverge freely.
template <typename T, typename E>
__global__ void label_encoder_kernel(const T* __restrict__ x, E* __restrict__ y, int64_t n,
                                     const __grid_constant__ LabelChunk c) {
  __shared__ double keys[kLabelChunk];
  __shared__ E values[kLabelChunk];
  for (int k = threadIdx.x; k < c.count; k += blockDim.x) {
    keys[k] = c.keys[k];
    values[k] = static_cast<E>(c.values[k]);
  }
  __syncthreads();
  const E fallback = static_cast<E>(c.fallback), nan_value = static_cast<E>(c.has_nan ? c.nan_value : c.fallback);
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const double v = to_double(x[i]);
    if (v != v) {
      if (c.first) y[i] = nan_value;
      continue;
    }
    const int k = find_key(keys, c.count, v);
    if (k >= 0)
      y[i] = values[k];
    else if (c.first)
      y[i] = fallback;
  }
}

}  // namespace

Status launch_binarizer(const BinarizerParams& p, cudaStream_t stream) {
  if (p.n <= 0) return Status::ok();
  KILN_CUDA_DISPATCH_NUMERIC(p.dtype, "Binarizer", {
    binarizer_kernel<T><<<grid_for(p.n, kBlock), kBlock, 0, stream>>>(static_cast<const T*>(p.x), static_cast<T*>(p.y),
                                                                      p.n, p.threshold);
  });
  return last_launch_status("binarizer_kernel");
}

Status launch_array_feature_extractor(const ArrayFeatureExtractorParams& p, cudaStream_t stream) {
  const int64_t n = p.rows * p.num_indices;
  if (n <= 0) return Status::ok();
  const FeatureMap map{p.indices, p.idx64, p.num_indices, p.features};
  return launch_map_copy(p.elem_size, p.x, p.y, n, map, "array_feature_extractor", {}, {}, stream);
}

Status launch_label_encoder(const LabelEncoderParams& p, const LabelChunk& chunk, cudaStream_t stream) {
  static_assert(sizeof(LabelChunk) + 64 <= 4096, "a LabelEncoder launch's arguments must fit in 4 KiB");
  if (p.n <= 0) return Status::ok();
  if (chunk.count < 0 || chunk.count > kLabelChunk)
    return invalid_argument("LabelEncoder: a chunk of {} keys (at most {})", chunk.count, kLabelChunk);
  const unsigned grid = grid_for(p.n, kBlock);
  switch (p.value_size) {
    case 1:
    case 2:
    case 4:
    case 8: break;
    default: return unsupported("LabelEncoder: values of {} bytes", p.value_size);
  }
  KILN_CUDA_DISPATCH_NUMERIC(p.x_dtype, "LabelEncoder", {
    const T* x = static_cast<const T*>(p.x);
    switch (p.value_size) {
      case 1:
        label_encoder_kernel<T, uint8_t><<<grid, kBlock, 0, stream>>>(x, static_cast<uint8_t*>(p.y), p.n, chunk);
        break;
      case 2:
        label_encoder_kernel<T, uint16_t><<<grid, kBlock, 0, stream>>>(x, static_cast<uint16_t*>(p.y), p.n, chunk);
        break;
      case 4:
        label_encoder_kernel<T, uint32_t><<<grid, kBlock, 0, stream>>>(x, static_cast<uint32_t*>(p.y), p.n, chunk);
        break;
      default:
        label_encoder_kernel<T, uint64_t><<<grid, kBlock, 0, stream>>>(x, static_cast<uint64_t*>(p.y), p.n, chunk);
        break;
    }
  });
  return last_launch_status("label_encoder_kernel");
}

}  // namespace kiln::cuda
