// kiln bench MODEL (.onnx or .kiln): trtexec's equivalent. Builds or loads an
// engine, warms up, times runs on fresh seeded random inputs for at least
// --iterations and at least --duration, and prints trtexec's "Performance
// summary" (throughput, latency percentiles, compute time apart from
// copies), a per-layer profile (--dumpProfile) and JSON exports. With
// --streams=N (cuda), N execution contexts run at once, each on its own stream
// and thread, and the summary covers all their runs (aggregate throughput).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "bench_report.h"
#include "bench_timer.h"
#include "build_flags.h"
#include "build_progress.h"
#include "commands.h"
#include "device_io.h"
#include "engine/engine_file.h"
#include "kiln/builder.h"
#include "kiln/runtime.h"
#include "run_inputs.h"
#include "support/file.h"
#include "support/parallel.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace kiln::cli {
namespace {

struct BenchOptions {
  std::string model;
  std::string onnx;
  std::string load_engine;
  std::string save_engine;
  BuilderFlags build;
  std::string shapes;
  std::string load_inputs;
  uint64_t seed = 1;
  int profile = 0;
  double warmup_ms = 200;
  int iterations = 10;
  double duration_s = 3;
  std::string percentiles = "90,95,99";
  bool no_data_transfers = false;
  bool use_cuda_graph = false;
  int streams = 1;
  bool dump_profile = false;
  bool separate_profile_run = false;
  std::string export_times, export_profile, export_layer_info;
};

int fail(int code, const Status& st) {
  fmt::print(stderr, "kiln bench: {}\n", st.to_string());
  return code;
}

int code_for(const Status& st) {
  switch (st.code()) {
    case ErrorCode::kNotFound:
    case ErrorCode::kIoError:
    case ErrorCode::kInvalidArgument: return kExitUsageError;
    default: return kExitModelError;
  }
}

// An engine starts with "KILN"; anything else is taken for ONNX.
bool is_onnx(const std::string& path) {
  if (fs::path(path).extension() == ".onnx") return true;
  char magic[4] = {};
  std::ifstream f(path, std::ios::binary);
  return f && f.read(magic, 4) && std::memcmp(magic, "KILN", 4) != 0;
}

// --shapes alone (no --minShapes...) fixes the profile to those shapes when
// building, as trtexec does.
Expected<std::shared_ptr<Engine>> build_engine(const BenchOptions& o, const std::string& onnx) {
  BuilderFlags flags = o.build;
  if (!flags.has_profiles() && !o.shapes.empty()) flags.opt_shapes.push_back(o.shapes);
  KILN_ASSIGN_OR_RETURN(BuildConfig config, build_config_from_flags(flags));
  fmt::print("Building {} for backend {}{}{}...\n", onnx, config.backend, config.fp16 ? " (fp16 allowed)" : "",
             config.bf16 ? " (bf16 allowed)" : "");
  auto start = Clock::now();
  Expected<std::vector<uint8_t>> plan = std::vector<uint8_t>{};
  {
    ProgressLine progress;
    config.progress = &progress;
    plan = Builder::build_from_onnx_file(onnx, config);
  }
  if (!plan) return plan.status();
  fmt::print("Built in {:.0f} ms ({} bytes)\n", std::chrono::duration<double, std::milli>(Clock::now() - start).count(),
             plan->size());
  if (!o.save_engine.empty()) {
    KILN_RETURN_IF_ERROR(write_file(o.save_engine, plan->data(), plan->size()));
    fmt::print("Saved the engine to {}\n", o.save_engine);
  }
  return Runtime::deserialize(plan->data(), plan->size());
}

Expected<std::shared_ptr<Engine>> obtain_engine(const BenchOptions& o, std::string& source) {
  int given = !o.model.empty() + !o.onnx.empty() + !o.load_engine.empty();
  if (given != 1) return invalid_argument("give exactly one of MODEL, --onnx and --loadEngine");
  if (!o.onnx.empty() || (!o.model.empty() && is_onnx(o.model))) {
    source = o.onnx.empty() ? o.model : o.onnx;
    return build_engine(o, source);
  }
  source = o.load_engine.empty() ? o.model : o.load_engine;
  if (!o.save_engine.empty()) return invalid_argument("--saveEngine needs an ONNX model to build");
  KILN_ASSIGN_OR_RETURN(auto engine, Runtime::deserialize_file(source));
  fmt::print("Loaded engine {} (backend {}, device {}, kiln {})\n", source, engine->backend(), engine->device(),
             engine->kiln_version());
  return engine;
}

// Keeps an output of data-dependent size in one growing buffer across runs.
class GrowingBuffer final : public OutputAllocator {
 public:
  void* reallocate_output(const std::string&, void*, size_t size, size_t) override {
    if (size > bytes_.size()) bytes_.resize(size);
    return bytes_.data();
  }
  void notify_shape(const std::string&, const std::vector<int64_t>&) override {}

