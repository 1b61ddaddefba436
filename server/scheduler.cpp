#include "scheduler.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <set>
#include <thread>

#include "kiln/device.h"
#include "model_config.h"

namespace kiln::server {
namespace {

// How long an idle instance polls its queue before it sleeps.
constexpr auto kIdleSpin = std::chrono::microseconds(500);

uint64_t ns_between(Clock::time_point a, Clock::time_point b) {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count());
}

std::string dims_text(const std::vector<int64_t>& d) {
  std::string s = "[";
  for (size_t i = 0; i < d.size(); ++i) s += (i ? "," : "") + std::to_string(d[i]);
  return s + "]";
}

int64_t numel(const std::vector<int64_t>& d) {
  int64_t n = 1;
  for (int64_t x : d) n *= x;
  return n;
}

ServeStatus invalid(std::string m) { return ServeStatus::error(ServeError::kInvalidArgument, std::move(m)); }

// The batch range of the engine's profile 0 (the one a context selects) over
// its inputs: [1, max_batch] when the engine has no profile.
std::pair<int64_t, int64_t> profile_batch_range(const Engine& e, int64_t max_batch) {
  int64_t lo = 1, hi = max_batch;
  if (e.num_optimization_profiles() == 0) return {lo, hi};
  for (int i = 0; i < e.num_io_tensors(); ++i) {
    const std::string name = e.io_tensor_name(i);
    if (e.tensor_io_mode(name) != TensorIOMode::kInput) continue;
    auto r = e.profile_shape(name, 0);
    if (!r || r->min.empty() || r->max.empty()) continue;
    lo = std::max(lo, r->min[0]);
    hi = std::min(hi, r->max[0]);
  }
  return {lo, std::max(lo, hi)};
}

// Whether every input of the engine has a dynamic first dim.
bool batch_dim_is_dynamic(const Engine& e) {
  bool any = false;
  for (int i = 0; i < e.num_io_tensors(); ++i) {
    const std::string name = e.io_tensor_name(i);
    if (e.tensor_io_mode(name) != TensorIOMode::kInput) continue;
    auto s = e.tensor_shape(name);
    if (!s || s->empty() || (*s)[0] != -1) return false;
    any = true;
  }
  return any;
}

// One request's input bound for its place in the batch's pinned buffer.
struct CopyPiece {
  uint8_t* to;
  const uint8_t* from;
  size_t bytes;
};

// Copies the pieces, over up to 4 threads when there are megabytes of them:
// a batch of 21 ResNet-50 images is 12.6 MB of f32 to gather into pinned
// memory, milliseconds for one thread while the instance's GPU work waits.
// Below 2 MiB a thread costs more to start than it saves. (Inputs that are
// all in page-locked shared memory skip this: upload_input_pieces.)
void copy_pieces(const std::vector<CopyPiece>& pieces) {
  size_t total = 0;
  for (const CopyPiece& p : pieces) total += p.bytes;
  constexpr size_t kPerThread = size_t{2} << 20;
  const size_t threads = std::min<size_t>({pieces.size(), total / kPerThread, 4});
  auto copy_share = [&pieces, threads](size_t first) {
    for (size_t i = first; i < pieces.size(); i += std::max<size_t>(threads, 1))
      std::memcpy(pieces[i].to, pieces[i].from, pieces[i].bytes);
  };
  std::vector<std::thread> helpers;
  for (size_t t = 1; t < threads; ++t) helpers.emplace_back(copy_share, t);
  copy_share(0);
  for (std::thread& h : helpers) h.join();
}

const InferTensor* find_input(const InferRequest& r, const std::string& name) {
  for (const auto& t : r.inputs)
    if (t.name == name) return &t;
  return nullptr;
}

}  // namespace

