// `kiln inspect` on an engine file (see inspect_engine.cpp).
#pragma once

#include <string>

namespace kiln::cli {

// Prints what the engine at `path` holds; the exit code for the CLI.
int inspect_engine(const std::string& path, bool json);

}  // namespace kiln::cli
