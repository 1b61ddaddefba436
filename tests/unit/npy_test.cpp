// .npy reading and writing: the versions and dtypes NumPy writes, and clear
// refusals for what kiln does not read.
#include "runtime/npy.h"

#include <gtest/gtest.h>

#include <cstring>

#include "ir/half.h"

namespace kiln {
namespace {

// A .npy file with `dict` as its header, in format `major`.0, then `body`.
std::string npy_bytes(int major, std::string dict, const std::string& body) {
  size_t prefix = major == 1 ? 10 : 12;
  size_t total = (prefix + dict.size() + 1 + 63) / 64 * 64;
  dict.append(total - prefix - dict.size() - 1, ' ');
  dict += '\n';
  std::string out = "\x93NUMPY";
  out += static_cast<char>(major);
  out += '\0';
  for (size_t i = 0; i < (major == 1 ? 2u : 4u); ++i) out += static_cast<char>((dict.size() >> (8 * i)) & 0xff);
  return out + dict + body;
}

std::string floats(std::vector<float> v) { return {reinterpret_cast<const char*>(v.data()), v.size() * 4}; }

Expected<Tensor> parse(const std::string& b) { return parse_npy(b.data(), b.size(), "t.npy"); }

TEST(Npy, RoundTripsDtypesAndShapes) {
  for (DType dt : {DType::kF32, DType::kF64, DType::kF16, DType::kI8, DType::kU8, DType::kI32, DType::kI64, DType::kU64,
                   DType::kBool}) {
    Tensor t(dt, {2, 3});
    auto* p = static_cast<uint8_t*>(t.mutable_raw());
    for (size_t i = 0; i < t.nbytes(); ++i) p[i] = static_cast<uint8_t>(dt == DType::kBool ? i % 2 : i * 7);
    std::string b = encode_npy(t);
    EXPECT_EQ((b.size() - t.nbytes()) % 64, 0u) << dtype_name(dt);
    auto back = parse(b);
    ASSERT_TRUE(back.is_ok()) << back.status().to_string();
    EXPECT_EQ(back->dtype(), dt);
    EXPECT_EQ(back->dims(), (std::vector<int64_t>{2, 3}));
    EXPECT_EQ(std::memcmp(back->raw(), t.raw(), t.nbytes()), 0);
  }
}

TEST(Npy, WritesNumpysHeader) {
  std::string b = encode_npy(Tensor::from_vector<float>(DType::kF32, {3}, {1, 2, 3}));
  EXPECT_EQ(b.substr(10, 48), "{'descr': '<f4', 'fortran_order': False, 'shape'");
  EXPECT_NE(b.find("'shape': (3,), }"), std::string::npos);
  std::string s = encode_npy(Tensor::from_vector<int64_t>(DType::kI64, {}, {5}));
  EXPECT_NE(s.find("'shape': (), }"), std::string::npos);
}

TEST(Npy, ReadsVersions2And3AndScalars) {
  for (int major : {1, 2, 3}) {
    auto t = parse(npy_bytes(major, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1), }", floats({1, 2})));
    ASSERT_TRUE(t.is_ok()) << major << t.status().to_string();
    EXPECT_EQ(t->dims(), (std::vector<int64_t>{2, 1}));
    EXPECT_EQ(t->span<float>()[1], 2.0f);
  }
  auto s = parse(npy_bytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }", floats({7})));
  ASSERT_TRUE(s.is_ok());
  EXPECT_EQ(s->rank(), 0);
  EXPECT_EQ(s->span<float>()[0], 7.0f);
}

TEST(Npy, RefusesFortranOrderObjectsBigEndianAndDamage) {
  auto msg = [](const std::string& b) { return parse(b).status().message(); };
  EXPECT_EQ(msg(npy_bytes(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", floats({1, 2}))),
            "'t.npy': Fortran-order arrays are not supported; save with np.ascontiguousarray");
  EXPECT_EQ(msg(npy_bytes(1, "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", "12345678")),
            "'t.npy': object arrays ('|O') are not supported");
  EXPECT_EQ(msg(npy_bytes(1, "{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }", floats({1}))),
            "'t.npy': big-endian data ('>f4') is not supported; save it little-endian");
  EXPECT_EQ(msg(npy_bytes(1, "{'descr': '<U3', 'fortran_order': False, 'shape': (1,), }", "abcdefghijkl")),
            "'t.npy': dtype '<U3' is not supported (numeric types and bool only)");
  EXPECT_EQ(msg(npy_bytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", floats({1, 2}))),
            "'t.npy' is not a usable .npy file: 8 bytes of data, shape [3] of f32 needs 12");
  EXPECT_EQ(msg("not a numpy file at all"), "'t.npy' is not a usable .npy file: it does not start with \"\\x93NUMPY\"");
  EXPECT_EQ(msg(npy_bytes(4, "{}", "")), "'t.npy': .npy format version 4.0 (kiln reads 1.0 to 3.0)");
  std::string good = npy_bytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", floats({1, 2}));
  for (size_t n = 0; n < good.size(); ++n) EXPECT_FALSE(parse(good.substr(0, n)).is_ok()) << n;
}

}  // namespace
}  // namespace kiln