std::vector<int64_t> batch_buckets(const BatchBucketsParameter& param, bool gpu, int64_t max_batch,
                                   const std::vector<int64_t>& preferred, int64_t profile_min, int64_t profile_max) {
  using Mode = BatchBucketsParameter::Mode;
  std::vector<int64_t> out;
  if (max_batch <= 0 || param.mode == Mode::kNone || (param.mode == Mode::kAuto && !gpu)) return out;
  if (param.mode == Mode::kList) {
    out = param.sizes;
  } else {
    for (int64_t b = 1; b < max_batch; b *= 2) out.push_back(b);
    out.push_back(max_batch);
    out.insert(out.end(), preferred.begin(), preferred.end());
  }
  for (int64_t& b : out) b = std::clamp(b, profile_min, std::max(profile_min, profile_max));
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

Scheduler::Scheduler(std::shared_ptr<Engine> engine, inference::ModelConfig config, std::shared_ptr<ModelStats> stats,
                     int64_t version)
    : engine_(std::move(engine)), config_(std::move(config)), stats_(std::move(stats)), version_(version) {
  max_batch_ = config_.max_batch_size();
  dynamic_ = config_.has_dynamic_batching() && max_batch_ > 0;
  const auto& db = config_.dynamic_batching();
  preferred_.assign(db.preferred_batch_size().begin(), db.preferred_batch_size().end());
  std::sort(preferred_.begin(), preferred_.end());
  delay_us_ = db.max_queue_delay_microseconds();
  uint32_t levels = std::max<uint32_t>(1, static_cast<uint32_t>(db.priority_levels()));
  default_level_ = db.default_priority_level() ? static_cast<uint32_t>(db.default_priority_level()) : 1;
  auto to_policy = [](const inference::ModelQueuePolicy& q) {
    return Policy{q.default_timeout_microseconds(), q.allow_timeout_override(), q.max_queue_size(),
                  q.timeout_action() == inference::ModelQueuePolicy::REJECT};
  };
  policies_.assign(levels, to_policy(db.default_queue_policy()));
  for (const auto& [level, q] : db.priority_queue_policy())
    if (level >= 1 && level <= levels) policies_[level - 1] = to_policy(q);
  queues_.resize(levels);
  instance_gpus_ = instance_gpus(config_);
  if (instance_gpus_.empty()) instance_gpus_.push_back(-1);
  engine_gpu_ = instance_gpus_[0];
  if (max_batch_ > 0 && batch_dim_is_dynamic(*engine_)) {
    auto param = batch_buckets_from_parameters(config_);  // checked when the config was read
    auto [lo, hi] = profile_batch_range(*engine_, max_batch_);
    if (param) buckets_ = batch_buckets(*param, engine_gpu_ >= 0, max_batch_, preferred_, lo, hi);
    InferRequest probe;
    if (!buckets_.empty()) zero_request(buckets_[0], probe, no_warm_);  // no_warm_: why it cannot be warmed
  }
  for (size_t i = 0; i < instance_gpus_.size(); ++i)
    instances_.emplace_back([this, i] { run_instance(static_cast<int>(i)); });
}

Status Scheduler::ready() {
  std::unique_lock<std::mutex> lock(init_mutex_);
  init_cv_.wait(lock, [&] { return initialized_ == static_cast<int>(instances_.size()); });
  return init_status_;
}

// The engine of GPU `gpu` (the calling thread's device): `engine_` for the
// GPU it was made for, a copy deserialized on this GPU for the others.
Expected<std::shared_ptr<Engine>> Scheduler::engine_for(int gpu) {
  std::lock_guard<std::mutex> lock(init_mutex_);
  if (gpu == engine_gpu_) return engine_;
  auto& e = gpu_engines_[gpu];
  if (!e) {
    std::vector<uint8_t> bytes = engine_->serialize();
    auto loaded = Runtime::deserialize(bytes.data(), bytes.size());
    if (!loaded) return loaded.status();
    e = *loaded;
  }
  return e;
}

Status Scheduler::init_instance(int gpu, std::unique_ptr<ExecutionContext>& ctx, std::unique_ptr<GpuIo>& io) {
  if (gpu < 0) {
    ctx = engine_->create_execution_context();
    return Status::ok();
  }
  Status st = set_cuda_device(gpu);
  if (!st.is_ok()) return st;
  auto engine = engine_for(gpu);
  if (!engine) return engine.status();
  // Triton's optimization.cuda settings apply to GPU instances only, as in
  // Triton's TensorRT backend.
  const auto& cuda = config_.optimization().cuda();
  auto made = GpuIo::create(cuda.busy_wait_events());
  if (!made) return made.status();
  io = std::move(*made);
  ctx = (*engine)->create_execution_context();
  ctx->set_use_cuda_graph(cuda.graphs());
  return Status::ok();
}

Scheduler::~Scheduler() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : instances_) t.join();
}

