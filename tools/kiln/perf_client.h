// kiln perf's side of a KServe v2 server (kiln serve or Triton): the
// options, what the model's metadata and statistics say, one Client per load
// thread (HTTP/1.1 keep-alive with Boost.Beast, or gRPC), and the server's
// /metrics histogram. Built with the server, as it needs Boost (and gRPC C++
// for -i grpc).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "kiln/status.h"

// Names of their own: kiln perf is linked with the rest of the CLI.
namespace kiln::cli::kserve {

struct PerfOptions {
  std::string model;
  std::string version;
  std::string url;
  std::string protocol = "http";
  int64_t batch = 1;
  std::string concurrency = "1";
  std::vector<std::string> shapes;
  int interval_ms = 5000;
  int percentile = 0;  // 0: the summary line gives the average latency
  double stability_percentage = 10;
  int max_trials = 10;
  int64_t warmup_requests = 0;
  std::string metrics_url;  // HOST:PORT of /metrics: the server's overhead quantiles
  // "system": each client's inputs and outputs live in a POSIX shared memory
  // region of its own, registered with the server (Triton's extension).
  std::string shared_memory = "none";
  uint64_t output_shared_memory_size = 102400;  // bytes per output, as perf_analyzer
  // kiln's own: each client polls for the answer (HTTP: its socket; gRPC:
  // its completion queue) up to this long before it blocks, so the client's
  // own wake-up from a sleep (tens of microseconds on an idle many-core
  // machine) stays out of the latency. 0, perf_analyzer's way: it blocks at
  // once.
  int busy_wait_us = 0;
};

struct TensorInfo {
  std::string name;
  std::string datatype;
  std::vector<int64_t> shape;
};

struct ModelInfo {
  std::vector<TensorInfo> inputs, outputs;
  int64_t max_batch_size = 0;
};

// The server's cumulative statistics of the model (StatisticDuration ns).
struct ServerStats {
  uint64_t success = 0, fail = 0;
  uint64_t success_ns = 0, queue_ns = 0, input_ns = 0, infer_ns = 0, output_ns = 0;
  uint64_t inference_count = 0, execution_count = 0;
};

// Where one request's time went on the client, perf_analyzer's split:
// sending it, waiting for the answer's first byte (the server's whole
// handling plus the loopback), reading the answer. Negative: not measured
// (gRPC's synchronous call does not split).
struct InferTiming {
  double send_us = -1, wait_us = -1, recv_us = -1;
};

// One connection to the server. Made and used by one thread.
class Client {
 public:
  virtual ~Client() = default;
  virtual Status connect() = 0;
  virtual Expected<ModelInfo> model_info() = 0;
  virtual Expected<ServerStats> stats() = 0;
  // The request every infer() sends: these inputs (shape with the batch dim)
  // and every output. With --shared-memory system: makes this client's
  // region, fills the inputs and registers it (unregistered and removed when
  // the client goes).
  virtual Status prepare(const ModelInfo& info, const std::vector<TensorInfo>& inputs,
                         const std::vector<std::vector<uint8_t>>& data) = 0;
  virtual Status infer(InferTiming& timing) = 0;
};

// A client of `o`'s server and protocol; `index` tells the load threads'
// connections apart (gRPC would share one otherwise).
Expected<std::unique_ptr<Client>> make_client(const PerfOptions& o, int index);

// Cumulative bucket counts of a Prometheus histogram by upper bound (+Inf as
// infinity).
using HistogramBuckets = std::vector<std::pair<double, uint64_t>>;

// The model's (every version, or -x's) kiln_inference_overhead_us and
// kiln_inference_frontend_us, read from /metrics at --metrics-url. A server
// without the front end's histogram leaves `frontend` empty.
struct ServerHistograms {
  HistogramBuckets overhead, frontend;
};
Expected<ServerHistograms> server_histograms(const PerfOptions& o);

}  // namespace kiln::cli::kserve
