// libFuzzer target: any bytes into the ONNX importer. It must return a Status
// or diagnostics with a message, never crash, hang or allocate without bound.
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "onnx/importer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kiln::ImportOptions options;
  // External data must never reach real files.
  options.external_data_dir = "/nonexistent/kiln-fuzz";
  auto r = kiln::import_onnx_bytes(data, size, options);
  if (!r.is_ok()) {
    if (r.status().message().empty()) {
      std::fprintf(stderr, "import failed with an empty message (code %d)\n", static_cast<int>(r.status().code()));
      std::abort();
    }
    return 0;
  }
  for (const auto& d : r->diagnostics)
    if (d.message.empty()) {
      std::fprintf(stderr, "a diagnostic has an empty message: %s\n", kiln::format_diagnostic(d).c_str());
      std::abort();
    }
  return 0;
}