// Checks names, dtypes, shapes and byte sizes against the config, and works
// out the shapes the engine sees (reshape applied).
ServeStatus Scheduler::check(const InferRequest& r, Pending& p) const {
  std::set<std::string> seen;
  for (const auto& in : r.inputs) {
    if (!seen.insert(in.name).second) return invalid("input '" + in.name + "' is given twice");
    bool known = false;
    for (const auto& ci : config_.input()) known |= ci.name() == in.name;
    if (!known) return invalid("unexpected inference input '" + in.name + "' for model '" + r.model + "'");
  }
  p.engine_dims.clear();
  p.rows = 1;
  for (int k = 0; k < config_.input_size(); ++k) {
    const auto& ci = config_.input(k);
    const InferTensor* in = nullptr;
    for (const auto& t : r.inputs)
      if (t.name == ci.name()) in = &t;
    if (!in) return invalid("expected an input named '" + ci.name() + "' for model '" + r.model + "'");
    DType want = dtype_from_config(ci.data_type());
    if (in->dtype != want)
      return invalid("input '" + ci.name() + "': data type " + triton_dtype_name(in->dtype) +
                     " but the model expects " + triton_dtype_name(want));
    std::vector<int64_t> dims(ci.dims().begin(), ci.dims().end());
    std::vector<int64_t> shape = in->shape;
    int64_t rows = 1;
    if (max_batch_ > 0) {
      if (shape.empty()) return invalid("input '" + ci.name() + "': a batch dim is required (max_batch_size > 0)");
      rows = shape[0];
      if (rows < 1 || rows > max_batch_)
        return invalid("input '" + ci.name() + "': batch size " + std::to_string(rows) + " is outside 1.." +
                       std::to_string(max_batch_));
      shape.erase(shape.begin());
      if (k > 0 && rows != p.rows)
        return invalid("input '" + ci.name() + "': batch size " + std::to_string(rows) +
                       " differs from the other inputs' " + std::to_string(p.rows));
      p.rows = rows;
    }
    bool ok = shape.size() == dims.size();
    for (size_t i = 0; ok && i < dims.size(); ++i) ok = shape[i] >= 0 && (dims[i] == -1 || dims[i] == shape[i]);
    if (!ok)
      return invalid("input '" + ci.name() + "': shape " + dims_text(in->shape) + " does not match the model's " +
                     (max_batch_ > 0 ? "[-1," + dims_text(dims).substr(1) : dims_text(dims)));
    int64_t n = numel(shape) * rows;
    if (want == DType::kString) {
      // Parsed and checked against the shape by the request's maker.
      if (in->strings.size() != static_cast<uint64_t>(n))
        return invalid("input '" + ci.name() + "': shape " + dims_text(in->shape) + " has " + std::to_string(n) +
                       " elements but " + std::to_string(in->strings.size()) + " BYTES elements were given");
    } else if (static_cast<uint64_t>(n) * dtype_bytes(want) != in->bytes().size())
      return invalid("input '" + ci.name() + "': shape " + dims_text(in->shape) + " needs " +
                     std::to_string(n * dtype_bytes(want)) + " bytes but " + std::to_string(in->bytes().size()) +
                     " were given");
    if (ci.has_reshape()) {
      std::vector<int64_t> to(ci.reshape().shape().begin(), ci.reshape().shape().end());
      int64_t known = 1, holes = 0;
      for (int64_t d : to) d < 0 ? ++holes : known *= d;
      for (int64_t& d : to)
        if (d < 0) d = known ? numel(shape) / known : 0;
      if (holes > 1 || numel(to) != numel(shape))
        return invalid("input '" + ci.name() + "': shape " + dims_text(shape) + " cannot be reshaped to " +
                       dims_text(to));
      shape = to;
    }
    if (max_batch_ > 0) shape.insert(shape.begin(), rows);
    p.engine_dims.push_back(std::move(shape));
  }
  for (const auto& name : r.outputs) {
    bool known = false;
    for (const auto& co : config_.output()) known |= co.name() == name;
    if (!known) return invalid("unexpected inference output '" + name + "' for model '" + r.model + "'");
  }
  return ServeStatus::success();
}

void Scheduler::submit(InferRequest request, InferCallback done) {
  Pending p;
  p.enqueued = Clock::now();
  ServeStatus st = check(request, p);
  if (!st.ok) {
    stats_->add_failure(FailReason::kOther, 0);
    done(st, {});
    return;
  }
  uint32_t level = request.priority ? request.priority : default_level_;
  if (level > queues_.size()) level = static_cast<uint32_t>(queues_.size());
  const Policy& policy = policies_[level - 1];
  uint64_t timeout = policy.timeout_us;
  if (request.timeout_us && (policy.allow_override || !timeout)) timeout = request.timeout_us;
  p.deadline =
      timeout && policy.reject_on_timeout ? p.enqueued + std::chrono::microseconds(timeout) : Clock::time_point::max();
  p.request = std::move(request);
  p.done = std::move(done);
  {
    std::unique_lock<std::mutex> lock(mutex_);
    auto& q = queues_[level - 1];
    if (policy.max_queue_size && q.size() >= policy.max_queue_size) {
      lock.unlock();
      stats_->add_failure(FailReason::kRejected, 0);
      p.done(ServeStatus::error(ServeError::kUnavailable, "Exceeds maximum queue size (" +
                                                              std::to_string(policy.max_queue_size) + ") of model '" +
                                                              p.request.model + "'"),
             {});
      return;
    }
    q.push_back(std::move(p));
    ++queued_;
  }
  cv_.notify_one();
}

void Scheduler::wake() {
  // Taking the lock orders this after a waiter's check of the queue.
  { std::lock_guard<std::mutex> lock(mutex_); }
  cv_.notify_all();
}

