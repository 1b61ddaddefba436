// The ONNX importer's tensors (initializers, Constant in every form, external
// data), model-local functions and subgraphs.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "onnx_model_builder.h"
#include "support/file.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;
using onnxtest::diagnostics_text;
using onnxtest::ModelBuilder;
constexpr int kFloat = onnx::TensorProto::FLOAT;

// A model whose only output is initializer `t` (after `edit` changes it).
Expected<ImportResult> import_initializer(const onnx::TensorProto& t, const ImportOptions& options = {}) {
  ModelBuilder b;
  *b.graph().add_initializer() = t;
  b.output_untyped(t.name());
  return b.import(options);
}

TEST(ImportTensor, AbsurdDimsWithFourBytesOfRawDataDoNotAllocate) {
  onnx::TensorProto t = onnxtest::float_tensor("w", {int64_t(1) << 40}, {1});
  auto r = import_initializer(t);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(diagnostics_text(*r),
            "model: invalid model: initializer 'w': tensor 'w' has 4 bytes of raw_data but dims [1099511627776] of "
            "f32 need 4398046511104\n");
}

TEST(ImportTensor, AbsurdDimsWithoutAnyDataDoNotAllocate) {
  for (int dtype : {onnx::TensorProto::FLOAT, onnx::TensorProto::INT64, onnx::TensorProto::STRING,
                    onnx::TensorProto::UINT8, onnx::TensorProto::INT4, onnx::TensorProto::DOUBLE}) {
    onnx::TensorProto t;
    t.set_name("w");
    t.set_data_type(dtype);
    t.add_dims(int64_t(1) << 40);
    t.add_dims(1 << 10);
    auto r = import_initializer(t);
    ASSERT_TRUE(r.is_ok()) << dtype;
    ASSERT_FALSE(r->diagnostics.empty()) << dtype;
    EXPECT_EQ(r->diagnostics[0].message.rfind("initializer 'w': tensor 'w' has 0 values in ", 0), 0u)
        << r->diagnostics[0].message;
  }
}

TEST(ImportTensor, DimsWhoseProductOverflowsAreReported) {
  onnx::TensorProto t = onnxtest::float_tensor("w", {int64_t(1) << 40, int64_t(1) << 40}, {1});
  auto r = import_initializer(t);
  ASSERT_TRUE(r.is_ok());
  ASSERT_FALSE(r->diagnostics.empty());
  EXPECT_EQ(r->diagnostics[0].message, "initializer 'w': tensor 'w' dims [1099511627776,1099511627776] overflow");
}

TEST(ImportTensor, EmptyRawDataForDimsWhoseByteSizeOverflowsIsReported) {
  // 2^60 floats take 2^62 bytes; times 32 bits the count wraps size_t to 0.
  onnx::TensorProto t = onnxtest::float_tensor("w", {int64_t(1) << 40, int64_t(1) << 20}, {});
  t.set_raw_data("");
  auto r = import_initializer(t);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(diagnostics_text(*r),
            "model: invalid model: initializer 'w': tensor 'w' dims [1099511627776,1048576] overflow\n");
}

TEST(ImportTensor, RawDataSizeMismatchIsReported) {
  onnx::TensorProto t = onnxtest::float_tensor("w", {3}, {1, 2});
  auto r = import_initializer(t);
  ASSERT_TRUE(r.is_ok());
  ASSERT_FALSE(r->diagnostics.empty());
  EXPECT_EQ(r->diagnostics[0].message,
            "initializer 'w': tensor 'w' has 8 bytes of raw_data but dims [3] of f32 need 12");
}

TEST(ImportTensor, TypedFieldsAreRead) {
  onnx::TensorProto t;
  t.set_name("w");
  t.set_data_type(onnx::TensorProto::INT64);
  t.add_dims(2);
  t.add_int64_data(-7);
  t.add_int64_data(9);
  auto r = import_initializer(t);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(diagnostics_text(*r), "");
  const Value* w = r->model.graph->outputs.at(0);
  ASSERT_TRUE(w->constant);
  EXPECT_EQ(w->type.to_string(), "i64[2]");
  EXPECT_EQ(w->constant->data<int64_t>()[0], -7);
  EXPECT_EQ(w->constant->data<int64_t>()[1], 9);
}

TEST(ImportTensor, UnknownDataTypeIsUnsupported) {
  onnx::TensorProto t;
  t.set_name("w");
  t.set_data_type(99);
  auto r = import_initializer(t);
  ASSERT_TRUE(r.is_ok());
  ASSERT_FALSE(r->diagnostics.empty());
  EXPECT_EQ(r->diagnostics[0].reason, Diagnostic::Reason::kUnsupportedDType);
  EXPECT_EQ(r->diagnostics[0].message, "initializer 'w': tensor 'w' has data type 99, which kiln does not know");
}

