// ModelInfer: one request, answered when its (possibly batched) run is done.
// The sync server gives each call its own thread, so concurrent calls reach
// the model's dynamic batcher together.
#include "grpc_service.h"

namespace kiln::server {

grpc::Status KServeGrpcService::ModelInfer(grpc::ServerContext* context, const inference::ModelInferRequest* in,
                                           inference::ModelInferResponse* out) {
  InferRequest request;
  std::vector<SharedMemoryOutput> shm_outputs;
  // `in` outlives the request (infer_sync waits for it): its raw contents are not copied.
  ServeStatus st = request_from_grpc(*in, request, &server_.shared_memory(), &shm_outputs, true);
  if (!st.ok) return grpc_status(st);
  InferResponse response;
  // A cancelled call (or one past its deadline) drops its request from the queue.
  st = server_.infer_sync(std::move(request), response, [context] { return context->IsCancelled(); });
  if (!st.ok) return grpc_status(st);
  return grpc_status(response_to_grpc(std::move(response), *out, &shm_outputs));
}

}  // namespace kiln::server