ServeStatus Scheduler::warmup(const InferRequest& request) {
  std::vector<Pending> batch(1);
  ServeStatus st = check(request, batch[0]);
  if (!st.ok) return st;
  batch[0].request = request;
  std::unique_ptr<ExecutionContext> ctx;
  std::unique_ptr<GpuIo> io;
  Status init = init_instance(instance_gpus_[0], ctx, io);
  if (!init.is_ok()) return ServeStatus::error(ServeError::kInternal, init.to_string());
  std::vector<InferResponse> out;
  uint64_t times[3];
  return execute(*ctx, io.get(), batch, out, times);
}

bool Scheduler::compatible(const Pending& a, const Pending& b) const {
  if (a.engine_dims.size() != b.engine_dims.size()) return false;
  for (size_t i = 0; i < a.engine_dims.size(); ++i)
    if (!std::equal(a.engine_dims[i].begin() + 1, a.engine_dims[i].end(), b.engine_dims[i].begin() + 1,
                    b.engine_dims[i].end()))
      return false;
  return true;
}

int64_t Scheduler::bucket_for(int64_t rows) const {
  auto it = std::lower_bound(buckets_.begin(), buckets_.end(), rows);
  return it == buckets_.end() ? rows : *it;
}

bool Scheduler::zero_request(int64_t rows, InferRequest& r, std::string& why) const {
  r = InferRequest();
  r.model = config_.name();
  for (const auto& ci : config_.input()) {
    InferTensor t;
    t.name = ci.name();
    t.dtype = dtype_from_config(ci.data_type());
    std::vector<int64_t> dims(ci.dims().begin(), ci.dims().end());
    // A dynamic dim: the profile's opt size where the config's dims are the
    // engine's (no reshape). Without one, any size would be a guess that a
    // model may refuse (an image too small for its convolutions).
    std::vector<int64_t> opt;
    if (!ci.has_reshape() && engine_->num_optimization_profiles() > 0)
      if (auto range = engine_->profile_shape(ci.name(), 0)) opt = range->opt;
    const size_t skip = max_batch_ > 0 ? 1 : 0;
    for (size_t i = 0; i < dims.size(); ++i) {
      if (dims[i] >= 0) continue;
      if (opt.size() != dims.size() + skip || opt[i + skip] < 0) {
        why = "input '" + ci.name() + "' has a dynamic dim besides the batch dim, without a profile's opt size";
        return false;
      }
      dims[i] = opt[i + skip];
    }
    if (max_batch_ > 0) dims.insert(dims.begin(), rows);
    t.shape = dims;
    const auto n = static_cast<size_t>(numel(dims));
    if (t.dtype == DType::kString)
      t.strings.assign(n, std::string());
    else
      t.data.assign(n * dtype_bytes(t.dtype), 0);
    r.inputs.push_back(std::move(t));
  }
  return true;
}

Status Scheduler::warm_buckets(ExecutionContext& ctx, GpuIo* io) {
  // Largest first: the instance's buffers and the engine's arena take their
  // final size at once, so what later buckets capture (CUDA graphs record
  // addresses) stays valid. With graphs a second run captures each bucket.
  const int runs = io && config_.optimization().cuda().graphs() ? 2 : 1;
  for (auto b = buckets_.rbegin(); b != buckets_.rend(); ++b) {
    for (int run = 0; run < runs; ++run) {
      std::vector<Pending> batch(1);
      InferRequest r;
      std::string why;
      if (!zero_request(*b, r, why))
        return Status(ErrorCode::kInternal, "warming batch bucket " + std::to_string(*b) + ": " + why);
      ServeStatus st = check(r, batch[0]);
      if (st.ok) {
        batch[0].request = std::move(r);
        std::vector<InferResponse> out;
        uint64_t times[3];
        st = execute(ctx, io, batch, out, times);
      }
      if (!st.ok)
        return Status(ErrorCode::kInvalidArgument, "warming batch bucket " + std::to_string(*b) + ": " + st.message);
    }
  }
  return Status::ok();
}

// How many of the gathered requests (prefix_rows: running row totals) to run.
size_t Scheduler::take_count(const std::vector<int64_t>& prefix, bool delay_passed) const {
  int64_t total = prefix.back();
  if (total >= max_batch_) return prefix.size();
  auto largest_preferred_prefix = [&]() -> size_t {
    for (size_t i = prefix.size(); i-- > 0;)
      if (std::binary_search(preferred_.begin(), preferred_.end(), prefix[i])) return i + 1;
    return 0;
  };
  if (!preferred_.empty() && total >= preferred_.back()) {
    size_t n = largest_preferred_prefix();
    return n ? n : prefix.size();
  }
  if (!delay_passed) return 0;
  size_t n = preferred_.empty() ? 0 : largest_preferred_prefix();
  return n ? n : prefix.size();
}

