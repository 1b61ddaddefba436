// RNN, GRU and LSTM (recurrent.cuh). Gate order: LSTM i, o, f, c; GRU z, r, h.
#include "backends/cuda/kernels/common.cuh"
#include "backends/cuda/kernels/elementwise_core.cuh"
#include "backends/cuda/kernels/recurrent.cuh"
#include "backends/cuda/kernels/window_common.cuh"

namespace kiln::cuda {
namespace {

constexpr int kThreads = 256;

template <typename Acc>
__device__ Acc activate(const RnnActivation& act, Acc x) {
  using K = RnnActivation::Kind;
  const Acc a = static_cast<Acc>(act.alpha), b = static_cast<Acc>(act.beta);
  switch (act.kind) {
    case K::kRelu: return x > Acc(0) ? x : Acc(0);
    case K::kTanh: return tanh(x);
    case K::kSigmoid: return Acc(1) / (Acc(1) + exp(-x));
    case K::kAffine: return a * x + b;
    case K::kLeakyRelu: return x >= 0 ? x : a * x;
    case K::kThresholdedRelu: return x > a ? x : Acc(0);
    case K::kScaledTanh: return a * tanh(b * x);
    case K::kHardSigmoid: {
      const Acc v = a * x + b;
      return v < Acc(0) ? Acc(0) : (v > Acc(1) ? Acc(1) : v);
    }
    case K::kElu: return x >= 0 ? x : a * (exp(x) - Acc(1));
    case K::kSoftsign: return x / (Acc(1) + fabs(x));
    case K::kSoftplus: return log1p(exp(-fabs(x))) + (x > Acc(0) ? x : Acc(0));
  }
  return x;
}

template <typename T, typename Acc>
__device__ __forceinline__ Acc load(const T* p, int64_t i) {
  return static_cast<Acc>(widen(p[i]));
}

// out[i] = bias[i] + sum_k m[i, k] v[k] for rows [0, rows), the block's
// threads taking one row each (bias null: 0).
template <typename T, typename Acc, typename V>
__device__ void matvec(const T* m, const V* v, int64_t rows, int64_t cols, const T* bias, Acc* out) {
  for (int64_t i = threadIdx.x; i < rows; i += blockDim.x) {
    Acc acc = bias ? load<T, Acc>(bias, i) : Acc(0);
    for (int64_t k = 0; k < cols; ++k) acc += load<T, Acc>(m, i * cols + k) * static_cast<Acc>(widen(v[k]));
    out[i] = acc;
  }
}

template <typename T, typename Acc>
__global__ void recurrent_kernel(RecurrentParams p, Acc* __restrict__ scratch) {
  const int64_t d = blockIdx.x / p.batch, b = blockIdx.x % p.batch;
  const int64_t hsz = p.hidden, gh = p.gates * hsz;
  Acc* xw = scratch + blockIdx.x * (2 * gh + 3 * hsz);
  Acc* hr = xw + gh;
  Acc* h = hr + gh;
  Acc* c = h + hsz;
  Acc* rh = c + hsz;
  const T* w = static_cast<const T*>(p.w) + d * gh * p.input;
  const T* r = static_cast<const T*>(p.r) + d * gh * hsz;
  const T* wb = p.b ? static_cast<const T*>(p.b) + d * 2 * gh : nullptr;
  const T* rb = wb ? wb + gh : nullptr;
  const T* peep = p.p ? static_cast<const T*>(p.p) + d * 3 * hsz : nullptr;
  const RnnActivation* act = p.acts + d * p.per_dir;
  const auto clip = [&](Acc v) {
    if (p.clip <= 0) return v;
    const Acc lim = static_cast<Acc>(p.clip);
    return v < -lim ? -lim : (v > lim ? lim : v);
  };
  const int64_t state = (p.batch_first ? b * p.dirs + d : d * p.batch + b) * hsz;
  for (int64_t k = threadIdx.x; k < hsz; k += blockDim.x) {
    h[k] = p.h0 ? load<T, Acc>(static_cast<const T*>(p.h0), state + k) : Acc(0);
    c[k] = p.c0 ? load<T, Acc>(static_cast<const T*>(p.c0), state + k) : Acc(0);
  }
  int64_t steps = p.seq;
  if (p.lens) {
    steps =
        p.lens_type == DType::kI64 ? static_cast<const int64_t*>(p.lens)[b] : static_cast<const int32_t*>(p.lens)[b];
    steps = steps < 0 ? 0 : (steps > p.seq ? p.seq : steps);
  }
  const bool backward = p.reverse || d == 1;
  __syncthreads();
  for (int64_t n = 0; n < steps; ++n) {
    const int64_t t = backward ? steps - 1 - n : n;
    const int64_t x_at = (p.batch_first ? b * p.seq + t : t * p.batch + b) * p.input;
    matvec<T, Acc>(w, static_cast<const T*>(p.x) + x_at, gh, p.input, wb, xw);
    matvec<T, Acc>(r, h, gh, hsz, rb, hr);
    __syncthreads();
    if (p.cell == RnnCell::kRnn) {
      for (int64_t k = threadIdx.x; k < hsz; k += blockDim.x) h[k] = activate(act[0], clip(xw[k] + hr[k]));
    } else if (p.cell == RnnCell::kGru) {
      // z goes to xw's z block and r to its r block; the default form needs
      // R_h (r * H) in hr's h block instead of R_h H.
      for (int64_t k = threadIdx.x; k < hsz; k += blockDim.x) {
        const Acc z = activate(act[0], clip(xw[k] + hr[k]));
        const Acc rg = activate(act[0], clip(xw[hsz + k] + hr[hsz + k]));
        xw[k] = z;
        xw[hsz + k] = rg;
        rh[k] = rg * h[k];
      }
      if (!p.linear_before_reset) {
        __syncthreads();
        matvec<T, Acc>(r + 2 * hsz * hsz, rh, hsz, hsz, rb ? rb + 2 * hsz : nullptr, hr + 2 * hsz);
      }
      __syncthreads();
      for (int64_t k = threadIdx.x; k < hsz; k += blockDim.x) {
        const Acc z = xw[k], rg = xw[hsz + k];
        const Acc pre =
            p.linear_before_reset ? xw[2 * hsz + k] + rg * hr[2 * hsz + k] : xw[2 * hsz + k] + hr[2 * hsz + k];
        const Acc cand = activate(act[1], clip(pre));
        h[k] = (Acc(1) - z) * cand + z * h[k];
      }
    } else {
      for (int64_t k = threadIdx.x; k < hsz; k += blockDim.x) {
        const Acc pi = peep ? load<T, Acc>(peep, k) : Acc(0), po = peep ? load<T, Acc>(peep, hsz + k) : Acc(0),
                  pf = peep ? load<T, Acc>(peep, 2 * hsz + k) : Acc(0);
        const Acc i = activate(act[0], clip(xw[k] + hr[k] + pi * c[k]));
        const Acc f =
            p.input_forget ? Acc(1) - i : activate(act[0], clip(xw[2 * hsz + k] + hr[2 * hsz + k] + pf * c[k]));
        const Acc cand = activate(act[1], clip(xw[3 * hsz + k] + hr[3 * hsz + k]));
        c[k] = f * c[k] + i * cand;
        const Acc o = activate(act[0], clip(xw[hsz + k] + hr[hsz + k] + po * c[k]));
        h[k] = o * activate(act[2], c[k]);
      }
    }
    if (p.y) {
      const int64_t y_at = (p.batch_first ? (b * p.seq + t) * p.dirs + d : (t * p.dirs + d) * p.batch + b) * hsz;
      for (int64_t k = threadIdx.x; k < hsz; k += blockDim.x) static_cast<T*>(p.y)[y_at + k] = store_as<T>(h[k]);
    }
    __syncthreads();
  }
  for (int64_t k = threadIdx.x; k < hsz; k += blockDim.x) {
    if (p.yh) static_cast<T*>(p.yh)[state + k] = store_as<T>(h[k]);
    if (p.yc) static_cast<T*>(p.yc)[state + k] = store_as<T>(c[k]);
  }
}

template <typename T>
Status launch_as(const RecurrentParams& p, void* workspace, cudaStream_t stream) {
  using Acc = std::conditional_t<std::is_same_v<T, double>, double, float>;
  const int64_t y_elems = p.seq * p.dirs * p.batch * p.hidden;
  if (p.y && y_elems > 0) {  // steps past a row's length stay zero
    KILN_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(p.y, 0, static_cast<size_t>(y_elems) * sizeof(T), stream));
  }
  recurrent_kernel<T, Acc>
      <<<static_cast<unsigned>(p.dirs * p.batch), kThreads, 0, stream>>>(p, static_cast<Acc*>(workspace));
  return last_launch_status("recurrent_kernel");
}

}  // namespace

bool recurrent_dtype_supported(DType t) { return is_compute_float(t); }

size_t recurrent_workspace_bytes(DType dtype, int64_t dirs, int64_t batch, int64_t gates, int64_t hidden) {
  const size_t acc = dtype == DType::kF64 ? sizeof(double) : sizeof(float);
  return static_cast<size_t>(dirs * batch * (2 * gates * hidden + 3 * hidden)) * acc;
}

Status launch_recurrent(const RecurrentParams& p, void* workspace, cudaStream_t stream) {
  if (p.dirs * p.batch == 0 || p.hidden == 0) return Status::ok();
  if (!workspace) return internal_error("recurrent: no workspace");
  KILN_CUDA_DISPATCH_FLOAT64(p.dtype, "RNN/GRU/LSTM", return launch_as<T>(p, workspace, stream));
  return Status::ok();
}

}  // namespace kiln::cuda
