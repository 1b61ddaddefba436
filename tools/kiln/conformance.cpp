// kiln conformance DIR...: runs every ONNX test case folder (model.onnx plus
// test_data_set_*/input_K.pb and output_K.pb) under the given roots and prints
// pass, fail (with the error figures) or unsupported (with the reason) per
// case, then a summary. Cases run in child processes (on cuda several per
// child, to start fewer GPU contexts), so a crash or a hang in one case is
// reported as that case's failure and the cases after it run again elsewhere.
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <regex>
#include <thread>

#include "backends/cpu/cpu_executor.h"
#ifdef KILN_WITH_CUDA
#include "backends/cuda/cuda_executor.h"
#include "backends/cuda/run_plan.h"
#endif
#include "commands.h"
#include "ir/tensor_compare.h"
#include "onnx/importer.h"
#include "onnx/value_file.h"
#include "passes/pass.h"

namespace fs = std::filesystem;

namespace kiln::cli {
namespace {

struct ConformanceOptions {
  std::vector<std::string> roots;
  std::string filter;
  int jobs = 0;
  double timeout_s = 60;
  double rtol = 1e-3;
  double atol = 1e-7;
  double min_pass_percent = 0;
  bool quiet = false;
  std::string backend = "cpu";
  bool allow_cpu_fallback = false;
  // cuda: only ask whether every node has a GPU kernel that takes it (no
  // device needed; a case that passes may still fail on the numbers).
  bool support_only = false;
};

// Runs the case's graph on the chosen backend (cuda: fp32 without TF32, as
// the suites' tolerances expect).
Expected<std::vector<RunValue>> run_on_backend(const Graph& g, std::vector<RunValue> inputs,
                                               const ConformanceOptions& o) {
  if (o.backend == "cpu") return run_graph_on_cpu(g, std::move(inputs));
#ifdef KILN_WITH_CUDA
  if (o.backend == "cuda") {
    cuda::RunOptions options;
    options.allow_tf32 = false;
    options.allow_cpu_fallback = o.allow_cpu_fallback;
    return cuda::run_graph_on_cuda(g, std::move(inputs), options);
  }
#endif
  return unsupported("backend '{}' is not part of this kiln", o.backend);
}

enum class Verdict { kPass, kFail, kUnsupported };

struct CaseResult {
  std::string name;
  Verdict verdict = Verdict::kFail;
  std::string detail;
};

std::vector<fs::path> find_cases(const std::vector<std::string>& roots, const std::string& filter) {
  std::vector<fs::path> cases;
  std::regex re(filter.empty() ? ".*" : filter);
  for (const auto& root : roots) {
    std::error_code ec;
    if (fs::exists(fs::path(root) / "model.onnx")) {
      cases.emplace_back(root);
      continue;
    }
    for (auto it = fs::recursive_directory_iterator(root, ec); it != fs::recursive_directory_iterator();
         it.increment(ec)) {
      if (ec) break;
      if (it->is_directory() && fs::exists(it->path() / "model.onnx") &&
          std::regex_search(it->path().filename().string(), re))
        cases.push_back(it->path());
    }
  }
  std::sort(cases.begin(), cases.end());
  return cases;
}

std::vector<fs::path> numbered_files(const fs::path& dir, const std::string& prefix) {
  std::vector<fs::path> out;
  for (int k = 0;; ++k) {
    fs::path p = dir / fmt::format("{}_{}.pb", prefix, k);
    if (!fs::exists(p)) break;
    out.push_back(p);
  }
  return out;
}

// Runs one case in this process.
CaseResult run_case(const fs::path& dir, const ConformanceOptions& o) {
  CaseResult r;
  r.name = dir.filename().string();
  auto imported = import_onnx_file((dir / "model.onnx").string());
  if (!imported) {
    r.detail = imported.status().to_string();
    r.verdict = imported.status().code() == ErrorCode::kUnsupported ? Verdict::kUnsupported : Verdict::kFail;
    return r;
  }
  if (!imported->ok()) {
    const Diagnostic& d = imported->diagnostics.front();
    r.verdict = d.reason == Diagnostic::Reason::kInvalidModel ? Verdict::kFail : Verdict::kUnsupported;
    r.detail = format_diagnostic(d);
    if (imported->diagnostics.size() > 1) r.detail += fmt::format(" (+{} more)", imported->diagnostics.size() - 1);
    return r;
  }
  // The cases run through the same optimization passes as `kiln build`.
  PassContext passes;
  Status optimized = run_passes(*imported->model.graph, passes, default_pipeline());
  if (!optimized.is_ok()) {
    r.detail = optimized.to_string();
    return r;
  }
  const Graph& g = *imported->model.graph;
  if (o.support_only) {
#ifdef KILN_WITH_CUDA
    Status st = o.backend == "cuda" ? cuda::check_graph_supported(g, false, nullptr)
                                    : unsupported("--supportOnly checks the cuda backend");
#else
    Status st = unsupported("--supportOnly checks the cuda backend, which is not part of this kiln");
#endif
    r.verdict = st.is_ok() ? Verdict::kPass : Verdict::kUnsupported;
    r.detail = st.is_ok() ? "" : st.message();
    return r;
  }
  // A case may carry its own tolerances (tolerance.txt: "rtol atol"); the looser wins.
  double rtol = o.rtol, atol = o.atol;
  if (std::FILE* f = std::fopen((dir / "tolerance.txt").c_str(), "r")) {
    double cr = 0, ca = 0;
    if (std::fscanf(f, "%lf %lf", &cr, &ca) == 2) {
      rtol = std::max(rtol, cr);
      atol = std::max(atol, ca);
    }
    std::fclose(f);
  }
  std::vector<fs::path> sets;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_directory() && e.path().filename().string().rfind("test_data_set_", 0) == 0) sets.push_back(e.path());
  std::sort(sets.begin(), sets.end());
  if (sets.empty()) {
    r.detail = "no test_data_set_* folder";
    return r;
  }
  for (const auto& set : sets) {
    auto in_files = numbered_files(set, "input");
    auto out_files = numbered_files(set, "output");
    std::vector<RunValue> inputs;
    for (size_t k = 0; k < g.inputs.size(); ++k) {
      if (k >= in_files.size()) {
        // An omitted trailing input is an optional one: an empty optional or an error.
        RunValue v;
        v.kind = Type::Kind::kOptional;
        v.present = false;
        if (g.inputs[k]->type.kind != Type::Kind::kOptional) {
          r.detail = fmt::format("{}: no file for graph input {} '{}'", set.filename().string(), k, g.inputs[k]->name);
          return r;
        }
        inputs.push_back(v);
        continue;
      }
      auto v = read_value_file(in_files[k].string(), g.inputs[k]->type);
      if (!v) {
        r.detail = v.status().to_string();
        return r;
      }
      inputs.push_back(std::move(v).value());
    }
    auto outputs = run_on_backend(g, std::move(inputs), o);
    if (!outputs) {
      r.detail = outputs.status().to_string();
      r.verdict = outputs.status().code() == ErrorCode::kUnsupported ? Verdict::kUnsupported : Verdict::kFail;
      return r;
    }
    if (out_files.size() != outputs->size()) {
      r.detail = fmt::format("the model gave {} outputs, the test data has {}", outputs->size(), out_files.size());
      return r;
    }
    for (size_t k = 0; k < out_files.size(); ++k) {
      auto want = read_value_file(out_files[k].string(), g.outputs[k]->type);
      if (!want) {
        r.detail = want.status().to_string();
        return r;
      }
      // The suites' 16-bit references round every intermediate step as the
      // numpy reference does; GPU kernels compute in float and round once, so
      // on cuda 16-bit outputs are held to 16-bit precision (1e-2).
      const bool low_precision =
          want->is_tensor() && (want->tensor.dtype() == DType::kF16 || want->tensor.dtype() == DType::kBF16);
      const double out_rtol = o.backend == "cuda" && low_precision ? std::max(rtol, 1e-2) : rtol;
      CompareResult c = compare_values((*outputs)[k], *want, out_rtol, atol);
      if (!c.ok) {
        r.detail = fmt::format("{}: output {} '{}': {}", set.filename().string(), k, g.outputs[k]->name, c.message);
        return r;
      }
    }
  }
  r.verdict = Verdict::kPass;
  return r;
}

const char* verdict_name(Verdict v) {
  switch (v) {
    case Verdict::kPass: return "PASS";
    case Verdict::kFail: return "FAIL";
    case Verdict::kUnsupported: return "UNSUPPORTED";
  }
  return "?";
}

struct Child {
  pid_t pid;
  int fd;
  std::vector<size_t> batch;                   // case indices, run in order
  size_t reported = 0;                         // how many of them have a result
  std::chrono::steady_clock::time_point last;  // start, or the last result
  std::string out;
};

// Forks a child that runs the cases of `batch` in order and writes one line
// "<verdict>\t<detail>\n" per case to a pipe.
Child spawn(const std::vector<fs::path>& cases, std::vector<size_t> batch, const ConformanceOptions& o) {
  int fds[2];
  if (pipe(fds) != 0) return {-1, -1, std::move(batch), 0, {}, {}};
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    for (size_t index : batch) {
      CaseResult r = run_case(cases[index], o);
      std::string line = fmt::format("{}\t{}", static_cast<int>(r.verdict), r.detail);
      for (char& c : line)
        if (c == '\n') c = ' ';
      line += '\n';
      size_t off = 0;
      while (off < line.size()) {
        ssize_t w = write(fds[1], line.data() + off, line.size() - off);
        if (w <= 0) _exit(1);
        off += static_cast<size_t>(w);
      }
    }
    _exit(0);
  }
  close(fds[1]);
  return {pid, fds[0], std::move(batch), 0, std::chrono::steady_clock::now(), {}};
}

