// Triton's system shared memory extension: the registry of POSIX shared
// memory regions that clients register by name (shm_open key, offset,
// byte_size), and the windows into them that infer requests name instead of
// carrying tensor bytes. A region stays mapped while anything holds its
// shared_ptr (an in-flight request's input view or output target), even once
// unregistered.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "inference.h"

namespace kiln::server {

// One registered region: [offset, offset + byte_size) of the object `key`,
// mapped read-write where the object allows it, read-only otherwise.
class SharedMemoryRegion {
 public:
  SharedMemoryRegion(std::string name, std::string key, uint64_t offset, uint64_t byte_size, void* map, size_t map_size,
                     uint8_t* base, bool writable, bool pinned);
  ~SharedMemoryRegion();
  SharedMemoryRegion(const SharedMemoryRegion&) = delete;
  SharedMemoryRegion& operator=(const SharedMemoryRegion&) = delete;

  const std::string& name() const { return name_; }
  const std::string& key() const { return key_; }
  uint64_t offset() const { return offset_; }
  uint64_t byte_size() const { return byte_size_; }
  bool writable() const { return writable_; }
  // Page-locked for the GPU (registered with CUDA while mapped).
  bool pinned() const { return pinned_; }
  // The region's first byte (the object's byte `offset`).
  uint8_t* base() const { return base_; }

 private:
  std::string name_, key_;
  uint64_t offset_, byte_size_;
  void* map_;
  size_t map_size_;
  uint8_t* base_;
  bool writable_;
  bool pinned_;
};

// What status reports of a region.
struct SharedMemoryInfo {
  std::string name, key;
  uint64_t offset = 0, byte_size = 0;
};

// An output a request asked to be written into a region.
struct SharedMemoryOutput {
  std::string name;  // the output tensor
  std::string region;
  uint64_t offset = 0, byte_size = 0;
  std::shared_ptr<SharedMemoryRegion> mem;
};

class SharedMemoryRegistry {
 public:
  // Maps [offset, offset + byte_size) of the object `key`. Errors: the name
  // is taken (kAlreadyExists), the key names no object, the window is empty
  // or runs past the object's end (kInvalidArgument), mmap fails (kInternal).
  ServeStatus register_region(const std::string& name, const std::string& key, uint64_t offset, uint64_t byte_size);
  // "" unregisters every region. An unknown name is no error: Triton's
  // unregister does nothing then (tritonclient's users unregister freely).
  ServeStatus unregister(const std::string& name);
  // "" lists every region (by name); an unknown name is kNotFound.
  ServeStatus status(const std::string& name, std::vector<SharedMemoryInfo>& out) const;
  // The window [offset, offset + byte_size) of region `name` for the tensor
  // `what` ("input 'x'"): kInvalidArgument when there is no such region or
  // the window runs past its end.
  ServeStatus window(const std::string& name, uint64_t offset, uint64_t byte_size, const std::string& what,
                     std::shared_ptr<SharedMemoryRegion>& region) const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<SharedMemoryRegion>> regions_;
};

// Points input `t` (name, dtype, shape already set; `count` elements) at
// its bytes in a region: checks that `byte_size` is the tensor's size (BYTES
// inputs: that the window holds `count` serialized elements, which are
// parsed into t.strings).
ServeStatus input_from_shared_memory(const SharedMemoryRegistry& registry, const std::string& region, uint64_t offset,
                                     uint64_t byte_size, uint64_t count, InferTensor& t);

// Resolves an output's window (`output` names the tensor): as window(),
// and kInvalidArgument when the region is read-only.
ServeStatus output_target(const SharedMemoryRegistry& registry, const std::string& output, const std::string& region,
                          uint64_t offset, uint64_t byte_size, SharedMemoryOutput& target);

// Writes output `t` into its window; kInvalidArgument when the window is
// smaller than the output.
ServeStatus output_to_shared_memory(const SharedMemoryOutput& target, const InferTensor& t);

}  // namespace kiln::server
