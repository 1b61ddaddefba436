// One thread per element (per byte for packed outputs). The element dtypes
// are runtime switches, uniform across the grid: these kernels are bound by
// memory, and one instantiation covers every combination.
#include "backends/cuda/kernels/common.cuh"
#include "backends/cuda/kernels/quantize.cuh"
#include "backends/cuda/kernels/small_float.cuh"

namespace kiln::cuda {
namespace {

__host__ __device__ inline int element_bits(DType t) {
  switch (t) {
    case DType::kI2:
    case DType::kU2: return 2;
    case DType::kI4:
    case DType::kU4:
    case DType::kF4E2M1: return 4;
    case DType::kI16:
    case DType::kU16:
    case DType::kF16:
    case DType::kBF16: return 16;
    case DType::kI32:
    case DType::kU32:
    case DType::kF32: return 32;
    case DType::kI64:
    case DType::kU64:
    case DType::kF64: return 64;
    default: return 8;
  }
}

__host__ __device__ inline bool signed_int(DType t) {
  return t == DType::kI2 || t == DType::kI4 || t == DType::kI8 || t == DType::kI16 || t == DType::kI32;
}

// Element i of an integer tensor of any width (packed too), widened.
__device__ int64_t read_int(DType t, const void* p, int64_t i) {
  switch (t) {
    case DType::kI8: return static_cast<const int8_t*>(p)[i];
    case DType::kU8: return static_cast<const uint8_t*>(p)[i];
    case DType::kI16: return static_cast<const int16_t*>(p)[i];
    case DType::kU16: return static_cast<const uint16_t*>(p)[i];
    case DType::kI32: return static_cast<const int32_t*>(p)[i];
    case DType::kU32: return static_cast<const uint32_t*>(p)[i];
    default: {
      const int bits = element_bits(t);
      const int64_t code = packed_code(p, bits, i);
      return signed_int(t) && (code >> (bits - 1)) ? code - (int64_t(1) << bits) : code;
    }
  }
}

// Element i of any supported tensor as double (ir/quantize.h's numeric_element).
__device__ double read_number(DType t, const void* p, int64_t i) {
  switch (t) {
    case DType::kF32: return static_cast<const float*>(p)[i];
    case DType::kF16: return __half2float(static_cast<const __half*>(p)[i]);
    case DType::kBF16: return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    case DType::kF64: return static_cast<const double*>(p)[i];
    case DType::kF4E2M1: return small_float_decode(t, uint8_t(packed_code(p, 4, i)));
    default:
      if (is_small_float_dtype(t)) return small_float_decode(t, static_cast<const uint8_t*>(p)[i]);
      return static_cast<double>(read_int(t, p, i));
  }
}

__device__ int64_t scale_index(const ScaleLayout& s, int64_t i) {
  if (s.per_tensor) return 0;
  const int64_t r = i % s.inner, a = (i / s.inner) % s.axis_dim, o = i / (s.inner * s.axis_dim);
  if (s.block == 0) return a;
  return (o * s.scale_blocks + a / s.block) * s.inner + r;
}

// Element i quantized: the integer value, or the narrow float's code.
__device__ int64_t quantize_one(const QuantizeParams& p, int64_t i) {
  const int64_t k = scale_index(p.layout, i);
  float q =
      static_cast<float>(read_number(p.x_type, p.x, i)) / static_cast<float>(read_number(p.scale_type, p.scale, k));
  if (p.precision == DType::kF16) q = __half2float(__float2half_rn(q));
  if (p.precision == DType::kBF16) q = __bfloat162float(__float2bfloat16_rn(q));
  if (is_small_float_dtype(p.y_type)) {
    const float v = q + (p.zero ? static_cast<float>(read_number(p.y_type, p.zero, k)) : 0.f);
    // Quantizing to e8m0 picks the nearest power of two (Cast's default rounds up).
    return small_float_encode(p.y_type, v, p.saturate, E8M0Round::kNearest);
  }
  if (q != q) q = 0;  // the CPU kernel's answer for NaN: the zero point
  double r = static_cast<double>(rintf(q)) + (p.zero ? static_cast<double>(read_int(p.y_type, p.zero, k)) : 0.0);
  const int bits = element_bits(p.y_type);
  const double lo = signed_int(p.y_type) ? -ldexp(1.0, bits - 1) : 0.0;
  const double hi = signed_int(p.y_type) ? ldexp(1.0, bits - 1) - 1 : ldexp(1.0, bits) - 1;
  r = r < lo ? lo : (r > hi ? hi : r);
  return static_cast<int64_t>(r);
}

__global__ void quantize_kernel(QuantizeParams p) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int bits = element_bits(p.y_type);
  if (bits < 8) {
    // A thread per output byte, so no two threads write one byte.
    const int per_byte = 8 / bits;
    const int64_t bytes = (p.n + per_byte - 1) / per_byte;
    for (int64_t b = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; b < bytes; b += stride) {
      uint32_t byte = 0;
      for (int e = 0; e < per_byte && b * per_byte + e < p.n; ++e) {
        const uint32_t code = static_cast<uint32_t>(quantize_one(p, b * per_byte + e)) & ((1u << bits) - 1);
        byte |= code << (e * bits);
      }
      static_cast<uint8_t*>(p.y)[b] = static_cast<uint8_t>(byte);
    }
    return;
  }
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < p.n; i += stride) {
    const int64_t v = quantize_one(p, i);
    switch (bits) {
      case 8: static_cast<uint8_t*>(p.y)[i] = static_cast<uint8_t>(v); break;
      case 16: static_cast<uint16_t*>(p.y)[i] = static_cast<uint16_t>(v); break;
      default: static_cast<uint32_t*>(p.y)[i] = static_cast<uint32_t>(v); break;
    }
  }
}

