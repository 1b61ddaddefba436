// Byte counts as people read them: "512 B", "4.0 KiB", "97.5 MiB", "1.2 GiB".
#pragma once

#include <cstdint>
#include <string>

namespace kiln {

std::string format_bytes(uint64_t bytes);

}  // namespace kiln