// External data: a model.onnx next to weights.bin in a fresh folder.
class ExternalData : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           fmt::format("kiln_external_{}", ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    std::vector<float> w = {0, 0, 1, 2, 3, 4};  // two floats of padding, then the tensor
    ASSERT_TRUE(write_file((dir_ / "weights.bin").string(), w.data(), w.size() * sizeof(float)).is_ok());
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Imports a model whose initializer 'w' (f32[4]) lives in external data.
  Expected<ImportResult> import_with(const std::vector<std::pair<std::string, std::string>>& fields) {
    ModelBuilder b;
    auto* t = b.graph().add_initializer();
    t->set_name("w");
    t->set_data_type(kFloat);
    t->add_dims(4);
    t->set_data_location(onnx::TensorProto::EXTERNAL);
    for (const auto& [k, v] : fields) {
      auto* kv = t->add_external_data();
      kv->set_key(k);
      kv->set_value(v);
    }
    b.output("w", kFloat, {"4"});
    std::string path = (dir_ / "model.onnx").string();
    std::string bytes = b.bytes();
    Status st = write_file(path, bytes.data(), bytes.size());
    if (!st.is_ok()) return st;
    return import_onnx_file(path);
  }

  std::string weights() const { return (dir_ / "weights.bin").string(); }
  fs::path dir_;
};

TEST_F(ExternalData, TensorIsReadFromTheFileBesideTheModel) {
  auto r = import_with({{"location", "weights.bin"}, {"offset", "8"}, {"length", "16"}});
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(diagnostics_text(*r), "");
  const Value* w = r->model.graph->outputs.at(0);
  ASSERT_TRUE(w->constant);
  std::vector<float> got(w->constant->data<float>(), w->constant->data<float>() + 4);
  EXPECT_EQ(got, (std::vector<float>{1, 2, 3, 4}));
}

TEST_F(ExternalData, MissingFileIsReported) {
  auto r = import_with({{"location", "nothere.bin"}});
  ASSERT_TRUE(r.is_ok());
  ASSERT_FALSE(r->diagnostics.empty());
  EXPECT_EQ(r->diagnostics[0].message,
            fmt::format("initializer 'w': tensor 'w': external data file '{}' cannot be read: cannot open '{}': No "
                        "such file or directory",
                        (dir_ / "nothere.bin").string(), (dir_ / "nothere.bin").string()));
}

TEST_F(ExternalData, RangeOutsideTheFileIsReported) {
  auto r = import_with({{"location", "weights.bin"}, {"offset", "16"}, {"length", "16"}});
  ASSERT_TRUE(r.is_ok());
  ASSERT_FALSE(r->diagnostics.empty());
  EXPECT_EQ(r->diagnostics[0].message,
            fmt::format("initializer 'w': tensor 'w': external data [16, +16) is outside '{}' (24 bytes)", weights()));
}

TEST_F(ExternalData, HugeOffsetIsReported) {
  auto r = import_with({{"location", "weights.bin"}, {"offset", "9223372036854775807"}});
  ASSERT_TRUE(r.is_ok());
  ASSERT_FALSE(r->diagnostics.empty());
  EXPECT_EQ(r->diagnostics[0].message,
            fmt::format("initializer 'w': tensor 'w': external data [9223372036854775807, +16) is outside '{}' (24 "
                        "bytes)",
                        weights()));
}

TEST_F(ExternalData, NonNumericOffsetIsReported) {
  auto r = import_with({{"location", "weights.bin"}, {"offset", "8x"}});
  ASSERT_TRUE(r.is_ok());
  ASSERT_FALSE(r->diagnostics.empty());
  EXPECT_EQ(r->diagnostics[0].message,
            "initializer 'w': tensor 'w': external data field offset='8x' is not a non-negative integer");
}

TEST_F(ExternalData, LengthNotMatchingTheDimsIsReported) {
  auto r = import_with({{"location", "weights.bin"}, {"length", "12"}});
  ASSERT_TRUE(r.is_ok());
  ASSERT_FALSE(r->diagnostics.empty());
  EXPECT_EQ(r->diagnostics[0].message,
            "initializer 'w': tensor 'w': external data has 12 bytes but dims [4] of f32 need 16");
}

