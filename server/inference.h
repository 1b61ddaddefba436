// Protocol-neutral inference requests and responses: the HTTP front end (and
// the gRPC one, part 2) translate their wire formats into these, and the
// scheduler only ever sees these.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kiln/dtype.h"
#include "kiln/status.h"

namespace kiln::server {

using Clock = std::chrono::steady_clock;

struct InferTensor {
  std::string name;
  DType dtype = DType::kUndefined;
  std::vector<int64_t> shape;
  // Row-major, little-endian. BYTES (kString) outputs hold Triton's
  // serialized form: per element a 4-byte little-endian length, then the bytes.
  // An input's bytes may instead be a view (set_view); read them with bytes().
  std::vector<uint8_t> data;
  // BYTES (kString) inputs: the elements, parsed and checked once by whoever
  // made the request (the front end, the warmup); `data` stays empty.
  std::vector<std::string> strings;

  // The tensor's bytes: the view when there is one, `data` otherwise. The
  // one accessor for readers (the scheduler's gather, the CPU path).
  std::span<const uint8_t> bytes() const {
    return view_ ? std::span<const uint8_t>(view_, view_size_) : std::span<const uint8_t>(data);
  }
  // Makes the bytes a read-only view of `size` bytes at `at`, which `owner`
  // keeps alive (a shared memory region) for as long as the tensor lives.
  // No owner: the request's maker keeps the bytes alive until the request's
  // callback has run (the HTTP body, whose connection thread waits in
  // infer_sync, and the unary gRPC message, kept until the call finishes).
  // `pinned`: the bytes are page-locked (a shared memory region registered
  // with CUDA), so a GPU instance may copy them straight to the device.
  void set_view(const uint8_t* at, size_t size, std::shared_ptr<const void> owner, bool pinned = false) {
    data.clear();
    view_ = at;
    view_size_ = size;
    owner_ = std::move(owner);
    pinned_ = pinned;
  }
  bool bytes_pinned() const { return view_ && pinned_; }

 private:
  const uint8_t* view_ = nullptr;
  size_t view_size_ = 0;
  std::shared_ptr<const void> owner_;
  bool pinned_ = false;
};

struct InferRequest {
  std::string model;
  int64_t version = -1;  // -1: the newest ready version
  std::string id;
  std::vector<InferTensor> inputs;
  std::vector<std::string> outputs;  // empty: every output
  uint64_t timeout_us = 0;           // 0: the model's default
  uint32_t priority = 0;             // 0: the model's default level
  // Set by the front end when the client goes away (closed connection,
  // cancelled RPC): a queued request that is cancelled is dropped unrun.
  std::shared_ptr<std::atomic<bool>> cancelled;
  bool is_cancelled() const { return cancelled && cancelled->load(std::memory_order_relaxed); }
};

struct InferResponse {
  std::string model;
  int64_t version = 0;
  std::string id;
  std::vector<InferTensor> outputs;
  // Set by the scheduler on success. The front end calls it once the answer
  // is sent, with its own wall time for the request (the HTTP server: from
  // the request's header read to the answer's last byte written); the part
  // of that outside the scheduler goes to kiln_inference_frontend_us.
  std::function<void(uint64_t front_end_ns)> front_end_done;
};

// Errors carry the status code a front end maps onto its protocol.
enum class ServeError {
  kInvalidArgument,
  kNotFound,
  kUnavailable,
  kInternal,
  kUnsupported,
  kCancelled,
  kAlreadyExists
};

struct ServeStatus {
  bool ok = true;
  ServeError code = ServeError::kInternal;
  std::string message;
  static ServeStatus success() { return {}; }
  static ServeStatus error(ServeError c, std::string m) { return {false, c, std::move(m)}; }
};

// Called exactly once per request, on a scheduler thread.
using InferCallback = std::function<void(ServeStatus, InferResponse)>;

// Triton's wire names: "FP32", "INT64", "BOOL", ... ; kUndefined when unknown.
const char* triton_dtype_name(DType t);
DType dtype_from_triton_name(const std::string& name);
// Bytes per element for the fixed-size types the server handles; 0 otherwise.
size_t dtype_bytes(DType t);

// BYTES elements in Triton's serialized form (4-byte little-endian length,
// then the bytes, per element).
void append_serialized_string(const std::string& s, std::vector<uint8_t>& out);
void serialize_strings(const std::string* s, size_t count, std::vector<uint8_t>& out);
// Splits serialized BYTES data into exactly `count` strings (into `out` when
// not null); false with `error` saying what is wrong otherwise.
bool deserialize_strings(const uint8_t* data, size_t size, uint64_t count, std::vector<std::string>* out,
                         std::string& error);

}  // namespace kiln::server