// Takes the complete result lines the child has written so far.
void take_results(Child& c, const std::vector<fs::path>& cases, std::vector<CaseResult>& results,
                  std::vector<size_t>& done) {
  size_t eol;
  while ((eol = c.out.find('\n')) != std::string::npos && c.reported < c.batch.size()) {
    std::string line = c.out.substr(0, eol);
    c.out.erase(0, eol + 1);
    const size_t index = c.batch[c.reported++];
    CaseResult& r = results[index];
    r.name = cases[index].filename().string();
    auto tab = line.find('\t');
    r.verdict = tab == std::string::npos ? Verdict::kFail : static_cast<Verdict>(std::stoi(line.substr(0, tab)));
    r.detail = tab == std::string::npos ? "unreadable result" : line.substr(tab + 1);
    c.last = std::chrono::steady_clock::now();
    done.push_back(index);
  }
}

// Ends a child: the case it was running when it crashed or hung fails; the
// cases after it go back to the queue.
void finish(Child& c, const std::vector<fs::path>& cases, bool timed_out, std::vector<CaseResult>& results,
            std::vector<size_t>& done, std::vector<size_t>& requeue) {
  int status = 0;
  if (timed_out) kill(c.pid, SIGKILL);
  waitpid(c.pid, &status, 0);
  close(c.fd);
  if (c.reported >= c.batch.size()) return;
  const size_t index = c.batch[c.reported];
  CaseResult& r = results[index];
  r.name = cases[index].filename().string();
  r.verdict = Verdict::kFail;
  if (timed_out)
    r.detail = "timed out";
  else if (WIFSIGNALED(status))
    r.detail = fmt::format("crashed ({})", strsignal(WTERMSIG(status)));
  else
    r.detail = "the case's process ended without a result";
  done.push_back(index);
  requeue.insert(requeue.end(), c.batch.begin() + static_cast<long>(c.reported) + 1, c.batch.end());
}

