# Sourced by the CLI tests: `expect RC PATTERN -- COMMAND...` runs COMMAND and
# checks that its exit code is RC and its output matches PATTERN, counting
# failures in $failures.
failures=0

expect() {
  local want=$1 pattern=$2
  shift 3
  local out rc
  out=$("$@" 2>&1)
  rc=$?
  if [[ $rc -ne $want ]] || ! grep -qE -- "$pattern" <<<"$out"; then
    echo "FAIL: $* (exit $rc, wanted $want; output should match '$pattern'):"
    sed 's/^/    /' <<<"$out"
    failures=$((failures + 1))
  else
    echo "ok:   $*"
  fi
}
