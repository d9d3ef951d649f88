#!/usr/bin/env bash
# `make lint`: cppcheck 2.10 and clang-tidy 14 over edgecascade's own C
# (common/, proto/, services/; not tests/, fuzz/, bench/: see .clang-tidy).
# The file list and flags come from a CMake compile database in BUILD
# (configured here, nothing is compiled). Suppressions: .cppcheck-suppressions
# and .clang-tidy (each with its reason) and inline NOLINT comments.
# Usage: scripts/lint.sh [BUILD]   (default build-lint)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-lint}
jobs=$(nproc)
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >/dev/null
mapfile -t files < <(python3 - "$build/compile_commands.json" <<'PY'
import json, os, sys
root = os.getcwd() + "/"
seen = set()
for e in json.load(open(sys.argv[1])):
    f = os.path.normpath(os.path.join(e["directory"], e["file"]))
    rel = f[len(root):] if f.startswith(root) else f
    if rel.split("/")[0] in ("common", "proto", "services") and rel not in seen:
        seen.add(rel)
        print(rel)
PY
)
echo "lint: ${#files[@]} files"

status=0
echo "lint: cppcheck $(cppcheck --version | awk '{print $2}')"
cppcheck -q --std=c11 --enable=warning,performance,portability --inline-suppr \
  --suppressions-list=.cppcheck-suppressions --error-exitcode=1 -j"$jobs" \
  -D__GNUC__ -DEC_VERSION='"0"' $(for d in proto common/*/; do printf -- '-I %s/include ' "${d%/}"; done) \
  $(for d in common/*/; do printf -- '-I %s ' "${d%/}"; done)-I proto/src -I services/router "${files[@]}" || status=1

echo "lint: clang-tidy $(clang-tidy --version | sed -n 's/.*version \([0-9.]*\).*/\1/p')"
printf '%s\n' "${files[@]}" |
  xargs -n4 -P"$jobs" clang-tidy -p "$build" --quiet 2>/dev/null >"$build/clang-tidy.log" || status=1
grep -E 'warning:|error:' -A3 "$build/clang-tidy.log" || true
[ $status -eq 0 ] && echo "lint: clean"
exit $status
