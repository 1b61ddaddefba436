// KServe v2 over HTTP/REST (with Triton's extensions: binary tensor data,
// model configuration, statistics, model repository): routes an HttpRequest
// to the InferenceServer and answers with Triton's bodies and status codes.
#pragma once

#include "http/http_server.h"
#include "server.h"

namespace kiln::server {

HttpHandler make_kserve_handler(InferenceServer& server);

// The HTTP status code of a ServeError.
int http_status(ServeError e);

// POST .../infer: JSON or binary tensor data in, the same out.
HttpResponse handle_infer(InferenceServer& server, const HttpRequest& r, const std::string& model, int64_t version);

// Parses a KServe infer request body (JSON, or JSON followed by binary tensor
// data when `header_length` is set). Binary inputs are views of `body`,
// which must outlive the request. Inputs in shared memory are views of
// their regions in `shm`; outputs to be written to shared memory go to
// `shm_outputs` (without `shm`, shared memory parameters are an error). On
// error returns false with `error`.
bool parse_infer_request(const std::string& body, const std::string* header_length, InferRequest& request,
                         std::vector<std::string>& binary_outputs, bool& binary_default, std::string& error,
                         const SharedMemoryRegistry* shm = nullptr,
                         std::vector<SharedMemoryOutput>* shm_outputs = nullptr);

}  // namespace kiln::server
