// The system shared memory registry (server/shared_memory.h): bounds checked
// against the object and the region, names, views that outlive an
// unregister, inputs and outputs in a region.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

#include "shared_memory.h"

namespace kiln::server {
namespace {

// A POSIX shared memory object of `size` bytes (byte i holds i % 251),
// removed with the fixture.
class ShmObject {
 public:
  explicit ShmObject(size_t size, mode_t mode = 0600)
      : key_("/kiln_unit_" + std::to_string(getpid()) + "_" + std::to_string(next_++)) {
    int fd = shm_open(key_.c_str(), O_RDWR | O_CREAT | O_EXCL, mode);
    EXPECT_GE(fd, 0) << std::strerror(errno);
    EXPECT_EQ(ftruncate(fd, static_cast<off_t>(size)), 0);
    void* map = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    EXPECT_NE(map, MAP_FAILED);
    for (size_t i = 0; i < size; ++i) static_cast<uint8_t*>(map)[i] = static_cast<uint8_t>(i % 251);
    munmap(map, size);
    close(fd);
  }
  ~ShmObject() { shm_unlink(key_.c_str()); }
  const std::string& key() const { return key_; }

 private:
  static inline int next_ = 0;
  std::string key_;
};

TEST(ServerSharedMemory, RegisterChecksTheWindowAgainstTheObject) {
  ShmObject obj(100);
  SharedMemoryRegistry r;
  EXPECT_TRUE(r.register_region("whole", obj.key(), 0, 100).ok);
  ServeStatus st = r.register_region("past", obj.key(), 1, 100);
  EXPECT_EQ(st.code, ServeError::kInvalidArgument);
  EXPECT_EQ(st.message,
            "failed to register shared memory region 'past': offset 1 + byte_size 100 runs past the end of '" +
                obj.key() + "' (100 bytes)");
  // An offset past the end, and one that would wrap around with the size.
  EXPECT_FALSE(r.register_region("p2", obj.key(), 101, 1).ok);
  EXPECT_FALSE(r.register_region("p3", obj.key(), 2, UINT64_MAX).ok);
  st = r.register_region("empty", obj.key(), 0, 0);
  EXPECT_EQ(st.message, "failed to register shared memory region 'empty': byte_size is 0");
  std::vector<SharedMemoryInfo> all;
  ASSERT_TRUE(r.status("", all).ok);
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].name, "whole");
}

TEST(ServerSharedMemory, AnOffsetOffThePageMapsTheRightBytes) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  ShmObject obj(2 * page + 10);
  SharedMemoryRegistry r;
  ASSERT_TRUE(r.register_region("r", obj.key(), page + 7, page + 3).ok);
  std::shared_ptr<SharedMemoryRegion> region;
  ASSERT_TRUE(r.window("r", 0, page + 3, "input 'x'", region).ok);
  EXPECT_EQ(region->base()[0], (page + 7) % 251);
  EXPECT_EQ(region->base()[page + 2], (2 * page + 9) % 251);
}

TEST(ServerSharedMemory, NamesUnknownKeysAndRegions) {
  ShmObject obj(16);
  SharedMemoryRegistry r;
  ASSERT_TRUE(r.register_region("a", obj.key(), 0, 16).ok);
  ServeStatus st = r.register_region("a", obj.key(), 0, 8);
  EXPECT_EQ(st.code, ServeError::kAlreadyExists);
  EXPECT_EQ(st.message, "shared memory region 'a' is already registered");
  st = r.register_region("b", "/kiln_unit_no_such_object", 0, 8);
  EXPECT_EQ(st.code, ServeError::kInvalidArgument);
  EXPECT_EQ(st.message,
            "failed to register shared memory region 'b': unable to open the shared memory object "
            "'/kiln_unit_no_such_object': No such file or directory");
  std::vector<SharedMemoryInfo> out;
  st = r.status("b", out);
  EXPECT_EQ(st.code, ServeError::kNotFound);
  EXPECT_EQ(st.message, "unable to find shared memory region 'b'");
  EXPECT_TRUE(r.unregister("b").ok);  // as Triton: nothing to do
  ASSERT_TRUE(r.status("a", out).ok);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].key, obj.key());
  EXPECT_EQ(out[0].byte_size, 16u);
  EXPECT_TRUE(r.unregister("").ok);
  ASSERT_TRUE(r.status("", out).ok);
  EXPECT_TRUE(out.empty());
}

