// Triton's shared memory RPCs: system shared memory regions through the
// server's SharedMemoryRegistry; CUDA shared memory is not supported.
#include "grpc_service.h"

namespace kiln::server {

using grpc::ServerContext;
using grpc::Status;
using grpc::StatusCode;

namespace {

Status no_cuda_shm() { return Status(StatusCode::UNIMPLEMENTED, "CUDA shared memory is not supported by kiln serve"); }

}  // namespace

Status KServeGrpcService::SystemSharedMemoryStatus(ServerContext*, const inference::SystemSharedMemoryStatusRequest* in,
                                                   inference::SystemSharedMemoryStatusResponse* out) {
  std::vector<SharedMemoryInfo> regions;
  ServeStatus st = server_.shared_memory().status(in->name(), regions);
  if (!st.ok) return grpc_status(st);
  for (const auto& g : regions) {
    auto& r = (*out->mutable_regions())[g.name];
    r.set_name(g.name);
    r.set_key(g.key);
    r.set_offset(g.offset);
    r.set_byte_size(g.byte_size);
  }
  return Status::OK;
}

Status KServeGrpcService::SystemSharedMemoryRegister(ServerContext*,
                                                     const inference::SystemSharedMemoryRegisterRequest* in,
                                                     inference::SystemSharedMemoryRegisterResponse*) {
  return grpc_status(server_.shared_memory().register_region(in->name(), in->key(), in->offset(), in->byte_size()));
}

Status KServeGrpcService::SystemSharedMemoryUnregister(ServerContext*,
                                                       const inference::SystemSharedMemoryUnregisterRequest* in,
                                                       inference::SystemSharedMemoryUnregisterResponse*) {
  return grpc_status(server_.shared_memory().unregister(in->name()));
}

Status KServeGrpcService::CudaSharedMemoryStatus(ServerContext*, const inference::CudaSharedMemoryStatusRequest*,
                                                 inference::CudaSharedMemoryStatusResponse*) {
  return no_cuda_shm();
}

Status KServeGrpcService::CudaSharedMemoryRegister(ServerContext*, const inference::CudaSharedMemoryRegisterRequest*,
                                                   inference::CudaSharedMemoryRegisterResponse*) {
  return no_cuda_shm();
}

Status KServeGrpcService::CudaSharedMemoryUnregister(ServerContext*,
                                                     const inference::CudaSharedMemoryUnregisterRequest*,
                                                     inference::CudaSharedMemoryUnregisterResponse*) {
  return no_cuda_shm();
}

}  // namespace kiln::server
