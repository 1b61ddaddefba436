#include "http/http_server.h"

#include <poll.h>
#include <sys/socket.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "spin_wait.h"

namespace kiln::server {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

struct HttpServer::Impl {
  net::io_context ioc;
  tcp::acceptor acceptor{ioc};
};

HttpResponse http_error(int status, const std::string& message) {
  HttpResponse r;
  r.status = status;
  r.body = nlohmann::json{{"error", message}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return r;
}

namespace {

// A connection's socket whose every read and write fails with
// beast::error::timeout once the peer lets `timeout` pass without a byte to
// read or room to write. SO_RCVTIMEO and SO_SNDTIMEO bound nothing here:
// asio's blocking calls wait again, without a limit, when recv or send gives
// up, and a blocking send of a large answer waits for all of it to fit. So
// the socket is non-blocking, and a read or write that would block polls,
// with the timeout, and tries again. An idle keep-alive connection, a client
// that stops halfway through its request, and one that stops reading its
// answer each free their thread and socket after `timeout`
// (--http-idle-timeout-secs).
class InactivityStream {
 public:
  InactivityStream(tcp::socket& socket, std::chrono::milliseconds timeout) : socket_(socket), timeout_(timeout) {
    beast::error_code ec;
    socket_.non_blocking(true, ec);
  }

  template <typename Buffers>
  size_t read_some(const Buffers& b, beast::error_code& ec) {
    return transfer(POLLIN, ec, [&] { return socket_.read_some(b, ec); });
  }
  template <typename Buffers>
  size_t write_some(const Buffers& b, beast::error_code& ec) {
    return transfer(POLLOUT, ec, [&] { return socket_.write_some(b, ec); });
  }
  // The throwing forms, which Beast's stream concepts also ask for.
  template <typename Buffers>
  size_t read_some(const Buffers& b) {
    return or_throw([&](beast::error_code& ec) { return read_some(b, ec); });
  }
  template <typename Buffers>
  size_t write_some(const Buffers& b) {
    return or_throw([&](beast::error_code& ec) { return write_some(b, ec); });
  }

 private:
  template <typename Op>
  static size_t or_throw(Op&& op) {
    beast::error_code ec;
    const size_t n = op(ec);
    if (ec) throw beast::system_error(ec);
    return n;
  }

  // Runs `op` (a read or a write of what is there or what fits) and, while
  // the socket is not ready for it, polls for `events` and runs it again:
  // the poll is only paid when the op would have blocked.
  template <typename Op>
  size_t transfer(short events, beast::error_code& ec, Op&& op) {
    for (;;) {
      const size_t n = op();
      if (ec != net::error::would_block && ec != net::error::try_again) return n;
      ec = {};
      if (!wait(events, ec)) return 0;
    }
  }

  // True when the socket is ready (or closed or failed, which the read or
  // write that follows reports).
  bool wait(short events, beast::error_code& ec) {
    pollfd p{socket_.native_handle(), events, 0};
    int ready;
    do {
      ready = ::poll(&p, 1, static_cast<int>(timeout_.count()));
    } while (ready < 0 && errno == EINTR);
    if (ready == 0) ec = beast::error::timeout;
    if (ready < 0) ec = beast::error_code(errno, boost::system::system_category());
    return ready > 0;
  }

  tcp::socket& socket_;
  std::chrono::milliseconds timeout_;
};

// The peer closed or reset the connection: it can no longer read an answer.
bool peer_closed(int fd) {
  pollfd p{fd, POLLRDHUP, 0};
  return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

}  // namespace

HttpServer::HttpServer(HttpServerOptions options, HttpHandler handler)
    : options_(std::move(options)), handler_(std::move(handler)), impl_(std::make_unique<Impl>()) {}

HttpServer::~HttpServer() { stop(); }

Status HttpServer::start() {
  beast::error_code ec;
  auto address = net::ip::make_address(options_.host, ec);
  if (ec) return Status(ErrorCode::kInvalidArgument, "--host '" + options_.host + "': " + ec.message());
  tcp::endpoint ep(address, static_cast<unsigned short>(options_.port));
  auto& acc = impl_->acceptor;
  acc.open(ep.protocol(), ec);
  if (!ec) acc.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acc.bind(ep, ec);
  if (!ec) acc.listen(net::socket_base::max_listen_connections, ec);
  if (ec)
    return Status(ErrorCode::kIoError,
                  "cannot listen on " + options_.host + ":" + std::to_string(options_.port) + ": " + ec.message());
  port_ = acc.local_endpoint().port();
  acceptor_thread_ = std::thread([this] { accept_loop(); });
  return Status::ok();
}

void HttpServer::stop() {
  if (stopping_.exchange(true)) return;
  if (impl_->acceptor.is_open()) ::shutdown(impl_->acceptor.native_handle(), SHUT_RDWR);  // wakes accept()
  if (acceptor_thread_.joinable()) acceptor_thread_.join();
  beast::error_code ec;
  impl_->acceptor.close(ec);
  std::unique_lock<std::mutex> lock(mutex_);
  for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);
  // Connection threads notice the shutdown at their next read or write.
  idle_.wait_for(lock, std::chrono::seconds(10), [this] { return open_fds_.empty(); });
}

void HttpServer::accept_loop() {
  while (!stopping_) {
    beast::error_code ec;
    tcp::socket socket(impl_->ioc);
    impl_->acceptor.accept(socket, ec);
    if (stopping_) return;
    if (ec) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));  // e.g. out of file descriptors
      continue;
    }
    int fd = socket.release(ec);
    if (ec) continue;
    std::lock_guard<std::mutex> lock(mutex_);
    if (static_cast<int>(open_fds_.size()) >= options_.max_connections) {
      ::close(fd);
      continue;
    }
    open_fds_.insert(fd);
    std::thread([this, fd] { serve_connection(fd); }).detach();
  }
}