 private:
  std::vector<std::byte> bytes_;
};

// Inputs, output buffers and allocators, bound once for every run.
struct Bindings {
  std::vector<NamedTensor> inputs;
  std::deque<Tensor> outputs;  // a deque: bound addresses stay put as it grows
  std::vector<std::unique_ptr<GrowingBuffer>> allocators;
  long long batch = 0;
};

// Random inputs give an unbounded dynamic dim (no --shapes, no profile) the
// size 1, which rarely is the shape worth timing: say so.
void warn_unset_dynamic_dims(const Engine& e, const ShapeSpec& spec) {
  if (e.num_optimization_profiles() > 0) return;
  for (int i = 0; i < e.num_io_tensors(); ++i) {
    std::string name = e.io_tensor_name(i);
    auto dims = e.tensor_shape(name);
    if (e.tensor_io_mode(name) != TensorIOMode::kInput || find_shape(spec, name) || !dims) continue;
    if (std::find(dims->begin(), dims->end(), -1) != dims->end())
      fmt::print("Note: input '{}' has dynamic dims and no --shapes: they are set to 1\n", name);
  }
}

// The inputs to time: --load-inputs' files, or random ones (--shapes). What
// fails here is the command line or a file (exit 2, as kiln run).
Expected<std::vector<NamedTensor>> bench_inputs(const Engine& e, const BenchOptions& o) {
  if (!o.load_inputs.empty()) return load_inputs(e, o.load_inputs);
  ShapeSpec spec;
  if (!o.shapes.empty()) {
    KILN_ASSIGN_OR_RETURN(spec, parse_shape_spec(o.shapes, "--shapes"));
  }
  auto inputs = random_inputs(e, spec, o.profile, o.seed);
  if (inputs) warn_unset_dynamic_dims(e, spec);
  return inputs;
}

// Binds `inputs` and the outputs: host memory, or device copies through `io`
// (cuda). What fails here is the data against the engine (exit 1, as kiln
// run: a dtype or shape the engine does not take).
Expected<Bindings> bind(ExecutionContext& ctx, std::vector<NamedTensor> inputs, DeviceIo* io) {
  const Engine& e = ctx.engine();
  Bindings b;
  b.inputs = std::move(inputs);
  for (const auto& [name, t] : b.inputs) {
    KILN_RETURN_IF_ERROR(bind_input(ctx, name, t, io));
    fmt::print("Input {}: {}{}\n", name, dtype_name(t.dtype()), Shape::of(t.dims()).to_string());
  }
  // The batch is the first input's leading dim when the engine leaves it dynamic.
  if (!b.inputs.empty()) {
    auto declared = e.tensor_shape(b.inputs[0].name);
    if (declared && declared->size() >= 2 && (*declared)[0] < 0) b.batch = b.inputs[0].tensor.dims()[0];
  }
  KILN_RETURN_IF_ERROR(ctx.infer_shapes());
  for (int i = 0; i < e.num_io_tensors(); ++i) {
    std::string name = e.io_tensor_name(i);
    if (e.tensor_io_mode(name) != TensorIOMode::kOutput) continue;
    auto dims = ctx.tensor_shape(name);
    const bool known = dims && std::find(dims->begin(), dims->end(), -1) == dims->end();
    if (io) {
      b.outputs.push_back(known ? Tensor(e.tensor_dtype(name), *dims) : Tensor());
      KILN_RETURN_IF_ERROR(io->bind_output(ctx, name, &b.outputs.back()));
    } else if (known) {
      b.outputs.emplace_back(e.tensor_dtype(name), *dims);
      KILN_RETURN_IF_ERROR(ctx.set_tensor_address(name, host_address(b.outputs.back())));
    } else {
      b.allocators.push_back(std::make_unique<GrowingBuffer>());
      KILN_RETURN_IF_ERROR(ctx.set_output_allocator(name, b.allocators.back().get()));
    }
  }
  return b;
}

class TableProfiler final : public Profiler {
 public:
  void report_layer_time(const std::string& name, float ms) override { table.add(name, ms); }
  LayerTimeTable table;
};

// Runs until both at least `iterations` runs and `duration_s` have passed
// (trtexec's rule), keeping each iteration's times.
// One iteration on the GPU through `io`: copies (unless --noDataTransfers),
// compute, and their CUDA-event times.
Status device_iteration(ExecutionContext& ctx, DeviceIo& io, bool copies, Iteration& it) {
  KILN_ASSIGN_OR_RETURN(DeviceTimes t, io.run(ctx, copies));
  it.h2d_ms = t.h2d_ms;
  it.compute_ms = t.compute_ms;
  it.d2h_ms = t.d2h_ms;
  it.enqueue_ms = t.enqueue_ms;
  return Status::ok();
}

Expected<std::vector<Iteration>> timed_runs(ExecutionContext& ctx, IterationTimer* timer, DeviceIo* io, bool copies,
                                            int iterations, double duration_s,
                                            Clock::time_point origin = Clock::now()) {
  std::vector<Iteration> out;
  auto ms_since = [&](Clock::time_point t) { return std::chrono::duration<double, std::milli>(t - origin).count(); };
  while (static_cast<int>(out.size()) < iterations || ms_since(Clock::now()) < duration_s * 1000) {
    Iteration it;
    auto start = Clock::now();
    if (io) {
      KILN_RETURN_IF_ERROR(device_iteration(ctx, *io, copies, it));
    } else {
      timer->record_start(nullptr);
      Status st = ctx.enqueue(nullptr);
      it.enqueue_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
      timer->record_end(nullptr);
      if (!st.is_ok()) return st;
      it.compute_ms = timer->elapsed_ms();
    }
    auto end = Clock::now();
    it.start_ms = ms_since(start);
    it.end_ms = ms_since(end);
    it.latency_ms = it.end_ms - it.start_ms;
    out.push_back(it);
  }
  return out;
}

Status warm_up(ExecutionContext& ctx, DeviceIo* io, bool copies, double warmup_ms) {
  auto start = Clock::now();
  int runs = 0;
  // At least one run, so a plan (and a CUDA graph) exists before timing.
  while (runs == 0 || std::chrono::duration<double, std::milli>(Clock::now() - start).count() < warmup_ms) {
    if (io) {
      Iteration it;
      KILN_RETURN_IF_ERROR(device_iteration(ctx, *io, copies, it));
    } else {
      KILN_RETURN_IF_ERROR(ctx.enqueue(nullptr));
    }
    ++runs;
  }
  fmt::print("Warmed up: {} run{} in {:.0f} ms\n", runs, runs == 1 ? "" : "s",
             std::chrono::duration<double, std::milli>(Clock::now() - start).count());
  return Status::ok();
}

// The device line, for the backend of the engine being timed (a loaded
// engine's own, whatever --backend says).
void print_device(const std::string& backend) {
  if (backend == "cpu") {
    bool cuda = current_device("cuda").is_ok();
    fmt::print("Device: CPU backend, {} threads{}\n", parallel_threads(),
               cuda ? "" : " (no CUDA backend or GPU here: running on the CPU)");
  } else {
    auto device = current_device(backend);
    fmt::print("Device: backend {}, {}\n", backend, device ? *device : device.status().message());
  }
}

// One more context of --streams: its own stream (DeviceIo), bindings and thread.
struct StreamRunner {
  std::unique_ptr<ExecutionContext> ctx;
  std::unique_ptr<DeviceIo> io;
  Bindings bindings;
  Expected<std::vector<Iteration>> result = std::vector<Iteration>{};
};

Expected<std::unique_ptr<StreamRunner>> make_stream_runner(Engine& engine, const BenchOptions& o,
                                                           const std::vector<NamedTensor>& inputs) {
  auto r = std::make_unique<StreamRunner>();
  KILN_ASSIGN_OR_RETURN(r->io, DeviceIo::create());
  r->ctx = engine.create_execution_context();
  r->ctx->set_use_cuda_graph(o.use_cuda_graph);
  KILN_RETURN_IF_ERROR(r->ctx->set_optimization_profile(o.profile));
  KILN_ASSIGN_OR_RETURN(r->bindings, bind(*r->ctx, inputs, r->io.get()));
  return r;
}

// Times the first context and `others` at once, one thread each, and merges
// their iterations on one clock: the summary's throughput is then the sum.
Expected<std::vector<Iteration>> timed_runs_on_streams(ExecutionContext& ctx, DeviceIo& io, bool copies,
                                                       std::vector<std::unique_ptr<StreamRunner>>& others,
                                                       const BenchOptions& o) {
  const auto origin = Clock::now();
  std::vector<std::thread> threads;
  for (auto& r : others)
    threads.emplace_back([&, runner = r.get()] {
      runner->result = timed_runs(*runner->ctx, nullptr, runner->io.get(), copies, o.iterations, o.duration_s, origin);
    });
  auto first = timed_runs(ctx, nullptr, &io, copies, o.iterations, o.duration_s, origin);
  for (auto& t : threads) t.join();
  if (!first) return first.status();
  std::vector<Iteration> all = std::move(first).value();
  for (auto& r : others) {
    if (!r->result) return r->result.status();
    all.insert(all.end(), r->result->begin(), r->result->end());
  }
  std::sort(all.begin(), all.end(), [](const Iteration& a, const Iteration& b) { return a.start_ms < b.start_ms; });
  return all;
}

int run_bench(const BenchOptions& o) {
  std::vector<double> percentiles = parse_percentiles(o.percentiles);
  if (percentiles.empty())
    return fail(kExitUsageError,
                invalid_argument("--percentile '{}': expected values in [0, 100] like 90,95,99", o.percentiles));
  if (o.iterations < 0 || o.duration_s < 0 || o.warmup_ms < 0)
    return fail(kExitUsageError, invalid_argument("--iterations, --duration and --warmUp must be >= 0"));
  if (o.streams < 1) return fail(kExitUsageError, invalid_argument("--streams {}: give 1 or more", o.streams));
  if (o.streams > 1 && (o.dump_profile || !o.export_profile.empty()))
    return fail(kExitUsageError, invalid_argument("--streams: per-layer profiles time one context; use --streams=1"));
  fmt::print("=== kiln bench (kiln {}) ===\n", KILN_VERSION);
  std::string source;
  auto engine = obtain_engine(o, source);
  if (!engine) return fail(code_for(engine.status()), engine.status());
  const std::string backend = (*engine)->backend();
  print_device(backend);
  auto timer = make_iteration_timer(backend);
  std::unique_ptr<DeviceIo> io;
  if (backend == "cuda") {
    auto created = DeviceIo::create();
    if (!created) return fail(kExitModelError, created.status());
    io = std::move(created).value();
  } else if (!timer) {
    return fail(kExitModelError, unsupported("kiln bench cannot time backend '{}'", backend));
  }
  const bool copies = backend != "cpu" && !o.no_data_transfers;
  if (o.no_data_transfers && backend == "cpu")
    fmt::print("--noDataTransfers: the CPU backend runs on host memory; there are no copies to leave out\n");
  auto ctx = (*engine)->create_execution_context();
  if (o.use_cuda_graph) {
    if (backend != "cuda") fmt::print("--useCudaGraph: only the cuda backend runs CUDA graphs; ignored\n");
    ctx->set_use_cuda_graph(true);
  }
  if (Status st = ctx->set_optimization_profile(o.profile); !st.is_ok()) return fail(kExitUsageError, st);
  auto inputs = bench_inputs(**engine, o);
  if (!inputs) return fail(kExitUsageError, inputs.status());
  auto bindings = bind(*ctx, *inputs, io.get());
  if (!bindings) return fail(kExitModelError, bindings.status());
  if (!o.export_layer_info.empty())
    if (Status st = export_layer_info(o.export_layer_info, **engine); !st.is_ok()) return fail(kExitUsageError, st);
  if (Status st = warm_up(*ctx, io.get(), copies, o.warmup_ms); !st.is_ok()) return fail(kExitModelError, st);
  std::vector<std::unique_ptr<StreamRunner>> others;
  if (o.streams > 1 && backend != "cuda")
    fmt::print("--streams: the {} backend runs one context at a time here; timing one\n", backend);
  for (int k = 1; k < o.streams && backend == "cuda"; ++k) {
    auto r = make_stream_runner(**engine, o, *inputs);
    if (!r) return fail(code_for(r.status()), r.status());
    if (Status st = warm_up(*(*r)->ctx, (*r)->io.get(), copies, o.warmup_ms); !st.is_ok())
      return fail(kExitModelError, st);
    others.push_back(std::move(r).value());
  }
  if (!others.empty())
    fmt::print("Streams: {} execution contexts, each on its own stream and thread\n", others.size() + 1);

  bool profiling = o.dump_profile || !o.export_profile.empty();
  TableProfiler profiler;
  if (profiling && !o.separate_profile_run) ctx->set_profiler(&profiler);
  fmt::print("Timing: at least {} iterations and at least {:g} s{}\n", o.iterations, o.duration_s,
             ctx->profiler() ? " (profiler attached: per-layer timing adds a little to each run)" : "");
  auto iterations = others.empty() ? timed_runs(*ctx, timer.get(), io.get(), copies, o.iterations, o.duration_s)
                                   : timed_runs_on_streams(*ctx, *io, copies, others, o);
  if (!iterations) return fail(kExitModelError, iterations.status());
  if (profiling && o.separate_profile_run) {
    ctx->set_profiler(&profiler);
    if (auto runs = timed_runs(*ctx, timer.get(), io.get(), copies, o.iterations, o.duration_s); !runs)
      return fail(kExitModelError, runs.status());
  }
  ctx->set_profiler(nullptr);

  BenchRun run;
  run.model = source;
  run.backend = backend;
  run.host_device_copies = copies;
  run.iterations = std::move(iterations).value();
  double last_end = 0;  // with --streams the last to start need not end last
  for (const Iteration& it : run.iterations) last_end = std::max(last_end, it.end_ms);
  run.walltime_ms = run.iterations.empty() ? 0 : last_end - run.iterations.front().start_ms;
  run.batch = bindings->batch;
  run.percentiles = percentiles;
  print_performance_summary(run);
  if (o.dump_profile) print_layer_profile(profiler.table, **engine);
  if (!o.export_times.empty())
    if (Status st = export_times(o.export_times, run); !st.is_ok()) return fail(kExitUsageError, st);
  if (!o.export_profile.empty())
    if (Status st = export_profile(o.export_profile, profiler.table, **engine); !st.is_ok())
      return fail(kExitUsageError, st);
  fmt::print("{}\n", summary_line(run));
  return kExitOk;
}

}  // namespace

