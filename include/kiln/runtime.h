// kiln's runtime API: load an engine, create execution contexts, bind
// buffers, run. The runtime library alone (no ONNX importer, no optimizer)
// is enough to run an engine file.
//
//   auto engine = kiln::Runtime::deserialize_file("model.kiln");
//   if (!engine) { report(engine.status()); return; }
//   auto ctx = (*engine)->create_execution_context();
//   ctx->set_input_shape("input_ids", {1, 8});
//   ctx->set_tensor_address("input_ids", ids);        // host memory on "cpu"
//   auto out = ctx->tensor_shape("logits");            // after the inputs' shapes
//   ctx->set_tensor_address("logits", logits_buffer);
//   kiln::Status st = ctx->execute();
//
// Thread safety: an Engine is immutable once loaded; any number of threads
// may query it and create contexts from it at once. An ExecutionContext holds
// the per-run state (shapes, bindings, the selected profile) and is used by
// one thread at a time; several contexts of one engine may run at once on
// different threads. A context keeps its engine alive.
//
// Shapes are std::vector<int64_t>; in an engine's declared shapes -1 marks a
// dynamic dim (the dim's symbol, e.g. "batch", is in tensor_dim_names).
//
// String tensors (DType::kString, "cpu" engines only) bind an array of
// std::string, one per element in row-major order: an input's are read, an
// output's (constructed by the caller, tensor_shape's element count) are
// assigned; an OutputAllocator gives a string output its array through
// reallocate_string_output.
//
// This header is public and self-contained (standard library only).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kiln/dtype.h"
#include "kiln/status.h"

