// ModelStreamInfer: requests read from the stream are queued at once (so a
// stream's requests batch together); each answer, or its error as
// error_message, is written back in completion order by the stream's writer
// thread, never by a scheduler thread (a slow client must not stall a model).
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "grpc_service.h"

namespace kiln::server {
namespace {

using Stream = grpc::ServerReaderWriter<inference::ModelStreamInferResponse, inference::ModelInferRequest>;

struct StreamState {
  std::mutex mutex;
  std::condition_variable cv;
  std::deque<std::pair<uint64_t, inference::ModelStreamInferResponse>> ready;
  // Each queued request holds its model until its answer is written, so a
  // reload cannot end a model under it, and the last release of a model
  // happens here and not on the model's own threads.
  std::map<uint64_t, std::shared_ptr<const LoadedModel>> holds;
  size_t pending = 0;
  bool reading_done = false;

  void push(uint64_t seq, inference::ModelStreamInferResponse msg) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      ready.emplace_back(seq, std::move(msg));
      pending--;
    }
    cv.notify_all();
  }
};

// What an error answer names of its request (not its tensors).
struct RequestName {
  std::string model, version, id;
};

inference::ModelStreamInferResponse error_message(const ServeStatus& st, const RequestName& in) {
  inference::ModelStreamInferResponse msg;
  msg.set_error_message(st.message);
  auto* r = msg.mutable_infer_response();
  r->set_model_name(in.model);
  r->set_model_version(in.version);
  r->set_id(in.id);
  return msg;
}

void write_loop(StreamState& s, Stream* stream) {
  bool open = true;
  std::unique_lock<std::mutex> lock(s.mutex);
  for (;;) {
    s.cv.wait(lock, [&] { return !s.ready.empty() || (s.reading_done && s.pending == 0); });
    if (s.ready.empty()) return;
    auto [seq, msg] = std::move(s.ready.front());
    s.ready.pop_front();
    auto hold = s.holds.extract(seq);
    lock.unlock();
    if (open) open = stream->Write(msg);  // a closed stream drops the rest
    hold = {};
    lock.lock();
  }
}

}  // namespace

grpc::Status KServeGrpcService::ModelStreamInfer(grpc::ServerContext* context, Stream* stream) {
  auto state = std::make_shared<StreamState>();
  // Shared by the stream's requests: a cancelled stream drops those still queued.
  auto cancelled = std::make_shared<std::atomic<bool>>(false);
  std::vector<std::weak_ptr<ModelVersion>> used;
  std::thread writer([&] { write_loop(*state, stream); });
  inference::ModelInferRequest in;
  for (uint64_t seq = 0; stream->Read(&in); ++seq) {
    {
      std::lock_guard<std::mutex> lock(state->mutex);
      state->pending++;
    }
    RequestName name{in.model_name(), in.model_version(), in.id()};
    InferRequest request;
    std::shared_ptr<const LoadedModel> model;
    std::shared_ptr<ModelVersion> version;
    std::vector<SharedMemoryOutput> shm_outputs;
    ServeStatus st = request_from_grpc(in, request, &server_.shared_memory(), &shm_outputs);
    if (st.ok) st = server_.repository().find(request.model, request.version, model, version);
    if (!st.ok) {
      state->push(seq, error_message(st, name));
      continue;
    }
    {
      std::lock_guard<std::mutex> lock(state->mutex);
      state->holds[seq] = std::move(model);
    }
    request.cancelled = cancelled;
    if (std::none_of(used.begin(), used.end(), [&](const auto& w) { return w.lock() == version; }))
      used.push_back(version);
    version->scheduler->submit(
        std::move(request),
        [state, seq, name = std::move(name), shm_outputs = std::move(shm_outputs)](ServeStatus s, InferResponse r) {
          inference::ModelStreamInferResponse msg;
          if (s.ok) s = response_to_grpc(std::move(r), *msg.mutable_infer_response(), &shm_outputs);
          if (!s.ok) msg = error_message(s, name);
          state->push(seq, std::move(msg));
        });
  }
  if (context->IsCancelled()) {
    cancelled->store(true);
    for (const auto& w : used)
      if (auto v = w.lock()) v->scheduler->wake();
  }
  {
    std::lock_guard<std::mutex> lock(state->mutex);
    state->reading_done = true;
  }
  state->cv.notify_all();
  writer.join();
  return grpc::Status::OK;
}

}  // namespace kiln::server