__global__ void dequantize_kernel(DequantizeParams p) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < p.n; i += stride) {
    const int64_t k = scale_index(p.layout, i);
    const float v = static_cast<float>(read_number(p.x_type, p.x, i)) -
                    (p.zero ? static_cast<float>(read_number(p.x_type, p.zero, k)) : 0.f);
    const float y = v * static_cast<float>(read_number(p.scale_type, p.scale, k));
    switch (p.y_type) {
      case DType::kF16: static_cast<__half*>(p.y)[i] = __float2half_rn(y); break;
      case DType::kBF16: static_cast<__nv_bfloat16*>(p.y)[i] = __float2bfloat16_rn(y); break;
      case DType::kF64: static_cast<double*>(p.y)[i] = y; break;
      default: static_cast<float*>(p.y)[i] = y; break;
    }
  }
}

// One block: the range of x (0 included), then the scale and zero point.
__global__ void dynamic_range_kernel(DType t, const void* x, int64_t n, float* scale, uint8_t* zero) {
  __shared__ float smem[32];
  float lo = 0.f, hi = 0.f;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const float v = static_cast<float>(read_number(t, x, i));
    lo = fminf(lo, v);  // NaN is skipped, as std::min(lo, NaN) keeps lo
    hi = fmaxf(hi, v);
  }
  lo = group_reduce<ReduceKind::kMin>(lo, blockDim.x, smem);
  hi = group_reduce<ReduceKind::kMax>(hi, blockDim.x, smem);
  if (threadIdx.x != 0) return;
  const float s = (hi - lo) / 255.0f;
  float z = s == 0 ? 0.f : rintf(-lo / s);
  z = z < 0.f ? 0.f : (z > 255.f ? 255.f : z);
  *scale = s;
  *zero = static_cast<uint8_t>(z);
}

__global__ void dynamic_quantize_kernel(DType t, const void* x, int64_t n, const float* scale, const uint8_t* zero,
                                        uint8_t* y) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const float s = *scale;
  const float z = *zero;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    float q = s == 0 ? 0.f : rintf(static_cast<float>(read_number(t, x, i)) / s) + z;
    q = q < 0.f ? 0.f : (q > 255.f ? 255.f : q);
    y[i] = static_cast<uint8_t>(q);
  }
}

constexpr int kBlock = 256;

}  // namespace

bool quantized_dtype_supported(DType t) {
  switch (t) {
    case DType::kI2:
    case DType::kU2:
    case DType::kI4:
    case DType::kU4:
    case DType::kI8:
    case DType::kU8:
    case DType::kI16:
    case DType::kU16:
    case DType::kI32:
    case DType::kU32: return true;
    default: return is_small_float_dtype(t);
  }
}

bool real_dtype_supported(DType t) {
  return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16 || t == DType::kF64;
}

Status launch_quantize(const QuantizeParams& p, cudaStream_t stream) {
  if (!quantized_dtype_supported(p.y_type)) return unsupported("QuantizeLinear: output dtype {}", dtype_name(p.y_type));
  if (!real_dtype_supported(p.x_type) && p.x_type != DType::kI32)
    return unsupported("QuantizeLinear: input dtype {}", dtype_name(p.x_type));
  if (!real_dtype_supported(p.scale_type))
    return unsupported("QuantizeLinear: scale dtype {}", dtype_name(p.scale_type));
  if (p.n == 0) return Status::ok();
  const int bits = element_bits(p.y_type);
  const int64_t threads = bits < 8 ? (p.n + 8 / bits - 1) / (8 / bits) : p.n;
  quantize_kernel<<<grid_for(threads, kBlock), kBlock, 0, stream>>>(p);
  return last_launch_status("quantize_kernel");
}

Status launch_dequantize(const DequantizeParams& p, cudaStream_t stream) {
  if (!quantized_dtype_supported(p.x_type))
    return unsupported("DequantizeLinear: input dtype {}", dtype_name(p.x_type));
  if (p.n == 0) return Status::ok();
  dequantize_kernel<<<grid_for(p.n, kBlock), kBlock, 0, stream>>>(p);
  return last_launch_status("dequantize_kernel");
}

Status launch_dynamic_quantize(const DynamicQuantizeParams& p, cudaStream_t stream) {
  if (!real_dtype_supported(p.x_type))
    return unsupported("DynamicQuantizeLinear: input dtype {}", dtype_name(p.x_type));
  auto* scale = static_cast<float*>(p.scale);
  auto* zero = static_cast<uint8_t*>(p.zero);
  dynamic_range_kernel<<<1, 1024, 0, stream>>>(p.x_type, p.x, p.n, scale, zero);
  KILN_RETURN_IF_ERROR(last_launch_status("dynamic_range_kernel"));
  if (p.n == 0) return Status::ok();
  dynamic_quantize_kernel<<<grid_for(p.n, kBlock), kBlock, 0, stream>>>(p.x_type, p.x, p.n, scale, zero,
                                                                        static_cast<uint8_t*>(p.y));
  return last_launch_status("dynamic_quantize_kernel");
}

}  // namespace kiln::cuda