std::vector<Scheduler::Pending> Scheduler::next_batch(std::vector<Pending>& expired) {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    auto now = Clock::now();
    for (auto& q : queues_)
      for (auto it = q.begin(); it != q.end();) {
        if (it->deadline > now && !it->request.is_cancelled()) {
          ++it;
          continue;
        }
        expired.push_back(std::move(*it));
        it = q.erase(it);
        --queued_;
      }
    if (!expired.empty()) return {};
    if (queued_ == 0) {
      if (stopping_) return {};
      // Poll briefly before sleeping: waking a thread from a condition
      // variable costs tens of microseconds, a tiny model's whole budget,
      // and a client at concurrency 1 sends its next request within it.
      // One instance of the model polls at a time; the others sleep.
      if (!spinning_.exchange(true)) {
        lock.unlock();
        const auto spin_until = Clock::now() + kIdleSpin;
        while (queued_.load(std::memory_order_acquire) == 0 && Clock::now() < spin_until) std::this_thread::yield();
        spinning_.store(false);
        lock.lock();
      }
      if (queued_ == 0 && !stopping_) cv_.wait(lock);
      continue;
    }
    std::deque<Pending>* first = nullptr;
    for (auto& q : queues_)
      if (!q.empty() && !first) first = &q;
    const Pending& front = first->front();
    if (!dynamic_) {
      std::vector<Pending> one;
      one.push_back(std::move(first->front()));
      first->pop_front();
      --queued_;
      return one;
    }
    // Gather compatible requests in priority then arrival order.
    std::vector<std::pair<std::deque<Pending>*, size_t>> picks;
    std::vector<int64_t> prefix;
    int64_t rows = 0;
    for (auto& q : queues_)
      for (size_t i = 0; i < q.size(); ++i) {
        if (rows + q[i].rows > max_batch_ || !compatible(front, q[i])) continue;
        rows += q[i].rows;
        picks.emplace_back(&q, i);
        prefix.push_back(rows);
      }
    auto flush_at = front.enqueued + std::chrono::microseconds(delay_us_);
    size_t n = take_count(prefix, stopping_ || now >= flush_at);
    if (n == 0) {
      cv_.wait_until(lock, flush_at);
      continue;
    }
    picks.resize(n);
    std::vector<Pending> batch;
    for (auto& [q, i] : picks) batch.push_back(std::move((*q)[i]));
    // Erase from the back so earlier indices stay valid.
    for (size_t k = picks.size(); k-- > 0;) picks[k].first->erase(picks[k].first->begin() + picks[k].second);
    queued_ -= n;
    return batch;
  }
}

void Scheduler::run_instance(int index) {
  const int gpu = instance_gpus_[static_cast<size_t>(index)];
  std::unique_ptr<ExecutionContext> ctx;
  std::unique_ptr<GpuIo> io;
  Status init = init_instance(gpu, ctx, io);
  const auto warm_start = Clock::now();
  if (init.is_ok() && !buckets_.empty() && no_warm_.empty()) init = warm_buckets(*ctx, io.get());
  const uint64_t warm_ms = ns_between(warm_start, Clock::now()) / 1'000'000;
  {
    std::lock_guard<std::mutex> lock(init_mutex_);
    if (!init.is_ok() && init_status_.is_ok())
      init_status_ = Status(init.code(), "instance " + std::to_string(index) +
                                             (gpu >= 0 ? " on GPU " + std::to_string(gpu) : std::string()) + ": " +
                                             init.message());
    warm_ms_ = std::max(warm_ms_, warm_ms);
    ++initialized_;
    // instance_gpus_, not instances_: the constructor may still be adding
    // this very thread to instances_.
    if (initialized_ == static_cast<int>(instance_gpus_.size()) && init_status_.is_ok() && !buckets_.empty()) {
      std::string list;
      for (int64_t b : buckets_) list += (list.empty() ? "" : ",") + std::to_string(b);
      if (no_warm_.empty())
        std::fprintf(stderr, "kiln serve: model '%s': warmed batch buckets %s in %llu ms\n", config_.name().c_str(),
                     list.c_str(), static_cast<unsigned long long>(warm_ms_));
      else
        std::fprintf(stderr, "kiln serve: model '%s': batch buckets %s, not warmed: %s\n", config_.name().c_str(),
                     list.c_str(), no_warm_.c_str());
    }
  }
  init_cv_.notify_all();
  if (!init.is_ok()) return;
  for (;;) {
    std::vector<Pending> expired;
    std::vector<Pending> batch = next_batch(expired);
    for (auto& p : expired) {
      uint64_t waited = ns_between(p.enqueued, Clock::now());
      if (p.request.is_cancelled()) {
        stats_->add_failure(FailReason::kCanceled, waited);
        p.done(ServeStatus::error(ServeError::kCancelled, "Request cancelled: the client went away"), {});
      } else {
        stats_->add_failure(FailReason::kRejected, waited);
        p.done(ServeStatus::error(ServeError::kUnavailable, "Request timeout expired"), {});
      }
    }
    if (!expired.empty()) continue;
    if (batch.empty()) return;
    run_batch(*ctx, io.get(), batch);
  }
}

