// The engine file: round trips, determinism, and that every kind of damage is
// caught with a message saying what is wrong.
#include <gtest/gtest.h>

#include <algorithm>

#include "builder/builder.h"
#include "engine/engine_file.h"
#include "engine/hash.h"
#include "engine_fixtures.h"
#include "ir/printer.h"
#include "kiln/device.h"

namespace kiln {
namespace {

EngineContents contents_of(const Model& m) {
  EngineContents c;
  c.kiln_version = KILN_VERSION;
  c.backend = "cpu";
  c.device = current_device("cpu").value();
  c.graph = m.graph;
  c.opsets = m.opsets;
  c.producer_name = m.producer_name;
  EngineProfile p;
  p.ranges.emplace_back("x", ShapeRange{{1, 4}, {2, 4}, {8, 4}});
  c.profiles = {p};
  c.settings.fp16 = true;
  c.settings.optimization_level = 5;
  return c;
}

std::vector<uint8_t> engine_bytes(bool with_subgraph = true) {
  return write_engine(contents_of(testing::identity_model(with_subgraph))).value();
}

Expected<EngineContents> read(const std::vector<uint8_t>& b) {
  return read_engine(FileBytes{reinterpret_cast<const std::byte*>(b.data()), b.size(), nullptr});
}

std::string error_of(const std::vector<uint8_t>& b) {
  auto r = read(b);
  return r.is_ok() ? "(loaded)" : r.status().message();
}

TEST(EngineFile, RoundTripKeepsGraphSubgraphsProfilesAndSettings) {
  Model m = testing::identity_model(true);
  auto back = read(engine_bytes());
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  EXPECT_EQ(print_graph(*back->graph), print_graph(*m.graph));
  ASSERT_EQ(back->profiles.size(), 1u);
  EXPECT_EQ(back->profiles[0].find("x")->max, (std::vector<int64_t>{8, 4}));
  EXPECT_TRUE(back->settings.fp16);
  EXPECT_EQ(back->settings.optimization_level, 5);
  EXPECT_EQ(back->producer_name, "test");
  // The subgraph's node reads the outer graph's x.
  const Node& b = *back->graph->nodes()[1];
  EXPECT_EQ(b.attr("body")->g->nodes()[0]->inputs[0], back->graph->inputs[0]);
  EXPECT_EQ(b.attr("t")->t.span<int64_t>()[1], 8);
}

TEST(EngineFile, WeightSectionsAre64ByteAlignedViews) {
  auto bytes = engine_bytes();
  auto back = read(bytes);
  ASSERT_TRUE(back.is_ok());
  const Tensor& w = *back->graph->initializers[0]->constant;
  auto offset = static_cast<const uint8_t*>(w.raw()) - bytes.data();
  EXPECT_EQ(offset % 64, 0);
  EXPECT_GE(offset, 128);
  EXPECT_EQ(w.span<float>()[3], 3.0f);
}

TEST(EngineFile, SameModelAndConfigGiveIdenticalBytes) {
  BuildConfig config;
  OptimizationProfile p;
  ASSERT_TRUE(p.set_shape_range("x", {1, 4}, {2, 4}, {8, 4}).is_ok());
  config.profiles = {p};
  auto a = build_engine(testing::identity_model(), config);
  auto b = build_engine(testing::identity_model(), config);
  ASSERT_TRUE(a.is_ok()) << a.status().to_string();
  ASSERT_TRUE(b.is_ok());
  EXPECT_EQ(*a, *b);
}

TEST(EngineFile, EveryFlippedByteIsDetected) {
  auto good = engine_bytes();
  ASSERT_TRUE(read(good).is_ok());
  for (size_t i = 0; i < good.size(); ++i) {
    for (uint8_t mask : {0x01, 0x80}) {
      auto b = good;
      b[i] ^= mask;
      EXPECT_FALSE(read(b).is_ok()) << "byte " << i << " mask " << int(mask);
    }
  }
}

TEST(EngineFile, EveryTruncationIsDetected) {
  auto good = engine_bytes();
  for (size_t n = 0; n < good.size(); ++n) {
    std::vector<uint8_t> b(good.begin(), good.begin() + static_cast<long>(n));
    auto r = read(b);
    ASSERT_FALSE(r.is_ok()) << n;
    EXPECT_EQ(r.status().code(), ErrorCode::kCorrupt) << n;
  }
  EXPECT_EQ(error_of({}), "the engine file is empty");
  std::vector<uint8_t> half(good.begin(), good.begin() + 200);
  EXPECT_EQ(error_of(half), fmt::format("truncated engine: 200 bytes, the header says {}", good.size()));
}

TEST(EngineFile, MessagesNameWhatIsWrong) {
  auto good = engine_bytes();
  auto b = good;
  b[0] = 'X';
  EXPECT_EQ(error_of(b), "not a kiln engine: the file does not start with \"KILN\"");
  b = good;
  b[4] = 9;
  EXPECT_EQ(error_of(b), "engine format version 9, this kiln reads version 1: rebuild the engine");
  b = good;
  b[good.size() - 1] ^= 1;
  EXPECT_EQ(error_of(b), "engine checksum mismatch: the file is damaged");
  b = good;
  b.push_back(0);
  EXPECT_EQ(error_of(b),
            "engine file has 1 bytes after its end (the header says " + std::to_string(good.size()) + " bytes)");
}

TEST(EngineFile, OtherVersionBackendOrDeviceIsRejected) {
  Model m = testing::identity_model();
  EngineContents c = contents_of(m);
  c.kiln_version = "0.0.1";
  EXPECT_EQ(error_of(write_engine(c).value()),
            fmt::format("the engine was built by kiln 0.0.1, this is kiln {}: rebuild it", KILN_VERSION));
  c = contents_of(m);
  c.device = "cpu:riscv";
  EXPECT_EQ(error_of(write_engine(c).value()),
            fmt::format("the engine was built for device 'cpu:riscv', this machine is '{}': rebuild it here",
                        current_device("cpu").value()));
  c = contents_of(m);
  c.backend = "cuda";
  // Without a GPU the backend is unavailable; with one, a "cpu:..." device
  // string is another compute capability.
  const std::string cuda_error = error_of(write_engine(c).value());
  if (current_device("cuda").is_ok())
    EXPECT_NE(cuda_error.find("rebuild the engine on this GPU"), std::string::npos) << cuda_error;
  else
    EXPECT_EQ(cuda_error, current_device("cuda").status().message()) << cuda_error;  // no GPU, or no CUDA build
  c.backend = "tpu";
  EXPECT_EQ(error_of(write_engine(c).value()), "unknown backend 'tpu' (kiln has 'cpu' and 'cuda')");
}

TEST(EngineFile, NoCudaGpuReasonIsWhatTheCudaBackendSays) {
  const std::string reason = no_cuda_gpu_reason();
  if (cuda_device_count() > 0) {
    EXPECT_EQ(reason, "");
    return;
  }
  EXPECT_TRUE(reason == "no CUDA GPU is visible to this process" ||
              reason == "this kiln was built without the CUDA backend")
      << reason;
  EXPECT_EQ(current_device("cuda").status().message(), "backend 'cuda': " + reason + " (use --backend cpu)");
}

TEST(EngineFile, BadSectionOffsetIsRejectedEvenWithValidChecksums) {
  auto b = engine_bytes(false);
  // The one section (w, 16 bytes at 128) as protobuf: field 2 {offset 128, size 16}.
  const uint8_t section[] = {0x12, 0x05, 0x08, 0x80, 0x01, 0x10, 0x10};
  auto it = std::search(b.begin(), b.end(), std::begin(section), std::end(section));
  ASSERT_NE(it, b.end());
  it[3] = 0xc1;  // the varint 0xc1 0x01 is 193: misaligned
  ASSERT_TRUE(reseal_engine(b));
  EXPECT_EQ(error_of(b), "engine section 0 at [193, +16) is misaligned or outside [128, 192)");
}

TEST(EngineFile, ResealedRandomDamageNeverCrashes) {
  auto good = engine_bytes();
  for (size_t i = 128; i < good.size(); ++i) {
    auto b = good;
    b[i] ^= 0x5a;
    ASSERT_TRUE(reseal_engine(b));
    auto r = read(b);  // may load (a name changed) or fail; must not crash
    if (!r.is_ok()) EXPECT_FALSE(r.status().message().empty());
  }
}

TEST(Hash64, IsStableAndSensitive) {
  const char a[] = "kiln engine checksum test, more than thirty-two bytes long";
  EXPECT_EQ(hash64(a, sizeof(a)), hash64(a, sizeof(a)));
  EXPECT_NE(hash64(a, sizeof(a)), hash64(a, sizeof(a) - 1));
  EXPECT_NE(hash64(a, 5), hash64("kilm ", 5));
  EXPECT_NE(hash64("", 0), hash64("", 0, 1));
}

}  // namespace
}  // namespace kiln