TEST_F(ExternalData, PathEscapingTheModelFolderIsRejected) {
  for (const char* loc : {"../weights.bin", "sub/../../weights.bin", "/etc/passwd"}) {
    auto r = import_with({{"location", loc}});
    ASSERT_TRUE(r.is_ok());
    ASSERT_FALSE(r->diagnostics.empty());
    EXPECT_EQ(r->diagnostics[0].message,
              fmt::format("initializer 'w': tensor 'w': external data location '{}' must be a relative path inside "
                          "the model's folder",
                          loc));
  }
}

TEST_F(ExternalData, LinkLeadingOutsideTheModelFolderIsRejected) {
  fs::path outside = dir_.parent_path() / (dir_.filename().string() + "_outside.bin");
  fs::copy_file(weights(), outside, fs::copy_options::overwrite_existing);
  fs::create_symlink(outside, dir_ / "link.bin");
  auto r = import_with({{"location", "link.bin"}, {"offset", "8"}});
  fs::remove(outside);
  ASSERT_TRUE(r.is_ok());
  ASSERT_FALSE(r->diagnostics.empty());
  EXPECT_EQ(r->diagnostics[0].message,
            "initializer 'w': tensor 'w': external data location 'link.bin' is a link that leads outside the model's "
            "folder");
}

TEST_F(ExternalData, LinkInsideTheModelFolderIsRead) {
  fs::create_symlink("weights.bin", dir_ / "link.bin");
  auto r = import_with({{"location", "link.bin"}, {"offset", "8"}});
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(diagnostics_text(*r), "");
}

TEST_F(ExternalData, FileNameWithTwoDotsInsideTheFolderIsRead) {
  fs::copy_file(weights(), dir_ / "model..weights");
  auto r = import_with({{"location", "model..weights"}, {"offset", "8"}});
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(diagnostics_text(*r), "");
}

TEST_F(ExternalData, UnalignedOffsetIsCopiedToAlignedStorage) {
  std::string bytes(1 + 16, '\0');
  float v[4] = {1, 2, 3, 4};
  std::memcpy(&bytes[1], v, sizeof v);
  ASSERT_TRUE(write_file((dir_ / "odd.bin").string(), bytes.data(), bytes.size()).is_ok());
  auto r = import_with({{"location", "odd.bin"}, {"offset", "1"}});
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(diagnostics_text(*r), "");
  const Tensor& t = *r->model.graph->outputs.at(0)->constant;
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw()) % alignof(float), 0u);
  EXPECT_EQ(t.data<float>()[3], 4.0f);
}

// Constant nodes: every value attribute becomes a constant value, no node.
Expected<ImportResult> import_constant(const std::function<void(onnx::NodeProto&)>& set) {
  ModelBuilder b;
  auto& n = b.node("Constant", {}, {"c"}, "const");
  set(n);
  b.output_untyped("c");
  return b.import();
}

std::string constant_text(const Expected<ImportResult>& r) {
  if (!r.is_ok()) return r.status().to_string();
  if (!r->ok()) return diagnostics_text(*r);
  const Value* c = r->model.graph->outputs.at(0);
  if (!c->constant) return "no constant";
  if (!r->model.graph->nodes().empty()) return "a node remains";
  const Tensor& t = *c->constant;
  std::string s = c->type.to_string() + "{";
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (i) s += ",";
    s += t.dtype() == DType::kString ? t.strings()[i] : fmt::format("{}", t.element_as_double(i));
  }
  return s + "}";
}

TEST(ImportConstant, EveryValueFormBecomesAConstant) {
  using namespace onnxtest;
  EXPECT_EQ(constant_text(import_constant([](auto& n) {
              attr_tensor(n, "value", float_tensor("", {2}, {1, 2}));
            })),
            "f32[2]{1,2}");
  EXPECT_EQ(constant_text(import_constant([](auto& n) { attr_float(n, "value_float", 2.5f); })), "f32[]{2.5}");
  EXPECT_EQ(constant_text(import_constant([](auto& n) { attr_floats(n, "value_floats", {1, 3}); })), "f32[2]{1,3}");
  EXPECT_EQ(constant_text(import_constant([](auto& n) { attr_int(n, "value_int", -4); })), "i64[]{-4}");
  EXPECT_EQ(constant_text(import_constant([](auto& n) { attr_ints(n, "value_ints", {5, 6, 7}); })), "i64[3]{5,6,7}");
  EXPECT_EQ(constant_text(import_constant([](auto& n) { attr_string(n, "value_string", "hi"); })), "string[]{hi}");
  EXPECT_EQ(constant_text(import_constant([](auto& n) {
              attr_strings(n, "value_strings", {"a", "b"});
            })),
            "string[2]{a,b}");
  EXPECT_EQ(constant_text(import_constant([](auto& n) {
              auto* a = n.add_attribute();
              a->set_name("sparse_value");
              a->set_type(onnx::AttributeProto::SPARSE_TENSOR);
              auto* sp = a->mutable_sparse_tensor();
              sp->add_dims(2);
              sp->add_dims(3);
              *sp->mutable_values() = float_tensor("v", {2}, {5, 6});
              auto* idx = sp->mutable_indices();
              idx->set_data_type(onnx::TensorProto::INT64);
              idx->add_dims(2);
              idx->add_int64_data(1);
              idx->add_int64_data(5);
            })),
            "f32[2,3]{0,5,0,0,0,6}");
}