void Scheduler::run_batch(ExecutionContext& ctx, GpuIo* io, std::vector<Pending>& batch) {
  auto start = Clock::now();
  std::vector<InferResponse> responses;
  uint64_t times[3] = {0, 0, 0};
  ServeStatus st = execute(ctx, io, batch, responses, times);
  auto end = Clock::now();
  int64_t rows = 0;
  for (const auto& p : batch) rows += p.rows;
  if (st.ok) {
    stats_->execution_count.fetch_add(1);
    stats_->inference_count.fetch_add(static_cast<uint64_t>(rows));  // real rows, not the padding
    stats_->padded_rows.fetch_add(static_cast<uint64_t>((max_batch_ > 0 ? bucket_for(rows) : rows) - rows));
    stats_->add_batch(static_cast<uint64_t>(rows), times[0], times[1], times[2]);
    stats_->last_inference_ms.store(static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count()));
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    Pending& p = batch[i];
    uint64_t total = ns_between(p.enqueued, end);
    if (st.ok) {
      stats_->success.add(total);
      stats_->queue.add(ns_between(p.enqueued, start));
      stats_->compute_input.add(times[0]);
      stats_->compute_infer.add(times[1]);
      stats_->compute_output.add(times[2]);
      stats_->overhead.add(total > times[1] ? total - times[1] : 0);
      // A raw pointer and a count: small enough for std::function's own
      // storage (no allocation per request); the repository keeps every
      // version's stats for its whole life (stats_for), past any request.
      responses[i].front_end_done = [stats = stats_.get(), total](uint64_t front_end_ns) {
        stats->frontend.add(front_end_ns > total ? front_end_ns - total : 0);
      };
      p.done(st, std::move(responses[i]));
    } else {
      stats_->add_failure(FailReason::kBackend, total);
      p.done(st, {});
    }
  }
}

// Binds every engine output (the engine needs them all; only those the
// config declares are returned), in engine order.
ServeStatus Scheduler::bind_outputs(ExecutionContext& ctx, GpuIo* io, std::vector<BoundOutput>& outs) {
  std::vector<std::string> names;
  for (int i = 0; i < engine_->num_io_tensors(); ++i)
    if (engine_->tensor_io_mode(engine_->io_tensor_name(i)) == TensorIOMode::kOutput)
      names.push_back(engine_->io_tensor_name(i));
  outs.resize(names.size());
  for (size_t k = 0; k < names.size(); ++k) {
    BoundOutput& o = outs[k];
    o.name = names[k];
    auto shape = ctx.tensor_shape(o.name);
    if (!shape) return ServeStatus::error(ServeError::kInternal, shape.status().to_string());
    o.dims = *shape;
    o.dynamic = std::any_of(o.dims.begin(), o.dims.end(), [](int64_t d) { return d < 0; });
    o.is_string = engine_->tensor_dtype(o.name) == DType::kString;
    Status s;
    if (io) {
      size_t bytes = o.dynamic ? 0 : static_cast<size_t>(numel(o.dims)) * dtype_bytes(engine_->tensor_dtype(o.name));
      s = io->bind_output(ctx, k, o.name, bytes, o.dynamic);
    } else if (o.dynamic) {
      s = ctx.set_output_allocator(o.name, &o.alloc);
    } else if (o.is_string) {
      o.strings.assign(static_cast<size_t>(numel(o.dims)), std::string());
      s = ctx.set_tensor_address(o.name, o.strings.data());
    } else {
      o.data.resize(std::max<size_t>(1, numel(o.dims) * dtype_bytes(engine_->tensor_dtype(o.name))));
      s = ctx.set_tensor_address(o.name, o.data.data());
    }
    if (!s.is_ok()) return ServeStatus::error(ServeError::kInternal, s.to_string());
  }
  return ServeStatus::success();
}

