#include "shared_memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "gpu_io.h"
#include "kiln/device.h"

namespace kiln::server {
namespace {

ServeStatus invalid(std::string m) { return ServeStatus::error(ServeError::kInvalidArgument, std::move(m)); }

std::string quoted(const std::string& s) { return "'" + s.substr(0, 200) + "'"; }

}  // namespace

SharedMemoryRegion::SharedMemoryRegion(std::string name, std::string key, uint64_t offset, uint64_t byte_size,
                                       void* map, size_t map_size, uint8_t* base, bool writable, bool pinned)
    : name_(std::move(name)),
      key_(std::move(key)),
      offset_(offset),
      byte_size_(byte_size),
      map_(map),
      map_size_(map_size),
      base_(base),
      writable_(writable),
      pinned_(pinned) {}

SharedMemoryRegion::~SharedMemoryRegion() {
  if (pinned_) unpin_host_memory(map_);
  munmap(map_, map_size_);
}

ServeStatus SharedMemoryRegistry::register_region(const std::string& name, const std::string& key, uint64_t offset,
                                                  uint64_t byte_size) {
  const std::string what = "failed to register shared memory region " + quoted(name) + ": ";
  if (name.empty()) return invalid("failed to register shared memory region: the name is empty");
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (regions_.count(name))
      return ServeStatus::error(ServeError::kAlreadyExists,
                                "shared memory region " + quoted(name) + " is already registered");
  }
  if (key.empty()) return invalid(what + "the key is empty");
  if (byte_size == 0) return invalid(what + "byte_size is 0");
  bool writable = true;
  int fd = shm_open(key.c_str(), O_RDWR, 0);
  if (fd < 0 && errno == EACCES) {
    writable = false;
    fd = shm_open(key.c_str(), O_RDONLY, 0);
  }
  if (fd < 0)
    return invalid(what + "unable to open the shared memory object " + quoted(key) + ": " + std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    return ServeStatus::error(ServeError::kInternal, what + "fstat of " + quoted(key) + ": " + std::strerror(e));
  }
  const auto object_size = static_cast<uint64_t>(st.st_size);
  if (offset > object_size || byte_size > object_size - offset) {
    close(fd);
    return invalid(what + "offset " + std::to_string(offset) + " + byte_size " + std::to_string(byte_size) +
                   " runs past the end of " + quoted(key) + " (" + std::to_string(object_size) + " bytes)");
  }
  // mmap's offset must be a multiple of the page size: map from the page
  // that holds `offset`.
  const auto page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  const uint64_t start = offset / page * page;
  const size_t map_size = static_cast<size_t>(offset - start + byte_size);
  void* map =
      mmap(nullptr, map_size, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, static_cast<off_t>(start));
  int e = errno;
  close(fd);  // the mapping keeps the object
  if (map == MAP_FAILED)
    return ServeStatus::error(ServeError::kInternal, what + "mmap of " + quoted(key) + ": " + std::strerror(e));
  // Page-locked, the region is what a GPU instance copies from, with no
  // staging copy into its own pinned buffer (tens of MB a second for
  // image models); without a GPU, or when the driver declines, it is not.
  const bool pinned = cuda_device_count() > 0 && pin_host_memory(map, map_size, !writable);
  auto region = std::make_shared<SharedMemoryRegion>(name, key, offset, byte_size, map, map_size,
                                                     static_cast<uint8_t*>(map) + (offset - start), writable, pinned);
  std::lock_guard<std::mutex> lock(mutex_);
  // Another registration of the name may have won while this one mapped.
  if (!regions_.emplace(name, std::move(region)).second)
    return ServeStatus::error(ServeError::kAlreadyExists,
                              "shared memory region " + quoted(name) + " is already registered");
  return ServeStatus::success();
}

