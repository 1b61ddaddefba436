// Imports every model of the ONNX test suites kiln knows of and fails if any is
// rejected without a reason: a fatal Status for a (valid) suite model, a
// diagnostic with an empty message, or a crash. Unsupported ops are fine; they
// are counted. Folders come from environment variables, else from the CMake
// defaults; a folder that is absent is skipped with a visible message.
//   KILN_LIBONNX_TESTDATA   Debian's libonnx-testdata data folder
//   KILN_ONNX_BACKEND_DATA  the onnx package's backend/test/data
//   KILN_ONNX_NODE_TESTS    the generated node cases (onnx 1.23)
//   KILN_SHARED_MODELS      real exported models (tiny_bert, ...)
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include "onnx/importer.h"

#ifndef KILN_LIBONNX_TESTDATA
#define KILN_LIBONNX_TESTDATA "/usr/share/libonnx-testdata/data"
#endif
#ifndef KILN_ONNX_BACKEND_DATA
#define KILN_ONNX_BACKEND_DATA ""
#endif
#ifndef KILN_ONNX_NODE_TESTS
#define KILN_ONNX_NODE_TESTS "/work/onnx-node-tests"
#endif
#ifndef KILN_SHARED_MODELS
#define KILN_SHARED_MODELS ""
#endif

namespace kiln {
namespace {

namespace fs = std::filesystem;

std::string setting(const char* env, const char* fallback) {
  const char* v = std::getenv(env);
  return v && *v ? v : fallback;
}

struct Suite {
  std::string label;
  fs::path dir;
};

std::vector<Suite> suites() {
  std::string debian = setting("KILN_LIBONNX_TESTDATA", KILN_LIBONNX_TESTDATA);
  std::string backend = setting("KILN_ONNX_BACKEND_DATA", KILN_ONNX_BACKEND_DATA);
  std::vector<Suite> s;
  for (const char* sub : {"node", "pytorch-converted", "pytorch-operator", "simple"})
    s.push_back({fmt::format("libonnx-testdata/{}", sub), fs::path(debian) / sub});
  for (const char* sub : {"pytorch-converted", "pytorch-operator", "simple", "light"})
    s.push_back({fmt::format("onnx backend/{}", sub), backend.empty() ? fs::path() : fs::path(backend) / sub});
  s.push_back({"onnx-node-tests", setting("KILN_ONNX_NODE_TESTS", KILN_ONNX_NODE_TESTS)});
  s.push_back({"shared models", setting("KILN_SHARED_MODELS", KILN_SHARED_MODELS)});
  return s;
}

std::vector<fs::path> models_in(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file() && e.path().extension() == ".onnx") out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

// The model being imported, so that a crash names it.
char g_current[4096];

extern "C" void report_crash(int sig) {
  const char* head = "\nimport_suites: crashed while importing ";
  ssize_t ignored = ::write(2, head, std::strlen(head));
  ignored = ::write(2, g_current, std::strlen(g_current));
  ignored = ::write(2, "\n", 1);
  (void)ignored;
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

struct Counts {
  int models = 0, clean = 0, with_diagnostics = 0, rejected = 0;
  std::map<std::string, int> models_by_reason;  // models with at least one diagnostic of the reason
};

TEST(ImportSuites, EveryModelImportsOrSaysWhyNot) {
  for (int sig : {SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL}) std::signal(sig, report_crash);
  Counts total;
  std::map<std::string, int> invalid_messages;  // "invalid model" diagnostics: suspicious in suite models
  std::map<std::string, int> unsupported_ops;   // op -> models that use it and get it reported
  int folders = 0;
  for (const Suite& suite : suites()) {
    if (suite.dir.empty() || !fs::is_directory(suite.dir)) {
      std::printf("import_suites: SKIP %s: folder '%s' is absent\n", suite.label.c_str(), suite.dir.c_str());
      continue;
    }
    ++folders;
    Counts c;
    for (const fs::path& model : models_in(suite.dir)) {
      std::snprintf(g_current, sizeof g_current, "%s", model.c_str());
      ++c.models;
      auto r = import_onnx_file(model.string());
      if (!r.is_ok()) {
        ++c.rejected;
        ADD_FAILURE() << model << " was rejected: " << r.status().to_string();
        continue;
      }
      if (r->ok()) {
        ++c.clean;
        continue;
      }
      ++c.with_diagnostics;
      std::set<std::string> reasons, ops;
      for (const auto& d : r->diagnostics) {
        EXPECT_FALSE(d.message.empty()) << model << ": a diagnostic without a message: " << format_diagnostic(d);
        reasons.insert(diagnostic_reason_name(d.reason));
        if (d.reason == Diagnostic::Reason::kUnsupportedOp && !d.op_type.empty())
          ops.insert(d.domain.empty() ? d.op_type : d.domain + ":" + d.op_type);
        if (d.reason == Diagnostic::Reason::kInvalidModel)
          invalid_messages[fmt::format("{}: {}", model.parent_path().filename().string(), format_diagnostic(d))]++;
      }
      for (const auto& reason : reasons) c.models_by_reason[reason]++;
      for (const auto& op : ops) unsupported_ops[op]++;
    }
    std::printf("import_suites: %-34s %5d models: %5d clean, %5d with diagnostics, %d rejected\n", suite.label.c_str(),
                c.models, c.clean, c.with_diagnostics, c.rejected);
    total.models += c.models;
    total.clean += c.clean;
    total.with_diagnostics += c.with_diagnostics;
    total.rejected += c.rejected;
    for (const auto& [reason, n] : c.models_by_reason) total.models_by_reason[reason] += n;
  }
  std::printf("import_suites: %-34s %5d models: %5d clean, %5d with diagnostics, %d rejected (%d folders)\n", "TOTAL",
              total.models, total.clean, total.with_diagnostics, total.rejected, folders);
  for (const auto& [reason, n] : total.models_by_reason)
    std::printf("import_suites:   %5d models with '%s' diagnostics\n", n, reason.c_str());
  std::vector<std::pair<int, std::string>> top;
  for (const auto& [op, n] : unsupported_ops) top.push_back({-n, op});
  std::sort(top.begin(), top.end());
  std::string line;
  for (size_t i = 0; i < top.size() && i < 20; ++i) line += fmt::format(" {} ({})", top[i].second, -top[i].first);
  if (!top.empty()) std::printf("import_suites:   most reported unsupported ops:%s\n", line.c_str());
  int shown = 0;
  for (const auto& [message, n] : invalid_messages)
    if (shown++ < 40) std::printf("import_suites:   invalid-model diagnostic: %s\n", message.c_str());
  std::signal(SIGABRT, SIG_DFL);
}

}  // namespace
}  // namespace kiln