// Cuts each output into the requests' row ranges (the batch dim), keeping
// the outputs each request asked for. `rows`: the batch size the engine ran,
// padding included (the rows past the requests' are dropped).
ServeStatus Scheduler::split_outputs(const std::vector<Pending>& batch, int64_t rows, std::vector<BoundOutput>& outs,
                                     std::vector<InferResponse>& out) {
  out.assign(batch.size(), {});
  int64_t row = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    const Pending& p = batch[i];
    InferResponse& r = out[i];
    r.model = p.request.model;
    r.version = version_;
    r.id = p.request.id;
    for (int c = 0; c < config_.output_size(); ++c) {
      const auto& co = config_.output(c);
      auto found = std::find_if(outs.begin(), outs.end(), [&](const BoundOutput& b) { return b.name == co.name(); });
      if (found == outs.end()) continue;
      BoundOutput& o = *found;
      if (!p.request.outputs.empty() &&
          std::find(p.request.outputs.begin(), p.request.outputs.end(), o.name) == p.request.outputs.end())
        continue;
      // A GPU instance's outputs are in its pinned buffers.
      const uint8_t* data = o.host ? o.host : o.dynamic ? o.alloc.data.data() : o.data.data();
      size_t data_size = o.host ? o.host_bytes : o.dynamic ? o.alloc.data.size() : o.data.size();
      const std::vector<std::string>& strings = o.dynamic ? o.alloc.strings : o.strings;
      std::vector<int64_t> dims = o.dynamic ? o.alloc.dims : o.dims;
      // Strings are cut by element and serialized; the rest by byte.
      size_t elem = o.is_string ? 1 : dtype_bytes(engine_->tensor_dtype(o.name));
      InferTensor t;
      t.name = o.name;
      t.dtype = engine_->tensor_dtype(o.name);
      size_t begin = 0, bytes = static_cast<size_t>(numel(dims)) * elem;
      if (max_batch_ > 0) {
        if (dims.empty() || dims[0] != rows)
          return ServeStatus::error(ServeError::kInternal, "output '" + o.name + "' has shape " + dims_text(dims) +
                                                               ", whose first dim is not the batch size " +
                                                               std::to_string(rows));
        size_t row_bytes = bytes / static_cast<size_t>(rows);
        begin = static_cast<size_t>(row) * row_bytes;
        bytes = static_cast<size_t>(p.rows) * row_bytes;
        dims[0] = p.rows;
      }
      if (co.has_reshape()) {
        std::vector<int64_t> d(co.dims().begin(), co.dims().end());
        if (max_batch_ > 0) d.insert(d.begin(), p.rows);
        if (numel(d) == numel(dims)) dims = d;
      }
      t.shape = dims;
      if (begin + bytes > (o.is_string ? strings.size() : data_size))
        return ServeStatus::error(ServeError::kInternal, "output '" + o.name + "' is short");
      if (o.is_string)
        serialize_strings(strings.data() + begin, bytes, t.data);
      else
        t.data.assign(data + begin, data + begin + bytes);
      r.outputs.push_back(std::move(t));
    }
    row += p.rows;
  }
  return ServeStatus::success();
}

