// Bounded spinning before a thread blocks. Waking a thread that sleeps (on a
// futex, or in recv on a socket) costs tens of microseconds on an idle
// many-core machine, where the core may sit in a deep C-state; a request of
// a small model pays it at every hand-off. At most a quarter of the cores
// spin at once, so that under load (64 clients) the waiting threads sleep
// and leave the cores to the instances.
#pragma once

#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <thread>

namespace kiln::server {

inline std::atomic<int> g_spinning_threads{0};

// Calls `ready` until it returns true or `limit` passes (or at once when
// enough other threads spin); true when it became ready.
template <typename Ready>
bool spin_until(Ready&& ready, std::chrono::microseconds limit) {
  static const int most = static_cast<int>(std::max(1u, std::thread::hardware_concurrency() / 4));
  bool got = false;
  if (g_spinning_threads.fetch_add(1, std::memory_order_relaxed) < most) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (!(got = ready()) && std::chrono::steady_clock::now() < until) std::this_thread::yield();
  }
  g_spinning_threads.fetch_sub(1, std::memory_order_relaxed);
  return got;
}

// Spins until socket `fd` has a byte to read or is closed (or `limit`
// passes), so that the read that follows finds it awake; true when it did.
inline bool spin_until_readable(int fd, std::chrono::microseconds limit) {
  return spin_until(
      [fd] {
        char c;
        const ssize_t n = ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
        return n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
      },
      limit);
}

}  // namespace kiln::server
