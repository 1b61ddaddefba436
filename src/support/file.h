// Whole-file reads and read-only memory maps, with errors that name the path.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "support/status.h"

namespace kiln {

// A read-only view of a file's bytes, kept alive by `owner` (an mmap or a heap copy).
struct FileBytes {
  const std::byte* data = nullptr;
  size_t size = 0;
  std::shared_ptr<const void> owner;
};

// Maps the whole file read-only (falls back to reading it for empty files).
Expected<FileBytes> map_file(const std::string& path);
Expected<std::string> read_file(const std::string& path);
Status write_file(const std::string& path, const void* data, size_t size);

}  // namespace kiln
