// kiln's public API in one include: Status/Expected, dtypes, the builder and
// the runtime. A deployment that only runs engines needs kiln/runtime.h.
#pragma once

#include "kiln/builder.h"
#include "kiln/device.h"
#include "kiln/dtype.h"
#include "kiln/runtime.h"
#include "kiln/status.h"