ServeStatus SharedMemoryRegistry::unregister(const std::string& name) {
  // Unmapping happens as the last holder lets go, off this lock.
  std::map<std::string, std::shared_ptr<SharedMemoryRegion>> gone;
  std::lock_guard<std::mutex> lock(mutex_);
  if (name.empty()) {
    gone.swap(regions_);
    return ServeStatus::success();
  }
  auto it = regions_.find(name);
  if (it != regions_.end()) gone.insert(regions_.extract(it));
  return ServeStatus::success();
}

ServeStatus SharedMemoryRegistry::status(const std::string& name, std::vector<SharedMemoryInfo>& out) const {
  out.clear();
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& [n, r] : regions_)
    if (name.empty() || n == name) out.push_back({r->name(), r->key(), r->offset(), r->byte_size()});
  if (!name.empty() && out.empty())
    return ServeStatus::error(ServeError::kNotFound, "unable to find shared memory region " + quoted(name));
  return ServeStatus::success();
}

ServeStatus SharedMemoryRegistry::window(const std::string& name, uint64_t offset, uint64_t byte_size,
                                         const std::string& what, std::shared_ptr<SharedMemoryRegion>& region) const {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = regions_.find(name);
    if (it == regions_.end()) return invalid(what + ": unable to find shared memory region " + quoted(name));
    region = it->second;
  }
  if (offset > region->byte_size() || byte_size > region->byte_size() - offset)
    return invalid(what + ": shared_memory_offset " + std::to_string(offset) + " + shared_memory_byte_size " +
                   std::to_string(byte_size) + " runs past the end of shared memory region " + quoted(name) + " (" +
                   std::to_string(region->byte_size()) + " bytes)");
  return ServeStatus::success();
}

ServeStatus input_from_shared_memory(const SharedMemoryRegistry& registry, const std::string& region, uint64_t offset,
                                     uint64_t byte_size, uint64_t count, InferTensor& t) {
  const std::string where = "input '" + t.name.substr(0, 100) + "'";
  std::shared_ptr<SharedMemoryRegion> mem;
  ServeStatus st = registry.window(region, offset, byte_size, where, mem);
  if (!st.ok) return st;
  const uint8_t* at = mem->base() + offset;
  if (t.dtype == DType::kString) {
    std::string error;
    if (!deserialize_strings(at, static_cast<size_t>(byte_size), count, &t.strings, error))
      return invalid(where + ": shared memory: " + error);
    return ServeStatus::success();
  }
  const uint64_t need = count * dtype_bytes(t.dtype);
  if (byte_size != need)
    return invalid(where + ": shared_memory_byte_size " + std::to_string(byte_size) +
                   " but the shape and datatype need " + std::to_string(need) + " bytes");
  const bool pinned = mem->pinned();
  t.set_view(at, static_cast<size_t>(byte_size), std::move(mem), pinned);
  return ServeStatus::success();
}

ServeStatus output_target(const SharedMemoryRegistry& registry, const std::string& output, const std::string& region,
                          uint64_t offset, uint64_t byte_size, SharedMemoryOutput& target) {
  const std::string where = "output '" + output.substr(0, 100) + "'";
  ServeStatus st = registry.window(region, offset, byte_size, where, target.mem);
  if (!st.ok) return st;
  if (!target.mem->writable()) return invalid(where + ": shared memory region " + quoted(region) + " is read-only");
  target.name = output;
  target.region = region;
  target.offset = offset;
  target.byte_size = byte_size;
  return ServeStatus::success();
}

ServeStatus output_to_shared_memory(const SharedMemoryOutput& target, const InferTensor& t) {
  const auto bytes = t.bytes();
  if (bytes.size() > target.byte_size)
    return invalid("output '" + t.name.substr(0, 100) + "': shared_memory_byte_size " +
                   std::to_string(target.byte_size) + " is too small for its " + std::to_string(bytes.size()) +
                   " bytes");
  if (!bytes.empty()) std::memcpy(target.mem->base() + target.offset, bytes.data(), bytes.size());
  return ServeStatus::success();
}

}  // namespace kiln::server
