// The device layer: info, buffers, streams, events, error statuses.
#include <cstdio>

#include "backends/cuda/cuda_status.h"
#include "gpu_test_util.h"

namespace kiln::gpu_test {
namespace {

TEST(CudaStatus, NamesTheCallAndTheError) {
  const Status st = cuda::to_status(cudaErrorMemoryAllocation, "cudaMalloc(&p, n)");
  EXPECT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("cudaMalloc(&p, n)"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("cudaErrorMemoryAllocation"), std::string::npos) << st.message();
  EXPECT_TRUE(cuda::to_status(cudaSuccess, "x").is_ok());
  const Status bl = cuda::to_status(CUBLAS_STATUS_NOT_SUPPORTED, "cublasLtMatmul");
  EXPECT_EQ(bl.code(), ErrorCode::kUnsupported);
  EXPECT_NE(bl.message().find("CUBLAS_STATUS_NOT_SUPPORTED"), std::string::npos) << bl.message();
}

TEST(CudaDevice, DeviceCountIsNeverNegative) { EXPECT_GE(cuda::device_count(), 0); }

TEST_F(GpuTest, DeviceInfoDescribesDeviceZero) {
  auto info = cuda::device_info(0);
  ASSERT_TRUE(info.is_ok()) << info.status().to_string();
  EXPECT_FALSE(info->name.empty());
  EXPECT_GE(info->cc_major, 7);
  EXPECT_GT(info->sm_count, 0);
  EXPECT_GT(info->total_memory, size_t(1) << 30);
  EXPECT_GT(info->l2_cache_bytes, 0);
  EXPECT_GT(info->driver_version, 0);
  EXPECT_GT(info->runtime_version, 0);
  std::printf("device 0: %s\n", info->to_string().c_str());
  EXPECT_FALSE(cuda::device_info(cuda::device_count()).is_ok());
}

TEST_F(GpuTest, BuffersRoundTripThroughAStreamAndEventsTime) {
  auto stream = cuda::Stream::create();
  ASSERT_TRUE(stream.is_ok());
  auto buf = cuda::DeviceBuffer::allocate(1024);
  ASSERT_TRUE(buf.is_ok());
  std::vector<uint8_t> in(1024), out(1024);
  for (size_t i = 0; i < in.size(); ++i) in[i] = static_cast<uint8_t>(i * 7 + 1);
  auto start = cuda::Event::create(), stop = cuda::Event::create();
  ASSERT_TRUE(start.is_ok() && stop.is_ok());
  ASSERT_TRUE(start->record(stream->get()).is_ok());
  ASSERT_TRUE(buf->copy_from_host(in.data(), in.size(), stream->get()).is_ok());
  ASSERT_TRUE(buf->copy_to_host(out.data(), out.size(), stream->get()).is_ok());
  ASSERT_TRUE(stop->record(stream->get()).is_ok());
  ASSERT_TRUE(stop->synchronize().is_ok());
  EXPECT_EQ(in, out);
  auto ms = stop->elapsed_ms_since(*start);
  ASSERT_TRUE(ms.is_ok());
  EXPECT_GE(*ms, 0.f);
  EXPECT_FALSE(buf->copy_from_host(in.data(), 2048).is_ok());  // larger than the buffer
  cuda::DeviceBuffer moved = std::move(buf).value();
  EXPECT_EQ(moved.size(), 1024u);
}

}  // namespace
}  // namespace kiln::gpu_test