// Concatenates the batch's inputs along the batch dim, runs the engine and
// splits each output back into per-request slices. A GPU instance (`io`)
// joins the inputs straight into pinned memory and copies them up, and
// copies the outputs back into pinned memory before they are split.
// With batch buckets the batch runs at bucket_for(rows): the rows past the
// requests' repeat the batch's last row. A copy rather than zeros: it is a
// row the model has just been given, so it is valid input whatever the input
// means (an index or token id that must be in range, a value a Log or a
// division must not see as zero) and whatever its dtype (BYTES too). Rows are
// independent in a batched model, so the padding never changes the real
// rows' outputs, which split_outputs cuts out; the padded rows' are dropped.
ServeStatus Scheduler::execute(ExecutionContext& ctx, GpuIo* io, std::vector<Pending>& batch,
                               std::vector<InferResponse>& out, uint64_t times[3]) {
  auto t0 = Clock::now();
  int64_t rows = 0;
  for (const auto& p : batch) rows += p.rows;
  const int64_t run_rows = max_batch_ > 0 ? bucket_for(rows) : rows;
  const auto pad = static_cast<size_t>(run_rows - rows);
  if (io) {
    Status s = io->begin();
    if (!s.is_ok()) return ServeStatus::error(ServeError::kInternal, s.to_string());
  }
  // Inputs may be copied straight from the requests' shared memory: however
  // this fails, no copy may still read it once the requests are answered (a
  // run that succeeded has waited for its copies already).
  struct Settle {
    GpuIo* io;
    ~Settle() {
      if (io) io->settle();
    }
  } settle{io};
  std::vector<std::vector<uint8_t>> joined(config_.input_size());
  std::vector<std::vector<std::string>> strings(config_.input_size());
  for (int k = 0; k < config_.input_size(); ++k) {
    const std::string& name = config_.input(k).name();
    std::vector<int64_t> dims = batch[0].engine_dims[k];
    if (max_batch_ > 0) dims[0] = run_rows;
    // The last row of the batch, which the padding repeats (check() made
    // sure every request has the input, with `rows` rows).
    const InferTensor* last = find_input(batch.back().request, name);
    if (!last) return invalid("input '" + name + "' is missing");
    const auto last_rows = static_cast<size_t>(batch.back().rows);
    if (io) {
      if (dtype_from_config(config_.input(k).data_type()) == DType::kString)
        return invalid("input '" + name + "': BYTES tensors need a CPU instance");
      // The input's bytes in batch order, then the padding rows (copies of
      // the last row).
      std::vector<HostPiece> sources;
      bool pinned = true;
      for (const auto& p : batch)
        for (const auto& t : p.request.inputs)
          if (t.name == name && !t.bytes().empty()) {
            sources.push_back({t.bytes().data(), t.bytes().size()});
            pinned = pinned && t.bytes_pinned();
          }
      const auto last_bytes = last->bytes();
      const size_t row_bytes = pad ? last_bytes.size() / last_rows : 0;
      for (size_t j = 0; j < pad && row_bytes > 0; ++j)
        sources.push_back({last_bytes.data() + last_bytes.size() - row_bytes, row_bytes});
      Status s = ctx.set_input_shape(name, dims);
      if (s.is_ok() && pinned) {
        // All in page-locked shared memory: straight to the device.
        s = io->upload_input_pieces(ctx, static_cast<size_t>(k), name, sources);
      } else if (s.is_ok()) {
        size_t bytes = 0;
        for (const HostPiece& src : sources) bytes += src.bytes;
        auto host = io->input_host(static_cast<size_t>(k), bytes);
        if (!host) return ServeStatus::error(ServeError::kInternal, host.status().to_string());
        auto* at = static_cast<uint8_t*>(*host);
        std::vector<CopyPiece> pieces;
        for (const HostPiece& src : sources) {
          pieces.push_back({at, static_cast<const uint8_t*>(src.from), src.bytes});
          at += src.bytes;
        }
        copy_pieces(pieces);
        s = io->upload_input(ctx, static_cast<size_t>(k), name, bytes);
      }
      if (!s.is_ok()) return invalid("input '" + name + "': " + s.message());
      continue;
    }
    const void* addr = nullptr;
    if (dtype_from_config(config_.input(k).data_type()) == DType::kString) {
      // Parsed at the front end; a batch's elements follow one another.
      if (batch.size() == 1 && pad == 0) {
        addr = last->strings.data();
      } else {
        auto& all = strings[k];
        for (const auto& p : batch)
          for (const auto& t : p.request.inputs)
            if (t.name == name) all.insert(all.end(), t.strings.begin(), t.strings.end());
        const size_t row = pad ? last->strings.size() / last_rows : 0;
        for (size_t j = 0; j < pad; ++j) all.insert(all.end(), last->strings.end() - row, last->strings.end());
        addr = all.data();
      }
    } else if (batch.size() == 1 && pad == 0 && reinterpret_cast<uintptr_t>(last->bytes().data()) % 16 == 0) {
      // A view (shared memory at the client's offset) may be unaligned for
      // the CPU kernels: such an input is copied like a batch's.
      addr = last->bytes().data();
    } else {
      auto& all = joined[k];
      for (const auto& p : batch)
        for (const auto& t : p.request.inputs)
          if (t.name == name) all.insert(all.end(), t.bytes().begin(), t.bytes().end());
      const auto last_bytes = last->bytes();
      const size_t row = pad ? last_bytes.size() / last_rows : 0;
      all.reserve(all.size() + pad * row);
      for (size_t j = 0; j < pad; ++j) all.insert(all.end(), last_bytes.end() - row, last_bytes.end());
      addr = all.data();
    }
    Status s = ctx.set_input_shape(name, dims);
    if (s.is_ok()) s = ctx.set_input_tensor_address(name, addr);
    if (!s.is_ok()) return invalid("input '" + name + "': " + s.message());
  }
  std::vector<BoundOutput> outs;
  ServeStatus bound = bind_outputs(ctx, io, outs);
  if (!bound.ok) return bound;
  auto t1 = Clock::now();
  float device_ms[3] = {0, 0, 0};
  Status s = io ? io->run(ctx, outs.size(), device_ms) : ctx.execute();
  auto t2 = Clock::now();
  if (!s.is_ok()) return ServeStatus::error(ServeError::kInternal, "running the model: " + s.to_string());
  if (io)
    for (size_t k = 0; k < outs.size(); ++k) {
      outs[k].host = static_cast<const uint8_t*>(io->output_host(k));
      outs[k].host_bytes = io->output_bytes(k);
      if (outs[k].dynamic) outs[k].alloc.dims = io->output_dims(k);
    }
  ServeStatus split = split_outputs(batch, run_rows, outs, out);
  if (!split.ok) return split;
  auto t3 = Clock::now();
  if (io) {
    // The device times split the run: copies in, compute, copies out; the
    // host's joining and splitting go to input and output.
    const uint64_t total = ns_between(t0, t3);
    const auto ns = [](float ms) { return static_cast<uint64_t>(static_cast<double>(ms) * 1e6); };
    times[0] = std::min(total, ns_between(t0, t1) + ns(device_ms[0]));
    times[1] = std::min(total - times[0], ns(device_ms[1]));
    times[2] = total - times[0] - times[1];
    settle.io = nullptr;
    return ServeStatus::success();
  }
  times[0] = ns_between(t0, t1);
  times[1] = ns_between(t1, t2);
  times[2] = ns_between(t2, t3);
  return ServeStatus::success();
}

}  // namespace kiln::server
