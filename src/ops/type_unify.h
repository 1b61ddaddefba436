// Joining the types a value may have on different paths (If branches, Loop
// iterations, the elements of a sequence): what is the same on every path is
// kept, what differs becomes unknown.
#pragma once

#include "ir/type.h"

namespace kiln {

// The most precise type that covers both `a` and `b`. A tensor type whose
// dtype is undefined stands for "nothing known" and yields the other type.
Type unify_types(const Type& a, const Type& b);

}  // namespace kiln