TEST(ImportConstant, EmptyListsAreEmptyVectors) {
  using namespace onnxtest;
  EXPECT_EQ(constant_text(import_constant([](auto& n) { attr_ints(n, "value_ints", {}); })), "i64[0]{}");
  EXPECT_EQ(constant_text(import_constant([](auto& n) { attr_floats(n, "value_floats", {}); })), "f32[0]{}");
}

TEST(ImportConstant, NoValueOrTwoValuesAreReported) {
  using namespace onnxtest;
  EXPECT_EQ(
      constant_text(import_constant([](auto&) {})),
      "node 0 'const' (Constant, opset 17): invalid model: Constant must have exactly one value attribute, has 0\n");
  EXPECT_EQ(
      constant_text(import_constant([](auto& n) {
        attr_int(n, "value_int", 1);
        attr_float(n, "value_float", 1);
      })),
      "node 0 'const' (Constant, opset 17): invalid model: Constant must have exactly one value attribute, has 2\n");
}

TEST(ImportConstant, ValueOfTheWrongAttributeTypeIsReported) {
  using namespace onnxtest;
  EXPECT_EQ(constant_text(import_constant([](auto& n) { attr_int(n, "value_floats", 1); })),
            "node 0 'const' (Constant, opset 17): invalid model: Constant attribute 'value_floats' must be floats, "
            "not int\n");
  EXPECT_EQ(constant_text(import_constant([](auto& n) { attr_float(n, "value", 1); })),
            "node 0 'const' (Constant, opset 17): invalid model: Constant attribute 'value' must be tensor, not "
            "float\n");
}

TEST(ImportConstant, SparseWithoutValuesIsAllZeros) {
  EXPECT_EQ(constant_text(import_constant([](onnx::NodeProto& n) {
              auto* a = n.add_attribute();
              a->set_name("sparse_value");
              a->set_type(onnx::AttributeProto::SPARSE_TENSOR);
              auto* sp = a->mutable_sparse_tensor();
              sp->add_dims(2);
              *sp->mutable_values() = onnxtest::float_tensor("v", {0}, {});
              sp->mutable_indices()->set_data_type(onnx::TensorProto::INT64);
              sp->mutable_indices()->add_dims(0);
            })),
            "f32[2]{0,0}");
}

TEST(ImportConstant, SparseIndexOutOfRangeIsReported) {
  using namespace onnxtest;
  auto sparse = [](std::vector<int64_t> dims, std::vector<int64_t> indices, std::vector<int64_t> index_dims) {
    return [=](onnx::NodeProto& n) {
      auto* a = n.add_attribute();
      a->set_name("sparse_value");
      a->set_type(onnx::AttributeProto::SPARSE_TENSOR);
      auto* sp = a->mutable_sparse_tensor();
      for (int64_t d : dims) sp->add_dims(d);
      *sp->mutable_values() = float_tensor("v", {1}, {5});
      auto* idx = sp->mutable_indices();
      idx->set_data_type(onnx::TensorProto::INT64);
      for (int64_t d : index_dims) idx->add_dims(d);
      for (int64_t i : indices) idx->add_int64_data(i);
    };
  };
  EXPECT_EQ(constant_text(import_constant(sparse({2, 3}, {6}, {1}))),
            "node 0 'const' (Constant, opset 17): invalid model: sparse tensor index 6 is out of range\n");
  // Coordinates are checked one by one: (0, 4) of [2,3] must not wrap to (1, 1).
  EXPECT_EQ(constant_text(import_constant(sparse({2, 3}, {0, 4}, {1, 2}))),
            "node 0 'const' (Constant, opset 17): invalid model: sparse tensor index (0,4) is outside [2,3]\n");
  EXPECT_EQ(constant_text(import_constant(sparse({int64_t(1) << 40}, {0}, {1}))),
            "node 0 'const' (Constant, opset 17): invalid model: sparse tensor f32[1099511627776] would need "
            "4398046511104 bytes when made dense, over the limit of 1073741824\n");
}

}  // namespace
}  // namespace kiln