namespace kiln {

enum class TensorIOMode : uint8_t { kNone, kInput, kOutput };

// The allowed shapes of one dynamic input within one optimization profile:
// every dim of a bound shape must lie within [min, max]; `opt` is the shape
// the builder tunes for.
struct ShapeRange {
  std::vector<int64_t> min;
  std::vector<int64_t> opt;
  std::vector<int64_t> max;
};

// Supplies memory for outputs whose size is only known while running (data
// dependent, like NonZero's), or for any output the caller prefers to size
// late. Called on the thread that runs execute().
class OutputAllocator {
 public:
  virtual ~OutputAllocator() = default;
  // Returns memory for `size` bytes (aligned to `alignment`) for output
  // `name` (device memory on "cuda"); `current` is the address bound before
  // (may be null). Returning null fails the run with an error naming the output.
  virtual void* reallocate_output(const std::string& name, void* current, size_t size, size_t alignment) = 0;
  // The output's final dims: on "cpu" after its data is written; on "cuda"
  // once known, while the run is queued (the data is there when the stream
  // reaches that point).
  virtual void notify_shape(const std::string& name, const std::vector<int64_t>& dims) = 0;
  // For a kString output: an array of `count` constructed strings that the
  // run assigns. The default (null) fails the run with an error naming the output.
  virtual std::string* reallocate_string_output(const std::string& name, size_t count) {
    (void)name;
    (void)count;
    return nullptr;
  }
};

// Receives each layer's time of every run while set on a context (see
// ExecutionContext::set_profiler); TensorRT's IProfiler.
class Profiler {
 public:
  virtual ~Profiler() = default;
  // Called once per layer per run, in execution order, on the thread that
  // runs execute(). `layer_name` is Engine::layer_info(k).name; a layer with
  // subgraphs (If, Loop, Scan) reports their time as its own.
  virtual void report_layer_time(const std::string& layer_name, float ms) = 0;
};

// One tensor a layer reads or writes, as the engine declares it.
struct LayerTensor {
  std::string name;
  DType dtype = DType::kUndefined;
  // Per dim: the size as text ("3"), the symbol ("batch") or "?"; empty with
  // has_rank false when the rank is only known at run time.
  std::vector<std::string> dims;
  bool has_rank = true;
  bool constant = false;  // a weight or folded constant
};

// One layer (node) of an engine's top-level graph, in execution order.
struct LayerInfo {
  std::string name;  // unique within the engine
  std::string op_type;
  std::string domain;  // "" for the ONNX domain
  std::vector<LayerTensor> inputs;
  std::vector<LayerTensor> outputs;
  // The precision the builder chose and why ("f16", "f32: not on the 16-bit
  // list"), or the output's dtype where it made no choice.
  std::string precision;
  // The tactic the builder timed fastest ("cudnn:2", "cublaslt:0") and its
  // time in ms; empty when the kernel has one implementation or none was timed.
  std::string tactic;
  float tactic_ms = 0;
  // The model's ops this layer computes, when a pass fused several
  // ("Conv+Add+Relu"); empty for a layer that is one op of the model.
  std::string fused;
  // The data layout of its activations when not the ONNX one ("NHWC").
  std::string layout;
};

// What an engine needs in memory, as the builder planned it (TensorRT's
// engine memory sizes). On "cuda" every intermediate tensor and every layer's
// workspace of a run share one arena per context, placed by lifetime.
struct ProfileMemory {
  uint64_t activation_bytes_opt = 0;  // the arena at the profile's opt shapes
  uint64_t activation_bytes_max = 0;  // at its max shapes: a context's device memory for this profile
  uint64_t workspace_bytes = 0;       // the largest workspace of one layer at max shapes (inside the arena)
  // False when planning stops where it needs values the GPU computes (shape
  // inputs computed on the device, CPU fallback): the runs' later parts take
  // memory from the stream as they go, beyond these figures.
  bool exact = true;
};

struct MemoryReport {
  uint64_t weight_bytes = 0;           // every constant the layers read (on "cuda": once per engine, on the device)
  uint64_t workspace_limit_bytes = 0;  // the build's limit (0: none)
  // Whether the builder planned the activations: "cuda" with every dynamic
  // dim bounded by a profile. The "cpu" backend allocates each layer's
  // outputs as it runs and frees them after their last use.
  bool activations_planned = false;
  std::vector<ProfileMemory> profiles;  // one per optimization profile (one when the engine has none)
};

// "memory: weights 97.5 MiB, activations 38.2 MiB at opt shapes / 60.1 MiB at
// max shapes (one arena per context), workspace 4.0 MiB (largest layer)".
std::string to_string(const MemoryReport& report);

// How an execution context gets its device memory (the activation arena);
// TensorRT's ExecutionContextAllocationStrategy.
enum class AllocationStrategy : uint8_t {
  // At creation, the most any profile needs (Engine::device_memory_size of
  // each): runs then allocate nothing. The default.
  kStatic,
  // When a run finds a newly selected profile (and on the first run): what
  // that profile needs; the previous profile's memory is freed first.
  kOnProfileChange,
  // The caller gives it with set_device_memory before running, sized by
  // Engine::device_memory_size(profile) or update_device_memory_size_for_shapes;
  // the context never allocates its arena.
  kUserManaged,
};

class ExecutionContext;
struct EngineState;  // defined in the runtime library

// A built, immutable plan for one model on one backend.
class Engine : public std::enable_shared_from_this<Engine> {
 public:
  explicit Engine(std::shared_ptr<const EngineState> state);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Graph inputs first, in the model's order, then graph outputs.
  int num_io_tensors() const;
  // Name of I/O tensor `index`; empty when out of range.
  std::string io_tensor_name(int index) const;
  // kNone for a name that is not an I/O tensor.
  TensorIOMode tensor_io_mode(const std::string& name) const;
  // kUndefined for an unknown name.
  DType tensor_dtype(const std::string& name) const;
  // Declared dims, -1 for a dynamic dim. Error for an unknown name.
  Expected<std::vector<int64_t>> tensor_shape(const std::string& name) const;
  // Per dim: the fixed size as text ("3"), the symbol ("batch") or "?".
  Expected<std::vector<std::string>> tensor_dim_names(const std::string& name) const;

  // Optimization profiles the engine was built with; 0 means dynamic dims are
  // unbounded (any size is accepted).
  int num_optimization_profiles() const;
  // The range of a dynamic input in profile `profile`; inputs with only fixed
  // dims report min = opt = max = their shape.
  Expected<ShapeRange> profile_shape(const std::string& input, int profile) const;

  // The layers in execution order; layer_info is an error for an index out
  // of range.
  int num_layers() const;
  Expected<LayerInfo> layer_info(int index) const;

  // "cpu" or "cuda", and the device the engine was built for ("cpu:x86_64").
  std::string backend() const;
  std::string device() const;
  // The kiln version that built the engine.
  std::string kiln_version() const;

  // What the engine needs in memory (see MemoryReport).
  MemoryReport memory_report() const;
  // Device memory (bytes) a context needs to run any shapes of profile
  // `profile`: its activation arena at the profile's max shapes. 0 on "cpu"
  // (it takes no device memory). An error for a profile out of range, or when
  // the builder could not plan it (dynamic dims without a profile: ask the
  // context's update_device_memory_size_for_shapes once shapes are set).
  Expected<size_t> device_memory_size(int profile) const;

