#!/usr/bin/env bash
# Fails when a C++ source differs from clang-format's output, and names it.
set -euo pipefail
cd "$(dirname "$0")/.."
bad=()
while IFS= read -r f; do
  if ! clang-format --style=file --dry-run -Werror "$f" >/dev/null 2>&1; then bad+=("$f"); fi
done < <(git ls-files '*.cpp' '*.h' '*.cu' '*.cuh')
if ((${#bad[@]})); then
  echo "clang-format: these files need formatting (clang-format -i FILE):"
  printf '  %s\n' "${bad[@]}"
  exit 1
fi
echo "clang-format: all $(git ls-files '*.cpp' '*.h' '*.cu' '*.cuh' | wc -l) files formatted"
