#include "support/file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

namespace kiln {

static Status io_error(const std::string& what, const std::string& path) {
  ErrorCode code = errno == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIoError;
  return make_error(code, "cannot {} '{}': {}", what, path, std::strerror(errno));
}

Expected<FileBytes> map_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return io_error("open", path);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    Status s = io_error("stat", path);
    ::close(fd);
    return s;
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return make_error(ErrorCode::kIoError, "'{}' is not a regular file", path);
  }
  FileBytes out;
  out.size = static_cast<size_t>(st.st_size);
  if (out.size == 0) {
    ::close(fd);
    static const std::byte empty{};
    out.data = &empty;
    return out;
  }
  void* p = ::mmap(nullptr, out.size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) return io_error("map", path);
  size_t size = out.size;
  out.data = static_cast<const std::byte*>(p);
  out.owner = std::shared_ptr<const void>(p, [size](const void* q) { ::munmap(const_cast<void*>(q), size); });
  return out;
}

Expected<std::string> read_file(const std::string& path) {
  KILN_ASSIGN_OR_RETURN(FileBytes bytes, map_file(path));
  return std::string(reinterpret_cast<const char*>(bytes.data), bytes.size);
}

Status write_file(const std::string& path, const void* data, size_t size) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) return io_error("create", path);
  f.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
  f.close();
  if (!f) return io_error("write", path);
  return Status::ok();
}

}  // namespace kiln
