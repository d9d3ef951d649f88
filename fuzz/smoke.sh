#!/usr/bin/env bash
# Runs every harness in BUILD/fuzz for SECONDS seconds on a scratch copy of
# its seed corpus (fuzz/corpus/<name> stays as committed). A crash stops the
# run with the harness's report and the crashing input kept under
# BUILD/fuzz-artifacts/<name>/ (turn it into a cmocka regression test under
# tests/unit/, then fix). Usage: fuzz/smoke.sh BUILD [SECONDS]
set -euo pipefail
build=${1:?usage: fuzz/smoke.sh BUILD [SECONDS]}
secs=${2:-15}
here=$(cd "$(dirname "$0")" && pwd)
# Leaks are bugs here too; a decoder must also finish promptly on any input.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:symbolize=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
status=0
for exe in "$build"/fuzz/fuzz_*; do
  [ -x "$exe" ] || continue
  name=$(basename "$exe"); name=${name#fuzz_}
  work="$build/fuzz-work/$name"; art="$build/fuzz-artifacts/$name"
  rm -rf "$work"; mkdir -p "$work" "$art"
  dict=()
  [ -f "$here/dict/$name.dict" ] && dict=(-dict="$here/dict/$name.dict")
  if "$exe" "${dict[@]}" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
       -max_len=65536 -print_final_stats=1 -artifact_prefix="$art/" \
       "$work" "$here/corpus/$name" >"$build/fuzz-work/$name.log" 2>&1; then
    printf 'fuzz %-20s ok   %s\n' "$name" \
      "$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$build/fuzz-work/$name.log" | grep -o '[0-9]*$') runs"
  else
    printf 'fuzz %-20s FAILED (log: %s)\n' "$name" "$build/fuzz-work/$name.log"
    tail -n 60 "$build/fuzz-work/$name.log"
    ls -1 "$art"
    status=1
  fi
done
exit $status