  // The engine file's bytes (identical to what was loaded or built).
  std::vector<uint8_t> serialize() const;

  // A new context with profile 0 selected and no shapes or addresses bound,
  // getting its device memory as `strategy` says. Every strategy is accepted
  // on "cpu", where the context allocates host memory as it runs.
  std::unique_ptr<ExecutionContext> create_execution_context(AllocationStrategy strategy = AllocationStrategy::kStatic);

  const EngineState& state() const { return *state_; }

 private:
  std::shared_ptr<const EngineState> state_;
};

// Loads engine files. Loading checks the whole file first and says exactly
// what is wrong: not an engine, another format version, another kiln version,
// another backend or device, truncated, checksum mismatch, bad sections.
class Runtime {
 public:
  // Maps the file read-only; weights are views into the mapping (no copy).
  static Expected<std::shared_ptr<Engine>> deserialize_file(const std::string& path);
  // Copies `size` bytes from `data` (the caller's buffer may be freed after).
  static Expected<std::shared_ptr<Engine>> deserialize(const void* data, size_t size);
};

struct ContextState;  // defined in the runtime library

// Per-run state: the selected profile, input shapes, bound addresses. Not
// thread-safe; use one context per thread.
class ExecutionContext {
 public:
  explicit ExecutionContext(std::shared_ptr<Engine> engine, AllocationStrategy strategy = AllocationStrategy::kStatic);
  ~ExecutionContext();
  ExecutionContext(const ExecutionContext&) = delete;
  ExecutionContext& operator=(const ExecutionContext&) = delete;

  const Engine& engine() const { return *engine_; }

  // Selects the profile whose ranges bound the input shapes (default 0).
  Status set_optimization_profile(int index);
  int optimization_profile() const;

  // Sets an input's dims. Checks the name, the rank, the fixed dims, the
  // selected profile's range, and dims shared by symbol with other inputs,
  // and names the input, the dim and the allowed values when one is wrong.
  Status set_input_shape(const std::string& name, const std::vector<int64_t>& dims);

  // An input's bound dims, or an output's dims inferred from the inputs'
  // shapes (-1 where the size depends on the data: use an OutputAllocator).
  Expected<std::vector<int64_t>> tensor_shape(const std::string& name) const;

  // Binds memory to an I/O tensor: host memory on "cpu", device memory on
  // "cuda". Inputs are only read; outputs must hold tensor_shape's element
  // count.
  Status set_tensor_address(const std::string& name, void* data);
  Status set_input_tensor_address(const std::string& name, const void* data);
  const void* tensor_address(const std::string& name) const;

  // Routes output `name` through `allocator` (not owned; must outlive the runs).
  Status set_output_allocator(const std::string& name, OutputAllocator* allocator);

  // Infers every output's dims from the bound input shapes; an error names
  // each input whose shape is still missing.
  Status infer_shapes();

  // Reports every layer's time to `profiler` (not owned; null stops it) on
  // each later run. Without one, runs pay nothing for profiling.
  void set_profiler(Profiler* profiler);
  Profiler* profiler() const;

  // Runs the engine synchronously. Every input needs a shape (or static dims)
  // and an address; every output an address of the right size or an allocator.
  Status execute();
  // Runs on `stream` (a cudaStream_t on "cuda"; null is the default stream)
  // and returns once the work is queued: no synchronization, unless the engine
  // runs nodes on the host (--allowCpuFallback) or reads shape inputs that the
  // GPU computes. On "cpu" the run finishes before enqueue returns.
  Status enqueue(void* stream);

  // cuda: capture a run as a CUDA graph and replay it while the input shapes
  // and the bound addresses stay the same (trtexec's --useCudaGraph).
  void set_use_cuda_graph(bool on);

  AllocationStrategy allocation_strategy() const;
  // kUserManaged on "cuda": the device memory runs use as their arena, `size`
  // bytes at `memory` (256-byte aligned; the caller keeps it alive and unused
  // by others while runs are queued). An error for another strategy, on
  // "cpu" (it runs in host memory it allocates itself), for null memory, or
  // for a misaligned address. A run whose shapes need more than `size` fails
  // naming both sizes; one with no memory given fails saying how much to give.
  Status set_device_memory(void* memory, size_t size);
  // The device memory a run with the input shapes now set needs (0 on "cpu");
  // an error names each input whose shape is missing.
  Expected<size_t> update_device_memory_size_for_shapes();

 private:
  std::shared_ptr<Engine> engine_;
  std::unique_ptr<ContextState> state_;
};

}  // namespace kiln