HttpResponse HttpServer::handle(const HttpRequest& request) {
  try {
    return handler_(request);
  } catch (const std::exception& e) {
    return http_error(500, std::string("internal error: ") + e.what());
  }
}

void HttpServer::serve_connection(int fd) {
  net::io_context ioc;
  tcp::socket socket(ioc);
  beast::error_code ec;
  socket.assign(tcp::v4(), fd, ec);
  InactivityStream stream(socket, std::chrono::seconds(options_.idle_timeout_s));
  beast::flat_buffer buffer;
  while (!ec && !stopping_) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(options_.max_body_bytes);
    parser.header_limit(64 * 1024);
    // A client sending request after request has its next one read by a
    // thread that is awake (spin_wait.h says why).
    if (buffer.size() == 0) spin_until_readable(fd, std::chrono::microseconds(100));
    http::read_header(stream, buffer, parser, ec);
    // From here, not before the read: a client that pauses between requests
    // must not count as the server's time.
    const auto header_read = std::chrono::steady_clock::now();
    // curl and others wait (a second) for this before sending a large body.
    if (!ec && beast::iequals(parser.get()[http::field::expect], "100-continue")) {
      http::response<http::empty_body> cont{http::status::continue_, parser.get().version()};
      http::write(stream, cont, ec);
    }
    if (!ec && !parser.is_done()) http::read(stream, buffer, parser, ec);
    if (ec == http::error::end_of_stream || (ec && !parser.got_some())) break;
    HttpResponse out;
    bool keep_alive = false;
    unsigned version = 11;
    if (ec == beast::error::timeout) {  // some of a request came, then nothing for the timeout
      out = http_error(408, "the request stopped arriving: no byte for " + std::to_string(options_.idle_timeout_s) +
                                " s (--http-idle-timeout-secs)");
    } else if (ec == http::error::body_limit) {
      out = http_error(413, "the request body exceeds the limit of " + std::to_string(options_.max_body_bytes) +
                                " bytes (--max-request-bytes)");
    } else if (ec) {
      out = http_error(400, "malformed HTTP request: " + ec.message());
    } else {
      auto& req = parser.get();
      HttpRequest r;
      r.method = std::string(req.method_string());
      r.target = std::string(req.target());
      for (const auto& f : req) {
        std::string name(f.name_string());
        for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        r.headers[name] = std::string(f.value());
      }
      r.body = std::move(req.body());
      r.client_gone = [fd] { return peer_closed(fd); };
      keep_alive = req.keep_alive();
      version = req.version();
      out = handle(r);
    }
    http::response<http::string_body> res{static_cast<http::status>(out.status), version};
    res.set(http::field::server, "kiln");
    res.set(http::field::content_type, out.content_type);
    for (const auto& [k, v] : out.headers) res.set(k, v);
    res.body() = std::move(out.body);
    res.keep_alive(keep_alive);
    res.prepare_payload();
    beast::error_code wec;
    http::write(stream, res, wec);
    if (!wec && out.on_sent)
      out.on_sent(static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - header_read)
              .count()));
    if (wec || !keep_alive || ec) break;
    ec = {};
  }
  socket.shutdown(tcp::socket::shutdown_both, ec);
  socket.close(ec);
  // The last touch of `this`: stop() may return (and the server go) once the set is empty.
  std::lock_guard<std::mutex> lock(mutex_);
  open_fds_.erase(open_fds_.find(fd));
  idle_.notify_all();
}

}  // namespace kiln::server
