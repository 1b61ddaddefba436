// The gRPC service: one method per RPC of grpc_service.proto. Health,
// metadata, configuration, statistics and repository RPCs are in
// grpc_service.cpp; the shared memory RPCs in grpc_shared_memory.cpp;
// ModelInfer in grpc_infer.cpp; ModelStreamInfer in
// grpc_stream.cpp; the tensor conversions in grpc_tensor.cpp.
#pragma once

#include <grpcpp/grpcpp.h>

#include <string>

#include "grpc_service.grpc.pb.h"
#include "server.h"

namespace kiln::server {

// Triton's mapping of server errors onto gRPC status codes.
grpc::Status grpc_status(const ServeStatus& s);
// "" is -1 (the server chooses); otherwise a non-negative decimal.
bool parse_model_version(const std::string& text, int64_t& version);

// ModelInferRequest -> InferRequest: raw_input_contents, typed contents or
// a window of a shared memory region of `shm`, parameters (timeout,
// priority), requested outputs (those to be written to shared memory go to
// `shm_outputs`). With `view_raw`, raw_input_contents are not copied: the
// inputs are views of `in`, which must outlive the request. Errors are
// kInvalidArgument (or kUnsupported) naming the input and the problem.
ServeStatus request_from_grpc(const inference::ModelInferRequest& in, InferRequest& out,
                              const SharedMemoryRegistry* shm = nullptr,
                              std::vector<SharedMemoryOutput>* shm_outputs = nullptr, bool view_raw = false);
// InferResponse -> ModelInferResponse, the outputs' data as
// raw_output_contents, or written to their shared memory windows.
ServeStatus response_to_grpc(InferResponse&& in, inference::ModelInferResponse& out,
                             const std::vector<SharedMemoryOutput>* shm_outputs = nullptr);

class KServeGrpcService final : public inference::GRPCInferenceService::Service {
 public:
  explicit KServeGrpcService(InferenceServer& server) : server_(server) {}

  grpc::Status ServerLive(grpc::ServerContext*, const inference::ServerLiveRequest*,
                          inference::ServerLiveResponse*) override;
  grpc::Status ServerReady(grpc::ServerContext*, const inference::ServerReadyRequest*,
                           inference::ServerReadyResponse*) override;
  grpc::Status ModelReady(grpc::ServerContext*, const inference::ModelReadyRequest*,
                          inference::ModelReadyResponse*) override;
  grpc::Status ServerMetadata(grpc::ServerContext*, const inference::ServerMetadataRequest*,
                              inference::ServerMetadataResponse*) override;
  grpc::Status ModelMetadata(grpc::ServerContext*, const inference::ModelMetadataRequest*,
                             inference::ModelMetadataResponse*) override;
  grpc::Status ModelInfer(grpc::ServerContext*, const inference::ModelInferRequest*,
                          inference::ModelInferResponse*) override;
  grpc::Status ModelStreamInfer(
      grpc::ServerContext*,
      grpc::ServerReaderWriter<inference::ModelStreamInferResponse, inference::ModelInferRequest>*) override;
  grpc::Status ModelConfig(grpc::ServerContext*, const inference::ModelConfigRequest*,
                           inference::ModelConfigResponse*) override;
  grpc::Status ModelStatistics(grpc::ServerContext*, const inference::ModelStatisticsRequest*,
                               inference::ModelStatisticsResponse*) override;
  grpc::Status RepositoryIndex(grpc::ServerContext*, const inference::RepositoryIndexRequest*,
                               inference::RepositoryIndexResponse*) override;
  grpc::Status RepositoryModelLoad(grpc::ServerContext*, const inference::RepositoryModelLoadRequest*,
                                   inference::RepositoryModelLoadResponse*) override;
  grpc::Status RepositoryModelUnload(grpc::ServerContext*, const inference::RepositoryModelUnloadRequest*,
                                     inference::RepositoryModelUnloadResponse*) override;
  grpc::Status SystemSharedMemoryStatus(grpc::ServerContext*, const inference::SystemSharedMemoryStatusRequest*,
                                        inference::SystemSharedMemoryStatusResponse*) override;
  grpc::Status SystemSharedMemoryRegister(grpc::ServerContext*, const inference::SystemSharedMemoryRegisterRequest*,
                                          inference::SystemSharedMemoryRegisterResponse*) override;
  grpc::Status SystemSharedMemoryUnregister(grpc::ServerContext*, const inference::SystemSharedMemoryUnregisterRequest*,
                                            inference::SystemSharedMemoryUnregisterResponse*) override;
  grpc::Status CudaSharedMemoryStatus(grpc::ServerContext*, const inference::CudaSharedMemoryStatusRequest*,
                                      inference::CudaSharedMemoryStatusResponse*) override;
  grpc::Status CudaSharedMemoryRegister(grpc::ServerContext*, const inference::CudaSharedMemoryRegisterRequest*,
                                        inference::CudaSharedMemoryRegisterResponse*) override;
  grpc::Status CudaSharedMemoryUnregister(grpc::ServerContext*, const inference::CudaSharedMemoryUnregisterRequest*,
                                          inference::CudaSharedMemoryUnregisterResponse*) override;

 private:
  // Finds the model for a (name, version text) pair of a request.
  ServeStatus find(const std::string& name, const std::string& version, std::shared_ptr<const LoadedModel>& model,
                   std::shared_ptr<ModelVersion>& found);

  InferenceServer& server_;
};

}  // namespace kiln::server
