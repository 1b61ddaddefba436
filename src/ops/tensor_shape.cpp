// Tensor ops that rearrange shapes: Reshape, Shape, Size, Transpose, Concat,
// Split, Slice, Squeeze, Unsqueeze, Flatten, Expand, Tile, Range,
// ConstantOfShape. The shape arithmetic here keeps dims symbolic through the
// Shape -> Gather -> Concat -> Reshape chains exporters emit, so a model's
// "batch" and "seq" reach its outputs instead of turning into '?'.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include "ops/tensor_infer.h"

namespace kiln {
namespace {

constexpr int64_t kHugeIndex = int64_t(1) << 31;  // Slice ends at or past this mean "to the end"

// Input 0's symbolic contents, passed through unchanged (reshapes of 0-D/1-D shape values).
void forward_shape_value(InferContext& ctx) {
  if (auto v = ctx.input_dims_value(0); v && dtype_is_integer(ctx.input_dtype(0))) ctx.set_output_shape_value(0, *v);
}

// ---- Reshape ----

Status infer_reshape(InferContext& ctx) {
  const DType dtype = ctx.input_dtype(0);
  const Dims* in = known_dims(ctx, 0);
  auto target = shape_entries(ctx, 1);
  if (!target) {
    ctx.set_output(0, dtype, unknown_dims(static_length(ctx, 1)));
    return Status::ok();
  }
  if (auto ints = ctx.input_ints(1))
    for (int64_t v : *ints)
      if (v < -1) return invalid_model("Reshape: shape {} has an entry below -1", fmt::join(*ints, ","));
  const bool allow_zero = ctx.attr_int("allowzero", 0) != 0;
  Dims out = *target;
  int infer_at = -1;
  bool has_zero = false;
  for (size_t i = 0; i < out.size(); ++i) {
    if (is_minus_one(out[i])) {
      if (infer_at >= 0) return invalid_model("Reshape: shape {} has more than one -1", Shape(out).to_string());
      infer_at = static_cast<int>(i);
    } else if (out[i].is_fixed() && out[i].value == 0 && !allow_zero) {
      // 0 copies the input's dim at the same index.
      if (in && i >= in->size())
        return invalid_model("Reshape: shape entry {} is 0 but the input has rank {}", i, in->size());
      out[i] = in ? (*in)[i] : Dim::unknown();
    } else if (out[i].is_fixed() && out[i].value == 0) {
      has_zero = true;
    }
  }
  if (infer_at >= 0 && has_zero) return invalid_model("Reshape: allowzero=1 with both 0 and -1 in the shape");
  Dim total = in ? dims_product(*in, 0, in->size()) : Dim::unknown();
  if (infer_at >= 0) {
    Dim known(1);
    for (size_t i = 0; i < out.size(); ++i)
      if (static_cast<int>(i) != infer_at) known = dim_mul(known, out[i]);
    if (total.is_fixed() && known.is_fixed() && (known.value == 0 || total.value % known.value != 0))
      return invalid_model("Reshape: cannot infer the -1 of shape {}: the input has {} elements",
                           Shape(out).to_string(), total.value);
    out[static_cast<size_t>(infer_at)] = dim_div(total, known);
  } else {
    Dim got = dims_product(out, 0, out.size());
    if (total.is_fixed() && got.is_fixed() && total.value != got.value)
      return invalid_model("Reshape: shape {} has {} elements but the input has {}", Shape(out).to_string(), got.value,
                           total.value);
  }
  ctx.set_output(0, dtype, Shape(out));
  forward_shape_value(ctx);
  return Status::ok();
}

Status upgrade_reshape(UpgradeContext& ctx) {
  ctx.node().attrs.erase("consumed_inputs");
  ctx.move_ints_attr_to_input("shape", 1);
  return Status::ok();
}

// ---- Shape, Size ----

Status infer_shape(InferContext& ctx) {
  const Dims* in = known_dims(ctx, 0);
  if (!in) {
    ctx.set_output(0, DType::kI64, unknown_dims(1));
    return Status::ok();
  }
  auto rank = static_cast<int64_t>(in->size());
  auto clamp = [&](int64_t v) { return std::clamp(v < 0 ? v + rank : v, int64_t(0), rank); };
  int64_t start = clamp(ctx.attr_int("start", 0));
  int64_t end = clamp(ctx.attr_int("end", rank));
  Dims value;
  for (int64_t i = start; i < end; ++i) value.push_back((*in)[static_cast<size_t>(i)]);
  ctx.set_output(0, DType::kI64, Shape(Dims{Dim(static_cast<int64_t>(value.size()))}));
  ctx.set_output_shape_value(0, std::move(value));
  return Status::ok();
}

Status infer_size(InferContext& ctx) {
  ctx.set_output(0, DType::kI64, Shape(Dims{}));
  if (const Dims* in = known_dims(ctx, 0)) ctx.set_output_shape_value(0, Dims{dims_product(*in, 0, in->size())});
  return Status::ok();
}

// ---- Transpose ----

Status infer_transpose(InferContext& ctx) {
  const Dims* in = known_dims(ctx, 0);
  std::vector<int64_t> perm = ctx.attr_ints("perm");
  if (!in) {
    ctx.set_output(0, ctx.input_dtype(0), unknown_dims(perm.empty() ? -1 : static_cast<int64_t>(perm.size())));
    return Status::ok();
  }
  auto rank = static_cast<int64_t>(in->size());
  if (perm.empty())
    for (int64_t i = rank - 1; i >= 0; --i) perm.push_back(i);
  if (static_cast<int64_t>(perm.size()) != rank)
    return invalid_model("Transpose: perm has {} entries but the input has rank {}", perm.size(), rank);
  std::vector<bool> seen(static_cast<size_t>(rank), false);
  Dims out;
  for (int64_t p : perm) {
    KILN_ASSIGN_OR_RETURN(int64_t axis, normalize_axis(p, rank, "Transpose: perm entry"));
    if (seen[static_cast<size_t>(axis)])
      return invalid_model("Transpose: perm {} repeats axis {}", fmt::join(perm, ","), p);
    seen[static_cast<size_t>(axis)] = true;
    out.push_back((*in)[static_cast<size_t>(axis)]);
  }
  ctx.set_output(0, ctx.input_dtype(0), Shape(out));
  return Status::ok();
}

// ---- Concat ----

Status infer_concat(InferContext& ctx) {
  const Dims* first = nullptr;
  for (size_t i = 0; i < ctx.num_inputs() && !first; ++i) first = known_dims(ctx, i);
  if (!first) {
    ctx.set_output(0, ctx.input_dtype(0), Shape());
    return Status::ok();
  }
  auto rank = static_cast<int64_t>(first->size());
  if (!ctx.node().has_attr("axis")) return invalid_model("Concat: attribute 'axis' is required");
  KILN_ASSIGN_OR_RETURN(int64_t axis, normalize_axis(ctx.attr_int("axis", 0), rank, "Concat: axis"));
  Dims out = *first;
  out[static_cast<size_t>(axis)] = Dim(0);
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    const Dims* d = known_dims(ctx, i);
    if (!d) {
      out[static_cast<size_t>(axis)] = Dim::unknown();
      continue;
    }
    if (static_cast<int64_t>(d->size()) != rank)
      return invalid_model("Concat: input {} has rank {} but input 0 has rank {}", i, d->size(), rank);
    for (size_t k = 0; k < d->size(); ++k) {
      const Dim& x = (*d)[k];
      if (static_cast<int64_t>(k) == axis) {
        out[k] = out[k].is_unknown() ? out[k] : dim_add(out[k], x);
        continue;
      }
      if (out[k].is_fixed() && x.is_fixed() && out[k].value != x.value)
        return invalid_model("Concat: input {} has dim {} = {} but an earlier input has {}", i, k, x.value,
                             out[k].value);
      if (!out[k].is_fixed() && x.is_fixed()) out[k] = x;
    }
  }
  ctx.set_output(0, ctx.input_dtype(0), Shape(out));
  // Concatenated shape values (e.g. [batch] ++ [seq, 12, 64]) stay symbolic.
  if (rank == 1 && dtype_is_integer(ctx.input_dtype(0))) {
    Dims value;
    for (size_t i = 0; i < ctx.num_inputs(); ++i) {
      auto v = shape_entries(ctx, i);
      if (!v) return Status::ok();
      value.insert(value.end(), v->begin(), v->end());
    }
    ctx.set_output_shape_value(0, std::move(value));
  }
  return Status::ok();
}

Status upgrade_concat(UpgradeContext& ctx) {
  // Concat-1 defaulted axis to 1; later versions require it.
  if (!ctx.node().has_attr("axis")) ctx.node().attrs["axis"] = Attribute::of_int(1);
  return Status::ok();
}

// ---- Split ----

Status infer_split(InferContext& ctx) {
  const DType dtype = ctx.input_dtype(0);
  const Dims* in = known_dims(ctx, 0);
  const size_t n = ctx.num_outputs();
  if (!in) {
    for (size_t i = 0; i < n; ++i) ctx.set_output(i, dtype, Shape());
    return Status::ok();
  }
  KILN_ASSIGN_OR_RETURN(int64_t axis,
                        normalize_axis(ctx.attr_int("axis", 0), static_cast<int64_t>(in->size()), "Split: axis"));
  const Dim& whole = (*in)[static_cast<size_t>(axis)];
  std::vector<Dim> parts(n, Dim::unknown());
  if (ctx.has_input(1)) {
    if (auto split = ctx.input_ints(1)) {
      if (split->size() != n) return invalid_model("Split: 'split' has {} entries for {} outputs", split->size(), n);
      int64_t sum = 0;
      for (size_t i = 0; i < n; ++i) {
        if ((*split)[i] < 0) return invalid_model("Split: split entry {} is negative ({})", i, (*split)[i]);
        parts[i] = Dim((*split)[i]);
        sum += (*split)[i];
      }
      if (whole.is_fixed() && sum != whole.value)
        return invalid_model("Split: split sizes sum to {} but the axis has {}", sum, whole.value);
    }
  } else {
    int64_t num = ctx.attr_int("num_outputs", static_cast<int64_t>(n));
    if (num != static_cast<int64_t>(n) || num <= 0)
      return invalid_model("Split: num_outputs is {} but the node has {} outputs", num, n);
    if (whole.is_fixed()) {
      // Chunks of ceil(dim / n); the last one takes what is left.
      // A dim too small for n chunks leaves the parts unknown rather than failing
      // the build: it happens in If branches that are never taken; the kernel reports it.
      int64_t chunk = (whole.value + num - 1) / num;
      if (chunk * (num - 1) <= whole.value)
        for (size_t i = 0; i < n; ++i) parts[i] = Dim(i + 1 < n ? chunk : whole.value - chunk * (num - 1));
    } else {
      Dim part = dim_div(whole, Dim(num));  // exact only when the symbol divides (e.g. 3*hidden / 3)
      for (size_t i = 0; i < n; ++i) parts[i] = part;
    }
  }
  for (size_t i = 0; i < n; ++i) {
    Dims d = *in;
    d[static_cast<size_t>(axis)] = parts[i];
    ctx.set_output(i, dtype, Shape(d));
  }
  return Status::ok();
}

Status upgrade_split_13(UpgradeContext& ctx) {
  ctx.move_ints_attr_to_input("split", 1);
  return Status::ok();
}

Status upgrade_split_18(UpgradeContext& ctx) {
  // Before 18 a Split without sizes split evenly into as many parts as outputs.
  if (!ctx.node().input(1))
    ctx.node().attrs["num_outputs"] = Attribute::of_int(static_cast<int64_t>(ctx.node().outputs.size()));
  return Status::ok();
}

// ---- Slice ----

// One axis of a Slice with fixed parameters; ONNX's clamping rules.
struct SliceRange {
  int64_t start, end, step, length;
};

SliceRange slice_range(int64_t dim, int64_t start, int64_t end, int64_t step) {
  SliceRange r{start, end, step, 0};
  if (start < 0) start += dim;
  if (end < 0) end += dim;
  if (step > 0) {
    r.start = std::clamp<int64_t>(start, 0, dim);
    r.end = std::clamp<int64_t>(end, 0, dim);
    r.length = std::max<int64_t>(0, (r.end - r.start + step - 1) / step);
  } else if (dim > 0) {
    r.start = std::clamp<int64_t>(start, 0, dim - 1);
    r.end = std::clamp<int64_t>(end, -1, dim - 1);
    r.length = std::max<int64_t>(0, (r.start - r.end + (-step) - 1) / (-step));
  }
  return r;
}

// The sliced length of a symbolic dim. Symbolic starts and ends come from
// shapes, so they are taken as within [0, dim]; a fixed end at or past
// kHugeIndex means "to the end".
Dim slice_dim(const Dim& dim, const Dim& start, const Dim& end, int64_t step) {
  if (dim.is_fixed() && start.is_fixed() && end.is_fixed())
    return Dim(slice_range(dim.value, start.value, end.value, step).length);
  if (step != 1 || start.is_unknown() || end.is_unknown()) return Dim::unknown();
  bool to_end = end.is_fixed() && end.value >= kHugeIndex;
  if (start.is_fixed() && start.value < 0) return Dim::unknown();
  if (to_end) return dim_sub(dim, start);
  if (end.is_symbolic()) return dim_sub(end, start);
  return Dim::unknown();
}

Status infer_slice(InferContext& ctx) {
  const Dims* in = known_dims(ctx, 0);
  const DType dtype = ctx.input_dtype(0);
  if (!in) {
    ctx.set_output(0, dtype, Shape());
    return Status::ok();
  }
  auto rank = static_cast<int64_t>(in->size());
  auto starts = shape_entries(ctx, 1), ends = shape_entries(ctx, 2);
  std::optional<std::vector<int64_t>> axes, steps;
  if (ctx.has_input(3)) axes = ctx.input_ints(3);
  if (ctx.has_input(4)) steps = ctx.input_ints(4);
  // Exact starts/ends (the "-1" convention aside) when known as integers.
  auto istarts = ctx.input_ints(1), iends = ctx.input_ints(2);
  if (!starts || !ends || (ctx.has_input(3) && !axes) || (ctx.has_input(4) && !steps)) {
    ctx.set_output(0, dtype, unknown_dims(rank));
    return Status::ok();
  }
  if (starts->size() != ends->size())
    return invalid_model("Slice: starts has {} entries, ends {}", starts->size(), ends->size());
  size_t n = starts->size();
  if (!axes) {
    axes.emplace();
    for (size_t i = 0; i < n; ++i) axes->push_back(static_cast<int64_t>(i));
  }
  if (!steps) steps = std::vector<int64_t>(n, 1);
  if (axes->size() != n || steps->size() != n)
    return invalid_model("Slice: starts, ends, axes and steps must have one length, got {}, {}, {}, {}", n,
                         ends->size(), axes->size(), steps->size());
  Dims out = *in;
  std::vector<bool> seen(static_cast<size_t>(rank), false);
  for (size_t i = 0; i < n; ++i) {
    KILN_ASSIGN_OR_RETURN(int64_t axis, normalize_axis((*axes)[i], rank, "Slice: axis"));
    if (seen[static_cast<size_t>(axis)]) return invalid_model("Slice: axis {} appears twice", (*axes)[i]);
    seen[static_cast<size_t>(axis)] = true;
    if ((*steps)[i] == 0) return invalid_model("Slice: step {} is 0", i);
    Dim s = istarts ? Dim::unknown() : (*starts)[i], e = iends ? Dim::unknown() : (*ends)[i];
    if (is_minus_one(s)) s = Dim::unknown();  // a literal -1 inside a symbolic start
    if (is_minus_one(e)) e = Dim::unknown();
    const Dim& d = (*in)[static_cast<size_t>(axis)];
    // Negative fixed starts/ends are only known through the integer view.
    if (istarts) s = (*istarts)[i] >= 0 ? Dim((*istarts)[i]) : Dim::unknown();
    if (iends) e = (*iends)[i] >= 0 ? Dim(std::min((*iends)[i], kHugeIndex)) : Dim::unknown();
    if (d.is_fixed() && istarts && iends) {
      out[static_cast<size_t>(axis)] = Dim(slice_range(d.value, (*istarts)[i], (*iends)[i], (*steps)[i]).length);
    } else {
      out[static_cast<size_t>(axis)] = slice_dim(d, s, e, (*steps)[i]);
    }
  }
  ctx.set_output(0, dtype, Shape(out));
  // Slices of a shape value (shape[1:3]) keep their symbols.
  auto value = ctx.input_dims_value(0);
  if (value && rank == 1 && istarts && iends && dtype_is_integer(dtype)) {
    SliceRange r = slice_range(static_cast<int64_t>(value->size()), (*istarts)[0], (*iends)[0], (*steps)[0]);
    Dims picked;
    for (int64_t k = 0, at = r.start; k < r.length; ++k, at += r.step)
      picked.push_back((*value)[static_cast<size_t>(at)]);
    ctx.set_output_shape_value(0, std::move(picked));
  }
  return Status::ok();
}

Status upgrade_slice(UpgradeContext& ctx) {
  // Slice-1 kept starts/ends/axes as attributes; "axes" must land in slot 3.
  ctx.move_ints_attr_to_input("starts", 1);
  ctx.move_ints_attr_to_input("ends", 2);
  ctx.move_ints_attr_to_input("axes", 3);
  return Status::ok();
}

// ---- Squeeze, Unsqueeze, Flatten ----

Status infer_squeeze(InferContext& ctx) {
  const Dims* in = known_dims(ctx, 0);
  const DType dtype = ctx.input_dtype(0);
  std::optional<std::vector<int64_t>> axes;
  if (ctx.has_input(1)) {
    axes = ctx.input_ints(1);
    if (!axes) {
      ctx.set_output(0, dtype, Shape());
      return Status::ok();
    }
  }
  if (!in) {
    ctx.set_output(0, dtype, Shape());
    return Status::ok();
  }
  auto rank = static_cast<int64_t>(in->size());
  std::vector<bool> drop(static_cast<size_t>(rank), false);
  if (axes) {
    for (int64_t a : *axes) {
      KILN_ASSIGN_OR_RETURN(int64_t axis, normalize_axis(a, rank, "Squeeze: axis"));
      const Dim& d = (*in)[static_cast<size_t>(axis)];
      if (d.is_fixed() && d.value != 1) return invalid_model("Squeeze: axis {} has size {}, not 1", a, d.value);
      drop[static_cast<size_t>(axis)] = true;
    }
  } else {
    for (size_t k = 0; k < drop.size(); ++k) {
      const Dim& d = (*in)[k];
      if (!d.is_fixed()) {  // whether it is 1 is only known at run time
        ctx.set_output(0, dtype, Shape());
        return Status::ok();
      }
      drop[k] = d.value == 1;
    }
  }
  Dims out;
  for (size_t k = 0; k < drop.size(); ++k)
    if (!drop[k]) out.push_back((*in)[k]);
  ctx.set_output(0, dtype, Shape(out));
  forward_shape_value(ctx);
  return Status::ok();
}

Status infer_unsqueeze(InferContext& ctx) {
  const Dims* in = known_dims(ctx, 0);
  const DType dtype = ctx.input_dtype(0);
  auto axes = ctx.input_ints(1);
  if (!axes || !in) {
    int64_t len = static_length(ctx, 1);
    ctx.set_output(0, dtype, in && len >= 0 ? unknown_dims(static_cast<int64_t>(in->size()) + len) : Shape());
    return Status::ok();
  }
  auto out_rank = static_cast<int64_t>(in->size() + axes->size());
  std::vector<bool> is_new(static_cast<size_t>(out_rank), false);
  for (int64_t a : *axes) {
    KILN_ASSIGN_OR_RETURN(int64_t axis, normalize_axis(a, out_rank, "Unsqueeze: axis"));
    if (is_new[static_cast<size_t>(axis)]) return invalid_model("Unsqueeze: axis {} appears twice", a);
    is_new[static_cast<size_t>(axis)] = true;
  }
  Dims out;
  size_t next = 0;
  for (bool n : is_new) out.push_back(n ? Dim(1) : (*in)[next++]);
  ctx.set_output(0, dtype, Shape(out));
  forward_shape_value(ctx);
  return Status::ok();
}

Status upgrade_axes_attr(UpgradeContext& ctx) {
  ctx.move_ints_attr_to_input("axes", 1);
  return Status::ok();
}

Status infer_flatten(InferContext& ctx) {
  const Dims* in = known_dims(ctx, 0);
  if (!in) {
    ctx.set_output(0, ctx.input_dtype(0), unknown_dims(2));
    return Status::ok();
  }
  auto rank = static_cast<int64_t>(in->size());
  int64_t axis = ctx.attr_int("axis", 1);
  if (axis < -rank || axis > rank) return invalid_model("Flatten: axis {} is out of range for rank {}", axis, rank);
  if (axis < 0) axis += rank;
  auto a = static_cast<size_t>(axis);
  ctx.set_output(0, ctx.input_dtype(0), Shape(Dims{dims_product(*in, 0, a), dims_product(*in, a, in->size())}));
  return Status::ok();
}

// ---- Expand, Tile ----

Status infer_expand(InferContext& ctx) {
  const DType dtype = ctx.input_dtype(0);
  auto target = ctx.input_dims_value(1);
  if (!target || !known_dims(ctx, 0)) {
    int64_t len = static_length(ctx, 1);
    const Dims* in = known_dims(ctx, 0);
    ctx.set_output(0, dtype, in && len >= 0 ? unknown_dims(std::max<int64_t>(len, in->size())) : Shape());
    return Status::ok();
  }
  Shape t(*target);
  KILN_ASSIGN_OR_RETURN(Shape out, broadcast_shapes({&ctx.input_shape(0), &t}));
  ctx.set_output(0, dtype, std::move(out));
  return Status::ok();
}

Status infer_tile(InferContext& ctx) {
  const Dims* in = known_dims(ctx, 0);
  const DType dtype = ctx.input_dtype(0);
  if (!in) {
    ctx.set_output(0, dtype, unknown_dims(static_length(ctx, 1)));
    return Status::ok();
  }
  auto repeats = ctx.input_dims_value(1);
  if (!repeats) {
    ctx.set_output(0, dtype, unknown_dims(static_cast<int64_t>(in->size())));
    return Status::ok();
  }
  if (repeats->size() != in->size())
    return invalid_model("Tile: repeats has {} entries but the input has rank {}", repeats->size(), in->size());
  if (auto ints = ctx.input_ints(1))
    for (int64_t r : *ints)
      if (r < 0) return invalid_model("Tile: repeat {} is negative", r);
  Dims out;
  for (size_t k = 0; k < in->size(); ++k) out.push_back(dim_mul((*in)[k], (*repeats)[k]));
  ctx.set_output(0, dtype, Shape(out));
  return Status::ok();
}

// ---- Range, ConstantOfShape ----

Status infer_range(InferContext& ctx) {
  const DType dtype = ctx.input_dtype(0);
  for (size_t i = 0; i < 3; ++i) {
    if (ctx.input_dtype(i) != dtype)
      return invalid_model("Range: inputs must share one dtype, got {} and {}", dtype_name(dtype),
                           dtype_name(ctx.input_dtype(i)));
    // A one-element 1-D tensor is accepted as a scalar, as ONNX's reference does.
    if (const Dims* d = known_dims(ctx, i);
        d && (d->size() > 1 || (d->size() == 1 && (*d)[0].is_fixed() && (*d)[0] != Dim(1))))
      return invalid_model("Range: input {} must be a scalar, has shape {}", i, Shape(*d).to_string());
  }
  const Tensor *s = ctx.input_value(0), *l = ctx.input_value(1), *d = ctx.input_value(2);
  if (s && l && d) {
    double start = s->element_as_double(0), limit = l->element_as_double(0), delta = d->element_as_double(0);
    if (delta == 0) return invalid_model("Range: delta is 0");
    double n = std::ceil((limit - start) / delta);
    ctx.set_output(0, dtype, Shape(Dims{Dim(std::max<int64_t>(0, static_cast<int64_t>(n)))}));
    return Status::ok();
  }
  // Range(start, seq, 1) from a shape: its length stays symbolic.
  auto start = ctx.input_dims_value(0), limit = ctx.input_dims_value(1);
  auto delta = ctx.input_ints(2);
  Dim len = Dim::unknown();
  if (start && limit && delta && start->size() == 1 && limit->size() == 1 && delta->size() == 1 && (*delta)[0] == 1)
    len = dim_sub((*limit)[0], (*start)[0]);
  ctx.set_output(0, dtype, Shape(Dims{len}));
  return Status::ok();
}

Status infer_constant_of_shape(InferContext& ctx) {
  DType dtype = DType::kF32;
  if (const Attribute* v = ctx.node().attr("value")) {
    if (v->kind != Attribute::Kind::kTensor || v->t.numel() != 1)
      return invalid_model("ConstantOfShape: 'value' must be a one-element tensor");
    dtype = v->t.dtype();
  }
  auto dims = ctx.input_dims_value(0);
  if (!dims) {
    ctx.set_output(0, dtype, unknown_dims(static_length(ctx, 0)));
    return Status::ok();
  }
  if (auto ints = ctx.input_ints(0))
    for (int64_t x : *ints)
      if (x < 0) return invalid_model("ConstantOfShape: dim {} is negative", x);
  ctx.set_output(0, dtype, Shape(*dims));
  return Status::ok();
}

[[maybe_unused]] const bool registered = [] {
  OpRegistration(OpSchema{
      .name = "Reshape", .min_inputs = 2, .max_inputs = 2, .infer = infer_reshape, .upgrades = {{5, upgrade_reshape}}});
  OpRegistration(OpSchema{.name = "Shape", .min_inputs = 1, .max_inputs = 1, .infer = infer_shape});
  OpRegistration(OpSchema{.name = "Size", .min_inputs = 1, .max_inputs = 1, .infer = infer_size});
  OpRegistration(OpSchema{.name = "Transpose", .min_inputs = 1, .max_inputs = 1, .infer = infer_transpose});
  OpRegistration(OpSchema{
      .name = "Concat", .min_inputs = 1, .max_inputs = -1, .infer = infer_concat, .upgrades = {{4, upgrade_concat}}});
  OpRegistration(OpSchema{.name = "Split",
                          .min_inputs = 1,
                          .max_inputs = 2,
                          .min_outputs = 1,
                          .max_outputs = -1,
                          .infer = infer_split,
                          .upgrades = {{13, upgrade_split_13}, {18, upgrade_split_18}}});
  OpRegistration(OpSchema{
      .name = "Slice", .min_inputs = 3, .max_inputs = 5, .infer = infer_slice, .upgrades = {{10, upgrade_slice}}});
  OpRegistration(OpSchema{.name = "Squeeze",
                          .min_inputs = 1,
                          .max_inputs = 2,
                          .infer = infer_squeeze,
                          .upgrades = {{13, upgrade_axes_attr}}});
  OpRegistration(OpSchema{.name = "Unsqueeze",
                          .min_inputs = 1,
                          .max_inputs = 2,
                          .infer = infer_unsqueeze,
                          .upgrades = {{13, upgrade_axes_attr}}});
  OpRegistration(OpSchema{.name = "Flatten", .min_inputs = 1, .max_inputs = 1, .infer = infer_flatten});
  OpRegistration(OpSchema{.name = "Expand", .since_opset = 8, .min_inputs = 2, .max_inputs = 2, .infer = infer_expand});
  OpRegistration(OpSchema{.name = "Tile", .since_opset = 6, .min_inputs = 2, .max_inputs = 2, .infer = infer_tile});
  OpRegistration(OpSchema{.name = "Range", .since_opset = 11, .min_inputs = 3, .max_inputs = 3, .infer = infer_range});
  OpRegistration(OpSchema{
      .name = "ConstantOfShape", .since_opset = 9, .min_inputs = 1, .max_inputs = 1, .infer = infer_constant_of_shape});
  return true;
}();

}  // namespace

}  // namespace kiln