int run_conformance(const ConformanceOptions& o) {
  for (const auto& root : o.roots)
    if (!fs::exists(root)) {
      fmt::print(stderr, "kiln conformance: '{}' does not exist\n", root);
      return kExitUsageError;
    }
  std::vector<fs::path> cases = find_cases(o.roots, o.filter);
  if (cases.empty()) {
    fmt::print(stderr, "kiln conformance: no test cases (folders with model.onnx) under the given roots\n");
    return kExitUsageError;
  }
  size_t jobs = o.jobs > 0 ? static_cast<size_t>(o.jobs) : std::max(1u, std::thread::hardware_concurrency());
  // A GPU context costs far more to start than a case takes: a cuda child
  // runs several cases (a crash still fails only its own case).
  const size_t batch_size = o.backend == "cpu" ? 1 : 16;
  std::vector<CaseResult> results(cases.size());
  std::vector<size_t> queue;
  for (size_t i = cases.size(); i-- > 0;) queue.push_back(i);  // popped from the back: in order
  std::vector<Child> running;
  char buf[4096];
  auto report = [&](const std::vector<size_t>& done) {
    for (size_t index : done) {
      const CaseResult& r = results[index];
      if (!o.quiet || r.verdict != Verdict::kPass)
        fmt::print("{:<12} {}{}{}\n", verdict_name(r.verdict), r.name, r.detail.empty() ? "" : ": ", r.detail);
    }
    std::fflush(stdout);
  };
  while (!queue.empty() || !running.empty()) {
    while (running.size() < jobs && !queue.empty()) {
      // Smaller batches as the queue runs out, so the last ones finish together.
      const size_t n = std::clamp<size_t>(queue.size() / (2 * jobs), 1, batch_size);
      std::vector<size_t> batch;
      for (size_t k = 0; k < n && !queue.empty(); ++k) {
        batch.push_back(queue.back());
        queue.pop_back();
      }
      Child c = spawn(cases, std::move(batch), o);
      if (c.pid < 0) {
        for (size_t index : c.batch)
          results[index] = {cases[index].filename().string(), Verdict::kFail, "cannot start a process"};
        continue;
      }
      running.push_back(std::move(c));
    }
    std::vector<pollfd> pfds;
    for (const Child& c : running) pfds.push_back({c.fd, POLLIN, 0});
    poll(pfds.data(), pfds.size(), 100);
    auto now = std::chrono::steady_clock::now();
    for (size_t k = 0; k < running.size();) {
      Child& c = running[k];
      bool ended = false;
      std::vector<size_t> done, requeue;
      if (pfds[k].revents & (POLLIN | POLLHUP)) {
        ssize_t n = read(c.fd, buf, sizeof(buf));
        if (n > 0)
          c.out.append(buf, static_cast<size_t>(n));
        else
          ended = true;
        take_results(c, cases, results, done);
      }
      const bool timed_out = !ended && std::chrono::duration<double>(now - c.last).count() > o.timeout_s;
      if (ended || timed_out) finish(c, cases, timed_out, results, done, requeue);
      report(done);
      for (size_t index : requeue) queue.push_back(index);
      if (ended || timed_out) {
        pfds.erase(pfds.begin() + static_cast<long>(k));
        running.erase(running.begin() + static_cast<long>(k));
        continue;
      }
      ++k;
    }
  }
  size_t pass = 0, fail = 0, unsup = 0;
  for (const auto& r : results) {
    if (r.verdict == Verdict::kPass)
      ++pass;
    else if (r.verdict == Verdict::kFail)
      ++fail;
    else
      ++unsup;
  }
  double pct = 100.0 * static_cast<double>(pass) / static_cast<double>(results.size());
  std::string roots;
  for (const auto& r : o.roots) roots += (roots.empty() ? "" : " ") + r;
  fmt::print("conformance [{}]: {} cases: {} passed, {} failed, {} unsupported ({:.1f}% passed)\n", roots,
             results.size(), pass, fail, unsup, pct);
  if (pct + 1e-9 < o.min_pass_percent) {
    fmt::print("conformance: {:.1f}% is below the required {:.1f}%\n", pct, o.min_pass_percent);
    return kExitModelError;
  }
  return kExitOk;
}

}  // namespace

