// kiln::FusedElementwise(X0, X1, ...) {ops, args, dtypes, constants}: a chain
// of elementwise ops evaluated per output element (the program is described
// in elementwise_program.h). The inputs broadcast together (numpy rules) to
// the output's shape; the output has the last instruction's dtype.
#include "ops/elementwise_program.h"
#include "ops/infer_util.h"
#include "ops/op_schema.h"

namespace kiln {
namespace {

Status infer_fused_elementwise(InferContext& ctx) {
  KILN_ASSIGN_OR_RETURN(ElementwiseProgram p, read_elementwise_program(ctx.node()));
  std::vector<const Shape*> shapes;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    const DType t = ctx.input_dtype(i);
    if (t != DType::kUndefined && !is_program_dtype(t))
      return invalid_model("FusedElementwise: input {} is {}; the inputs must be f32, f16 or bf16", i, dtype_name(t));
    shapes.push_back(&ctx.input_shape(i));
  }
  KILN_ASSIGN_OR_RETURN(Shape s, broadcast_shapes(shapes));
  ctx.set_output(0, p.output_dtype(), std::move(s));
  return Status::ok();
}

[[maybe_unused]] const bool registered = [] {
  OpRegistration(OpSchema{.domain = "kiln",
                          .name = "FusedElementwise",
                          .min_inputs = 1,
                          .max_inputs = -1,
                          .min_outputs = 1,
                          .max_outputs = 1,
                          .infer = infer_fused_elementwise,
                          .summary = "a chain of elementwise ops as one program; NVRTC-compiled on cuda"});
  return true;
}();

}  // namespace
}  // namespace kiln
