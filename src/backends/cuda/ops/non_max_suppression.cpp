// NonMaxSuppression (kernels/nms.cu). max_output_boxes_per_class,
// iou_threshold and score_threshold are read on the host while planning; the
// number of selected boxes depends on the data, so the layer declares the
// most it can select and stores the actual count, which the executor reads
// back (a stream sync).
#include "backends/cuda/cuda_kernel.h"
#include "backends/cuda/kernels/nms.cuh"
#include "backends/cuda/ops/norm_op_util.h"

namespace kiln::cuda {
namespace {

// The layer's parameters from its dims, attributes and host inputs (no data).
template <typename Query>
Expected<NmsParams> nms_params(const Node& node, const std::vector<int64_t>& boxes, const std::vector<int64_t>& scores,
                               const Query& host_input) {
  if (boxes.size() != 3 || boxes[2] != 4 || scores.size() != 3 || scores[0] != boxes[0] || scores[2] != boxes[1])
    return invalid_model("NonMaxSuppression: boxes {} and scores {} do not fit [B, S, 4] and [B, C, S]",
                         Shape::of(boxes).to_string(), Shape::of(scores).to_string());
  NmsParams p;
  p.batches = boxes[0], p.spatial = boxes[1], p.classes = scores[1];
  p.center_point_box = node.attr_int("center_point_box", 0) != 0;
  const Tensor* max_out = host_input(2);
  if (max_out && max_out->numel() > 0) {
    KILN_ASSIGN_OR_RETURN(std::vector<int64_t> m, max_out->to_i64_vector());
    p.max_per_class = m[0];
  }
  const Tensor* iou = host_input(3);
  p.iou_threshold = iou && iou->numel() > 0 ? iou->element_as_double(0) : 0.0;
  if (p.iou_threshold < 0 || p.iou_threshold > 1)
    return invalid_model("NonMaxSuppression: iou_threshold {} is outside [0, 1]", p.iou_threshold);
  const Tensor* score = host_input(4);
  p.has_score_threshold = score && score->numel() > 0;
  p.score_threshold = p.has_score_threshold ? score->element_as_double(0) : 0.0;
  return p;
}

Expected<NmsParams> query_params(const KernelQuery& q) {
  for (size_t i = 2; i < 5; ++i)
    if (q.has_input(i) && !q.host_input(i))
      return internal_error("NonMaxSuppression: input {} is not known on the host", i);
  return nms_params(q.node(), *q.input_dims(0), *q.input_dims(1), [&](size_t i) { return q.host_input(i); });
}

Status supports_nms(const Node& node) {
  KILN_RETURN_IF_ERROR(require_float(node, 0, "boxes"));
  KILN_RETURN_IF_ERROR(require_float(node, 1, "scores"));
  const DType m = input_dtype(node, 2);
  if (m != DType::kUndefined && m != DType::kI64 && m != DType::kI32)
    return unsupported("NonMaxSuppression: max_output_boxes_per_class of dtype {}", dtype_name(m));
  return Status::ok();
}

Expected<std::vector<std::vector<int64_t>>> nms_bound(const KernelQuery& q) {
  KILN_ASSIGN_OR_RETURN(NmsParams p, query_params(q));
  return std::vector<std::vector<int64_t>>{{p.batches * p.classes * nms_per_pair(p), 3}};
}

size_t nms_workspace(const KernelQuery& q) {
  auto p = query_params(q);
  return p ? nms_workspace_bytes(*p) : 0;
}

Status run_nms(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(NmsParams p, nms_params(ctx.node(), ctx.input(0).dims, ctx.input(1).dims,
                                                [&](size_t i) { return ctx.host_input(i); }));
  p.boxes_dtype = ctx.input(0).dtype, p.scores_dtype = ctx.input(1).dtype;
  p.boxes = ctx.input(0).data, p.scores = ctx.input(1).data;
  p.y = ctx.output(0).as<int64_t>();
  p.out_dims = ctx.output_dims();
  p.workspace = ctx.workspace(), p.workspace_bytes = ctx.workspace_bytes();
  return launch_nms(p, ctx.stream());
}

}  // namespace

KILN_CUDA_KERNEL("", "NonMaxSuppression",
                 {.run = run_nms,
                  .host_inputs = {2, 3, 4},
                  .workspace = nms_workspace,
                  .supports = supports_nms,
                  .max_output_dims = nms_bound});

}  // namespace kiln::cuda
