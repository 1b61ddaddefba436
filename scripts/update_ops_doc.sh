#!/usr/bin/env bash
# Regenerates the op table in docs/ops.md from `kiln ops --markdown` (between
# the BEGIN/END markers); with --check, fails when the doc is out of date.
set -euo pipefail
cd "$(dirname "$0")/.."
kiln=${KILN:-build/kiln}
doc=docs/ops.md
table=$("$kiln" ops --markdown)
new=$(awk -v table="$table" '
  /<!-- BEGIN OP TABLE -->/ { print; print table; skip = 1; next }
  /<!-- END OP TABLE -->/ { skip = 0 }
  !skip { print }' "$doc")
if [[ ${1:-} == --check ]]; then
  if [[ "$new" != "$(cat "$doc")" ]]; then
    echo "docs/ops.md is out of date: run scripts/update_ops_doc.sh"
    diff <(echo "$new") "$doc" | head -20
    exit 1
  fi
  echo "docs/ops.md matches the op table"
  exit 0
fi
printf '%s\n' "$new" > "$doc"