void add_conformance_command(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<ConformanceOptions>();
  CLI::App* cmd = app.add_subcommand("conformance", "Run ONNX backend test cases and report pass, fail or unsupported");
  cmd->add_option("roots", o->roots, "Folders holding test case folders (model.onnx + test_data_set_*)")->required();
  cmd->add_option("--filter", o->filter, "Only cases whose folder name matches this regex");
  cmd->add_option("--jobs,-j", o->jobs, "Cases run at once (default: one per core)");
  cmd->add_option("--timeout", o->timeout_s, "Seconds one case may take")->capture_default_str();
  cmd->add_option("--rtol", o->rtol, "Relative tolerance")->capture_default_str();
  cmd->add_option("--atol", o->atol, "Absolute tolerance")->capture_default_str();
  cmd->add_option("--min-pass-percent", o->min_pass_percent, "Exit 1 when fewer cases pass");
  cmd->add_flag("--quiet,-q", o->quiet, "Print only cases that do not pass, and the summary");
  cmd->add_option("--backend", o->backend, "cpu or cuda")->capture_default_str();
  cmd->add_flag("--allowCpuFallback", o->allow_cpu_fallback, "cuda: run nodes without a GPU kernel on the host");
  cmd->add_flag("--supportOnly", o->support_only,
                "cuda: only check that every node has a GPU kernel that takes it (PASS), no device needed")
      ->group("");
  cmd->callback([o, &exit_code] { exit_code = run_conformance(*o); });
}

}  // namespace kiln::cli