TEST(ServerSharedMemory, WindowBoundsInsideTheRegion) {
  ShmObject obj(64);
  SharedMemoryRegistry r;
  ASSERT_TRUE(r.register_region("r", obj.key(), 32, 32).ok);
  std::shared_ptr<SharedMemoryRegion> region;
  EXPECT_TRUE(r.window("r", 28, 4, "input 'x'", region).ok);
  EXPECT_TRUE(r.window("r", 32, 0, "input 'x'", region).ok);
  ServeStatus st = r.window("r", 28, 5, "input 'x'", region);
  EXPECT_EQ(st.code, ServeError::kInvalidArgument);
  EXPECT_EQ(st.message,
            "input 'x': shared_memory_offset 28 + shared_memory_byte_size 5 runs past the end of shared memory region "
            "'r' (32 bytes)");
  EXPECT_FALSE(r.window("r", 33, 0, "input 'x'", region).ok);
  EXPECT_FALSE(r.window("r", 4, UINT64_MAX - 2, "input 'x'", region).ok);
  EXPECT_EQ(r.window("q", 0, 1, "output 'y'", region).message, "output 'y': unable to find shared memory region 'q'");
}

TEST(ServerSharedMemory, AnInputIsAViewThatOutlivesUnregister) {
  ShmObject obj(64);
  SharedMemoryRegistry r;
  ASSERT_TRUE(r.register_region("r", obj.key(), 0, 64).ok);
  InferTensor t;
  t.name = "x";
  t.dtype = DType::kF32;
  ServeStatus st = input_from_shared_memory(r, "r", 8, 12, 4, t);
  EXPECT_EQ(st.message, "input 'x': shared_memory_byte_size 12 but the shape and datatype need 16 bytes");
  ASSERT_TRUE(input_from_shared_memory(r, "r", 8, 16, 4, t).ok);
  ASSERT_TRUE(r.unregister("r").ok);
  // Still mapped: the tensor holds the region.
  ASSERT_EQ(t.bytes().size(), 16u);
  EXPECT_TRUE(t.data.empty());
  EXPECT_EQ(t.bytes()[0], 8);
  EXPECT_EQ(t.bytes()[15], 23);
}

TEST(ServerSharedMemory, BytesInputsAreParsedFromTheRegion) {
  ShmObject obj(16);
  SharedMemoryRegistry r;
  ASSERT_TRUE(r.register_region("r", obj.key(), 0, 16).ok);
  std::shared_ptr<SharedMemoryRegion> region;
  ASSERT_TRUE(r.window("r", 0, 16, "input 's'", region).ok);
  const uint8_t serialized[] = {2, 0, 0, 0, 'h', 'i', 0, 0, 0, 0};
  std::memcpy(region->base(), serialized, sizeof(serialized));
  InferTensor t;
  t.name = "s";
  t.dtype = DType::kString;
  ASSERT_TRUE(input_from_shared_memory(r, "r", 0, sizeof(serialized), 2, t).ok);
  EXPECT_EQ(t.strings, (std::vector<std::string>{"hi", ""}));
  InferTensor u;
  u.name = "s";
  u.dtype = DType::kString;
  EXPECT_FALSE(input_from_shared_memory(r, "r", 0, sizeof(serialized), 3, u).ok);
}

TEST(ServerSharedMemory, OutputsAreWrittenAtTheirOffsetWhenTheyFit) {
  ShmObject obj(32);
  SharedMemoryRegistry r;
  ASSERT_TRUE(r.register_region("r", obj.key(), 0, 32).ok);
  SharedMemoryOutput target;
  ASSERT_TRUE(output_target(r, "y", "r", 4, 8, target).ok);
  InferTensor t;
  t.name = "y";
  t.data = {1, 2, 3, 4, 5, 6};
  ASSERT_TRUE(output_to_shared_memory(target, t).ok);
  EXPECT_EQ(std::memcmp(target.mem->base() + 4, t.data.data(), 6), 0);
  EXPECT_EQ(target.mem->base()[10], 10);  // untouched past the output
  t.data.assign(9, 0);
  EXPECT_EQ(output_to_shared_memory(target, t).message,
            "output 'y': shared_memory_byte_size 8 is too small for its 9 bytes");
}

TEST(ServerSharedMemory, AReadOnlyObjectTakesNoOutputs) {
  if (geteuid() == 0) GTEST_SKIP() << "root opens a 0400 object read-write";
  ShmObject obj(16, 0400);
  SharedMemoryRegistry r;
  ASSERT_TRUE(r.register_region("ro", obj.key(), 0, 16).ok);
  InferTensor t;
  t.name = "x";
  t.dtype = DType::kU8;
  ASSERT_TRUE(input_from_shared_memory(r, "ro", 0, 16, 16, t).ok);
  EXPECT_EQ(t.bytes()[3], 3);
  SharedMemoryOutput target;
  EXPECT_EQ(output_target(r, "y", "ro", 0, 16, target).message, "output 'y': shared memory region 'ro' is read-only");
}

}  // namespace
}  // namespace kiln::server