void add_bench_command(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<BenchOptions>();
  CLI::App* cmd = app.add_subcommand("bench", "Benchmark a model (.onnx or .kiln): throughput, latency, layer times");
  cmd->add_option("model", o->model, "ONNX model or kiln engine file");
  cmd->add_option("--onnx", o->onnx, "ONNX model to build (instead of MODEL)");
  cmd->add_option("--loadEngine", o->load_engine, "Engine file to load (instead of MODEL)");
  cmd->add_option("--saveEngine", o->save_engine, "Write the engine built from the ONNX model here");
  add_builder_flags(*cmd, o->build);
  cmd->add_option("--shapes", o->shapes, "Run-time shapes of dynamic inputs: NAME:1x16,...");
  cmd->add_option("--loadInputs,--load-inputs", o->load_inputs, "Input data instead of random (as kiln run)");
  cmd->add_option("--seed", o->seed, "Seed of the random inputs")->capture_default_str();
  cmd->add_option("--profile", o->profile, "Optimization profile to use")->capture_default_str();
  cmd->add_option("--warmUp", o->warmup_ms, "Warm up for this many ms before timing")->capture_default_str();
  cmd->add_option("--iterations", o->iterations, "Run at least this many timed iterations")->capture_default_str();
  cmd->add_option("--duration", o->duration_s, "Run the timed iterations for at least this many seconds")
      ->capture_default_str();
  cmd->add_option("--percentile", o->percentiles, "Latency percentiles to report")->capture_default_str();
  cmd->add_flag("--noDataTransfers", o->no_data_transfers, "Leave host-device copies out of the timed runs");
  cmd->add_flag("--useCudaGraph", o->use_cuda_graph, "cuda: capture the run as a CUDA graph and replay it");
  cmd->add_option("--streams", o->streams,
                  "cuda: run this many execution contexts at once, each on its own stream (aggregate throughput)")
      ->capture_default_str();
  cmd->add_flag("--dumpProfile", o->dump_profile, "Print per-layer times");
  cmd->add_flag("--separateProfileRun", o->separate_profile_run,
                "Profile layers in a second run, keeping the profiler out of the timed runs");
  cmd->add_option("--exportTimes", o->export_times, "Write every iteration's times to this JSON file");
  cmd->add_option("--exportProfile", o->export_profile, "Write per-layer times to this JSON file");
  cmd->add_option("--exportLayerInfo", o->export_layer_info, "Write the layers, ops, shapes and dtypes as JSON");
  cmd->callback([o, &exit_code] { exit_code = run_bench(*o); });
}

}  // namespace kiln::cli
