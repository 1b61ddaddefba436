#include "engine/timing_cache.h"

#include <engine.pb.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

namespace kiln {

namespace {

constexpr const char* kFormat = "kiln-timing-cache-1";

std::string arch_of(const std::string& device) { return device.substr(0, device.find('|')); }

Status parse_into(const std::string& bytes, const std::string& path,
                  std::map<std::pair<std::string, std::string>, TimingEntry>& out) {
  if (bytes.empty()) return Status::ok();
  engine::TimingCache pb;
  if (!pb.ParseFromString(bytes) || pb.format() != kFormat)
    return Status(ErrorCode::kCorrupt, "timing cache '" + path + "' is damaged or not a kiln timing cache (delete it)");
  for (const auto& e : pb.entries())
    out.emplace(std::make_pair(e.device(), e.signature()), TimingEntry{e.tactic(), e.ms()});
  return Status::ok();
}

Expected<std::string> read_fd(int fd) {
  std::string bytes;
  char buf[1 << 16];
  if (lseek(fd, 0, SEEK_SET) < 0) return make_error(ErrorCode::kIoError, "cannot seek the timing cache");
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0) return make_error(ErrorCode::kIoError, "cannot read the timing cache");
    if (n == 0) break;
    bytes.append(buf, static_cast<size_t>(n));
  }
  return bytes;
}

}  // namespace

Expected<TimingCache> TimingCache::load(const std::string& path) {
  TimingCache cache;
  std::ifstream f(path, std::ios::binary);
  if (!f) return cache;  // no cache yet
  std::stringstream ss;
  ss << f.rdbuf();
  KILN_RETURN_IF_ERROR(parse_into(ss.str(), path, cache.entries_));
  return cache;
}

Status TimingCache::save(const std::string& path) const {
  int fd = open(path.c_str(), O_RDWR | O_CREAT, 0644);
  if (fd < 0) return make_error(ErrorCode::kIoError, "cannot open timing cache '{}' for writing", path);
  // One writer at a time: read what others saved, merge, rewrite in place.
  if (flock(fd, LOCK_EX) != 0) {
    close(fd);
    return make_error(ErrorCode::kIoError, "cannot lock timing cache '{}'", path);
  }
  auto merged = entries_;
  auto bytes = read_fd(fd);
  Status st = bytes ? parse_into(*bytes, path, merged) : bytes.status();
  if (st.is_ok()) {
    engine::TimingCache pb;
    pb.set_format(kFormat);
    for (const auto& [key, e] : merged) {
      auto* p = pb.add_entries();
      p->set_device(key.first);
      p->set_signature(key.second);
      p->set_tactic(e.tactic);
      p->set_ms(e.ms);
    }
    std::string out = pb.SerializeAsString();
    if (ftruncate(fd, 0) != 0 || lseek(fd, 0, SEEK_SET) < 0 ||
        write(fd, out.data(), out.size()) != static_cast<ssize_t>(out.size()))
      st = make_error(ErrorCode::kIoError, "cannot write timing cache '{}'", path);
  }
  flock(fd, LOCK_UN);
  close(fd);
  return st;
}

std::optional<TimingEntry> TimingCache::find(const std::string& device, const std::string& signature,
                                             bool any_device_of_arch) const {
  if (auto it = entries_.find({device, signature}); it != entries_.end()) return it->second;
  if (!any_device_of_arch) return std::nullopt;
  for (const auto& [key, e] : entries_)
    if (key.second == signature && arch_of(key.first) == arch_of(device)) return e;
  return std::nullopt;
}

void TimingCache::add(const std::string& device, const std::string& signature, TimingEntry entry) {
  entries_.emplace(std::make_pair(device, signature), std::move(entry));
}

}  // namespace kiln
