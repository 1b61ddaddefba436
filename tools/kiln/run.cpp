// kiln run MODEL (.onnx or .kiln): runs a model once on given or random
// inputs, prints the outputs, saves them (--save-outputs) and compares them
// with reference outputs (--compare; exit 1 on a mismatch).
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>

#include "build_flags.h"
#include "commands.h"
#include "device_io.h"
#include "ir/tensor_compare.h"
#include "kiln/builder.h"
#include "kiln/runtime.h"
#include "onnx/value_file.h"
#include "run_inputs.h"
#include "runtime/npy.h"

namespace fs = std::filesystem;

namespace kiln::cli {
namespace {

struct RunOptions {
  std::string model;
  std::string load_inputs;
  std::string shapes;
  uint64_t seed = 1;
  int profile = 0;
  std::string save_outputs;
  bool npy = false;
  std::string compare;
  double rtol = 1e-4;
  double atol = 1e-5;
  BuilderFlags build;  // when MODEL is ONNX
};

// Keeps data-dependent outputs (sized only while running) in kiln Tensors.
class TensorAllocator final : public OutputAllocator {
 public:
  explicit TensorAllocator(DType dtype) : dtype_(dtype) {}
  void* reallocate_output(const std::string&, void*, size_t size, size_t) override {
    int64_t n = static_cast<int64_t>(size / std::max<size_t>(1, dtype_storage_bytes(dtype_, 1)));
    tensor_ = Tensor(dtype_, {n});
    return tensor_.mutable_raw();
  }
  void notify_shape(const std::string&, const std::vector<int64_t>& dims) override { tensor_ = tensor_.reshaped(dims); }
  Tensor& tensor() { return tensor_; }

