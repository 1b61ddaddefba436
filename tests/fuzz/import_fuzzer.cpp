// libFuzzer target: any bytes into the ONNX importer. It must return a Status
// or diagnostics with a message, never crash, hang or allocate without bound.
//
// Half of the mutations are structure-aware: the input is read as protobuf
// wire format (no schema needed: the ONNX classes are lite, without
// reflection), one field somewhere in the tree is changed (a varint to -1 or
// 2^40, a string to another string of the model, a field removed or
// repeated) and it is written back. Byte flips alone rarely get past the
// protobuf parser to the graph.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "onnx/importer.h"

namespace {

using Rng = std::minstd_rand;

struct Field {
  uint32_t number = 0;
  int wire = 0;         // 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32
  uint64_t value = 0;   // wire 0, 1, 5
  std::string payload;  // wire 2 when not a message
  bool is_message = false;
  std::vector<Field> children;
};

bool read_varint(const uint8_t*& p, const uint8_t* end, uint64_t& v) {
  v = 0;
  for (int shift = 0; shift < 64 && p < end; shift += 7) {
    uint8_t b = *p++;
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if (!(b & 0x80)) return true;
  }
  return false;
}

// Reads [p, end) as a message; a length-delimited field whose bytes read as a
// message too is taken for one (a string may be misread: harmless here).
bool parse(const uint8_t* p, const uint8_t* end, std::vector<Field>& out, int depth) {
  while (p < end) {
    uint64_t tag = 0;
    if (!read_varint(p, end, tag) || (tag >> 3) == 0 || (tag >> 3) > (1u << 29)) return false;
    Field f;
    f.number = static_cast<uint32_t>(tag >> 3);
    f.wire = static_cast<int>(tag & 7);
    if (f.wire == 0) {
      if (!read_varint(p, end, f.value)) return false;
    } else if (f.wire == 1 || f.wire == 5) {
      size_t n = f.wire == 1 ? 8 : 4;
      if (static_cast<size_t>(end - p) < n) return false;
      std::memcpy(&f.value, p, n);
      p += n;
    } else if (f.wire == 2) {
      uint64_t len = 0;
      if (!read_varint(p, end, len) || len > static_cast<uint64_t>(end - p)) return false;
      f.is_message = depth < 48 && len > 0 && parse(p, p + len, f.children, depth + 1);
      if (!f.is_message) {
        f.children.clear();
        f.payload.assign(reinterpret_cast<const char*>(p), len);
      }
      p += len;
    } else {
      return false;
    }
    out.push_back(std::move(f));
  }
  return true;
}

void write_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

void serialize(const std::vector<Field>& fields, std::string& out) {
  for (const Field& f : fields) {
    write_varint(out, (static_cast<uint64_t>(f.number) << 3) | static_cast<uint64_t>(f.wire));
    if (f.wire == 0) {
      write_varint(out, f.value);
    } else if (f.wire == 1 || f.wire == 5) {
      out.append(reinterpret_cast<const char*>(&f.value), f.wire == 1 ? 8 : 4);
    } else if (f.is_message) {
      std::string inner;
      serialize(f.children, inner);
      write_varint(out, inner.size());
      out += inner;
    } else {
      write_varint(out, f.payload.size());
      out += f.payload;
    }
  }
}

struct Slot {
  std::vector<Field>* siblings;
  size_t index;
};

void collect(std::vector<Field>& fields, std::vector<Slot>& slots, std::vector<std::string>& strings) {
  for (size_t i = 0; i < fields.size(); ++i) {
    slots.push_back({&fields, i});
    if (fields[i].is_message)
      collect(fields[i].children, slots, strings);
    else if (fields[i].wire == 2 && fields[i].payload.size() < 64 && strings.size() < 256)
      strings.push_back(fields[i].payload);
  }
}

uint64_t interesting_varint(Rng& rng, uint64_t old) {
  static const int64_t values[] = {0,
                                   1,
                                   -1,
                                   2,
                                   3,
                                   4,
                                   7,
                                   16,
                                   17,
                                   28,
                                   29,
                                   255,
                                   65535,
                                   int64_t(1) << 31,
                                   int64_t(1) << 40,
                                   std::numeric_limits<int64_t>::max(),
                                   std::numeric_limits<int64_t>::min()};
  switch (rng() % 4) {
    case 0: return old + 1;
    case 1: return old - 1;
    case 2: return rng() % 64;
    default: return static_cast<uint64_t>(values[rng() % (sizeof values / sizeof values[0])]);
  }
}

// Removes or repeats one field, or changes its value.
void mutate_structure(std::vector<Field>& root, Rng& rng) {
  std::vector<Slot> slots;
  std::vector<std::string> strings;
  collect(root, slots, strings);
  if (slots.empty()) return;
  Slot s = slots[rng() % slots.size()];
  std::vector<Field>& siblings = *s.siblings;
  switch (rng() % 6) {
    case 0: siblings.erase(siblings.begin() + static_cast<std::ptrdiff_t>(s.index)); return;
    case 1: siblings.push_back(siblings[s.index]); return;
    default: break;
  }
  Field& f = siblings[s.index];
  if (f.wire == 0) {
    f.value = interesting_varint(rng, f.value);
  } else if (f.wire == 5) {
    static const float values[] = {0.0f, -1.0f, 1e30f, std::numeric_limits<float>::infinity(),
                                   std::numeric_limits<float>::quiet_NaN()};
    std::memcpy(&f.value, &values[rng() % 5], 4);
  } else if (f.wire == 2 && !f.is_message) {
    f.payload = strings.empty() || rng() % 4 == 0 ? std::string() : strings[rng() % strings.size()];
  }
}

}  // namespace

extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size, unsigned int seed) {
  Rng rng(seed);
  std::vector<Field> root;
  if (rng() % 2 == 0 || !parse(data, data + size, root, 0)) return LLVMFuzzerMutate(data, size, max_size);
  int rounds = 1 + static_cast<int>(rng() % 3);
  for (int i = 0; i < rounds; ++i) mutate_structure(root, rng);
  std::string out;
  serialize(root, out);
  if (out.size() > max_size) return LLVMFuzzerMutate(data, size, max_size);
  std::memcpy(data, out.data(), out.size());
  return out.size();
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kiln::ImportOptions options;
  // External data must never reach real files.
  options.external_data_dir = "/nonexistent/kiln-fuzz";
  // Dense copies of sparse tensors up to the real 1 GiB only cost time here.
  options.max_sparse_dense_bytes = int64_t(16) << 20;
  auto r = kiln::import_onnx_bytes(data, size, options);
  if (!r.is_ok()) {
    if (r.status().message().empty()) {
      std::fprintf(stderr, "import failed with an empty message (code %d)\n", static_cast<int>(r.status().code()));
      std::abort();
    }
    return 0;
  }
  for (const auto& d : r->diagnostics)
    if (d.message.empty()) {
      std::fprintf(stderr, "a diagnostic has an empty message: %s\n", kiln::format_diagnostic(d).c_str());
      std::abort();
    }
  return 0;
}