 private:
  DType dtype_;
  Tensor tensor_;
};

int fail(int code, const Status& st) {
  fmt::print(stderr, "kiln run: {}\n", st.to_string());
  return code;
}

Expected<std::shared_ptr<Engine>> load_model(const std::string& path, const BuilderFlags& flags) {
  if (fs::path(path).extension() == ".onnx") {
    KILN_ASSIGN_OR_RETURN(BuildConfig config, build_config_from_flags(flags));
    KILN_ASSIGN_OR_RETURN(auto plan, Builder::build_from_onnx_file(path, config));
    return Runtime::deserialize(plan.data(), plan.size());
  }
  return Runtime::deserialize_file(path);
}

std::string preview(const Tensor& t) {
  std::string s;
  int64_t n = std::min<int64_t>(t.numel(), 6);
  for (int64_t i = 0; i < n; ++i) s += fmt::format("{}{:.6g}", i ? ", " : "", t.element_as_double(i));
  return fmt::format("[{}{}]", s, t.numel() > n ? ", ..." : "");
}

// Binds the inputs: host memory, or device copies through `io` (cuda).
Status bind_inputs(ExecutionContext& ctx, const std::vector<NamedTensor>& inputs, DeviceIo* io) {
  for (const auto& [name, t] : inputs) KILN_RETURN_IF_ERROR(bind_input(ctx, name, t, io));
  return Status::ok();
}

// Runs once; returns the outputs in graph-output order.
Expected<std::vector<NamedTensor>> run_once(ExecutionContext& ctx, DeviceIo* io) {
  const Engine& e = ctx.engine();
  KILN_RETURN_IF_ERROR(ctx.infer_shapes());
  std::vector<NamedTensor> outs;
  std::vector<std::unique_ptr<TensorAllocator>> allocators;
  for (int i = 0; i < e.num_io_tensors(); ++i) {
    std::string name = e.io_tensor_name(i);
    if (e.tensor_io_mode(name) != TensorIOMode::kOutput) continue;
    auto dims = ctx.tensor_shape(name);
    bool known = dims && std::find(dims->begin(), dims->end(), -1) == dims->end();
    allocators.push_back(known || io ? nullptr : std::make_unique<TensorAllocator>(e.tensor_dtype(name)));
    outs.push_back({name, known ? Tensor(e.tensor_dtype(name), *dims) : Tensor()});
  }
  if (io) {
    for (auto& [name, t] : outs) KILN_RETURN_IF_ERROR(io->bind_output(ctx, name, &t));
    KILN_RETURN_IF_ERROR(io->run(ctx, false).status());
    KILN_RETURN_IF_ERROR(io->download_outputs());
    return outs;
  }
  for (size_t k = 0; k < outs.size(); ++k) {
    const std::string& name = outs[k].name;
    if (!allocators[k])
      KILN_RETURN_IF_ERROR(ctx.set_tensor_address(name, host_address(outs[k].tensor)));
    else
      KILN_RETURN_IF_ERROR(ctx.set_output_allocator(name, allocators[k].get()));
  }
  KILN_RETURN_IF_ERROR(ctx.execute());
  for (size_t k = 0; k < outs.size(); ++k)
    if (allocators[k]) outs[k].tensor = allocators[k]->tensor();
  return outs;
}

Status save_outputs(const std::vector<NamedTensor>& outs, const RunOptions& o) {
  std::error_code ec;
  fs::create_directories(o.save_outputs, ec);
  if (ec) return make_error(ErrorCode::kIoError, "cannot create '{}': {}", o.save_outputs, ec.message());
  for (size_t k = 0; k < outs.size(); ++k) {
    fs::path dir(o.save_outputs);
    KILN_RETURN_IF_ERROR(
        write_value_file((dir / fmt::format("output_{}.pb", k)).string(), RunValue::of(outs[k].tensor), outs[k].name));
    if (o.npy) {
      std::string file = outs[k].name;
      for (char& c : file)
        if (c == '/' || c == '\\' || c == ':') c = '_';
      KILN_RETURN_IF_ERROR(write_npy_file((dir / (file + ".npy")).string(), outs[k].tensor));
    }
  }
  return Status::ok();
}

// Prints each output's errors; false when any output mismatches.
Expected<bool> compare_outputs(const std::vector<NamedTensor>& outs, const RunOptions& o) {
  bool all_ok = true;
  for (size_t k = 0; k < outs.size(); ++k) {
    std::string path = (fs::path(o.compare) / fmt::format("output_{}.pb", k)).string();
    if (!fs::exists(path))
      return make_error(ErrorCode::kNotFound, "no reference for output '{}': '{}' is missing", outs[k].name, path);
    KILN_ASSIGN_OR_RETURN(RunValue want, read_value_file(path, Type::tensor(DType::kUndefined, Shape())));
    CompareResult c = compare_tensors(outs[k].tensor, want.tensor, o.rtol, o.atol);
    fmt::print("compare {:<24} max abs error {:.3g}, max rel error {:.3g}: {}{}\n", outs[k].name, c.max_abs_error,
               c.max_rel_error, c.ok ? "OK" : "MISMATCH", c.ok ? "" : " (" + c.message + ")");
    all_ok &= c.ok;
  }
  return all_ok;
}

int run_model(const RunOptions& o) {
  auto engine = load_model(o.model, o.build);
  if (!engine) {
    ErrorCode c = engine.status().code();
    return fail(c == ErrorCode::kNotFound || c == ErrorCode::kIoError ? kExitUsageError : kExitModelError,
                engine.status());
  }
  auto ctx = (*engine)->create_execution_context();
  if (Status st = ctx->set_optimization_profile(o.profile); !st.is_ok()) return fail(kExitUsageError, st);
  Expected<std::vector<NamedTensor>> inputs = std::vector<NamedTensor>{};
  if (!o.load_inputs.empty()) {
    if (!o.shapes.empty())
      return fail(kExitUsageError, invalid_argument("--shapes is for random inputs; --load-inputs gives shapes"));
    inputs = load_inputs(**engine, o.load_inputs);
  } else {
    auto shapes = parse_shape_spec(o.shapes, "--shapes");
    if (!shapes && !o.shapes.empty()) return fail(kExitUsageError, shapes.status());
    inputs = random_inputs(**engine, o.shapes.empty() ? ShapeSpec{} : *shapes, o.profile, o.seed);
  }
  if (!inputs) return fail(kExitUsageError, inputs.status());
  std::unique_ptr<DeviceIo> io;
  if ((*engine)->backend() == "cuda") {
    auto created = DeviceIo::create();
    if (!created) return fail(kExitModelError, created.status());
    io = std::move(created).value();
  }
  if (Status st = bind_inputs(*ctx, *inputs, io.get()); !st.is_ok()) return fail(kExitModelError, st);
  auto outs = run_once(*ctx, io.get());
  if (!outs) return fail(kExitModelError, outs.status());
  for (const auto& [name, t] : *outs)
    fmt::print("output {:<24} {}{} {}\n", name, dtype_name(t.dtype()), Shape::of(t.dims()).to_string(), preview(t));
  if (!o.save_outputs.empty())
    if (Status st = save_outputs(*outs, o); !st.is_ok()) return fail(kExitUsageError, st);
  if (!o.compare.empty()) {
    auto ok = compare_outputs(*outs, o);
    if (!ok) return fail(kExitUsageError, ok.status());
    if (!*ok) {
      fmt::print(stderr, "kiln run: outputs differ from '{}' beyond rtol {} atol {}\n", o.compare, o.rtol, o.atol);
      return kExitModelError;
    }
  }
  return kExitOk;
}

}  // namespace

void add_run_command(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<RunOptions>();
  CLI::App* cmd = app.add_subcommand("run", "Run a model (.onnx or .kiln) once; save or compare its outputs");
  cmd->add_option("model", o->model, "ONNX model or kiln engine file")->required();
  cmd->add_option("--load-inputs,--loadInputs", o->load_inputs,
                  "Folder of input_K.pb (graph-input order), or NAME:FILE,... with FILE .pb or .npy");
  cmd->add_option("--shapes", o->shapes, "Shapes of dynamic inputs for random data: NAME:1x16,...");
  cmd->add_option("--seed", o->seed, "Seed of the random inputs")->capture_default_str();
  cmd->add_option("--profile", o->profile, "Optimization profile to use")->capture_default_str();
  cmd->add_option("--save-outputs", o->save_outputs, "Folder to write output_K.pb into");
  cmd->add_flag("--npy", o->npy, "With --save-outputs, also write NAME.npy per output");
  cmd->add_option("--compare", o->compare, "Folder of reference output_K.pb to compare with");
  cmd->add_option("--rtol", o->rtol, "Relative tolerance of --compare")->capture_default_str();
  add_builder_flags(*cmd, o->build);
  cmd->add_option("--atol", o->atol, "Absolute tolerance of --compare")->capture_default_str();
  cmd->callback([o, &exit_code] { exit_code = run_model(*o); });
}

}  // namespace kiln::cli
