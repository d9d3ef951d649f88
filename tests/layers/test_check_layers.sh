#!/usr/bin/env bash
# Self-test of scripts/check-layers: small synthetic trees (clean, then each
# fault planted in a copy), and optionally the real repository and a copy of it
# with a planted include cycle.
# Usage: bash tests/layers/test_check_layers.sh [REPO_ROOT]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
check="$here/../../scripts/check-layers"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0

ok() { passed=$((passed + 1)); echo "ok: $1"; }
bad() { failed=$((failed + 1)); echo "FAIL: $1"; printf '%s\n' "$out" | sed 's/^/    /'; }

# run DIR [ARGS...]: runs the checker, leaves its output in $out and status in $rc.
run() { local d=$1; shift; out=$("$check" --root "$d" "$@" 2>&1) && rc=0 || rc=$?; }

expect_pass() { run "$2"; if [ "$rc" -eq 0 ]; then ok "$1"; else bad "$1 (exit $rc, wanted 0)"; fi; }

# expect_fail NAME DIR [PATTERN...]: exit 1, and the output matches every pattern.
expect_fail() {
  local name=$1 d=$2 p; shift 2
  run "$d"
  if [ "$rc" -ne 1 ]; then bad "$name (exit $rc, wanted 1)"; return; fi
  for p in "$@"; do
    if ! grep -qE -- "$p" <<<"$out"; then bad "$name (no line matching '$p')"; return; fi
  done
  ok "$name"
}

# put FILE [LINE...]: writes the lines to FILE (relative to the current dir).
put() { local f=$1; shift; mkdir -p "$(dirname "$f")"; printf '%s\n' "$@" >"$f"; }

# The clean tree: proto <- common/core <- common/mqtt <- services/router.
make_clean() {
  mkdir -p "$1" && cd "$1"
  put proto/CMakeLists.txt 'add_library(ec_proto STATIC src/p.c)' \
    'target_include_directories(ec_proto PUBLIC include)' 'target_link_libraries(ec_proto PUBLIC m)'
  put proto/include/edgecascade/proto.h '#pragma once' '#include <stdint.h>'
  put proto/src/p_internal.h '#include "edgecascade/proto.h"'
  put proto/src/p.c '#include "p_internal.h"'
  put common/core/CMakeLists.txt 'add_library(ec_core STATIC err.c)' \
    '# a comment: target_link_libraries(ec_core PUBLIC ec_mqtt)' \
    'target_link_libraries(ec_core PUBLIC ec_proto Threads::Threads)'
  put common/core/include/edgecascade/err.h '#include "edgecascade/proto.h"'
  put common/core/err.c '#include "edgecascade/err.h"'
  put common/mqtt/CMakeLists.txt 'add_library(ec_mqtt STATIC mqtt.c)' \
    'target_link_libraries(ec_mqtt' '  PUBLIC ec_core paho_async PkgConfig::CURL)'
  put common/mqtt/include/edgecascade/mqtt.h '#include "edgecascade/err.h"'
  put common/mqtt/mqtt_internal.h '#include "edgecascade/mqtt.h"'
  put common/mqtt/mqtt.c '#include <stdio.h>' '#include "MQTTAsync.h"' '#include "mqtt_internal.h"'
  put services/router/CMakeLists.txt 'add_executable(edgecascade-router main.c)' \
    'target_link_libraries(edgecascade-router PRIVATE ec_mqtt)'
  put services/router/router.h '#include "edgecascade/mqtt.h"'
  put services/router/main.c '#include "router.h"' '#include "edgecascade/err.h"' \
    '#include "edgecascade/proto.h"'
  cd - >/dev/null
}

# variant NAME: a fresh copy of the clean tree in $tmp/NAME, made the current dir.
variant() { rm -rf "${tmp:?}/$1"; cp -r "$tmp/clean" "$tmp/$1"; cd "$tmp/$1"; }

make_clean "$tmp/clean"
expect_pass "clean tree passes" "$tmp/clean"
if grep -q 'no cycle, no upward include' <<<"$out"; then ok "clean tree prints the summary"; else bad "clean tree prints the summary"; fi
run "$tmp/clean" --verbose
if grep -q 'common/mqtt/mqtt.c:2: .*MQTTAsync.h' <<<"$out"; then ok "--verbose lists the unresolved include"; else bad "--verbose lists the unresolved include"; fi

variant build
put common/mqtt/build/x.h '#include "x.h"'
put build-debug/common/y.h '#include "y.h"'
expect_pass "build dirs are ignored" "$tmp/build"

variant stages
put services/router/STAGES 'stages: ingress cascade egress' 'wiring: pipeline'
put services/router/ingress.h '#include "router.h"'
put services/router/cascade.h '#include "router.h"'
put services/router/pipeline.c '#include "ingress.h"' '#include "cascade.h"'
expect_pass "the wiring may include every stage" "$tmp/stages"
put services/router/cascade.c '#include "cascade.h"' '#include "ingress.h"'
expect_fail "a stage including another stage fails" "$tmp/stages" 'cascade may not include the header of stage ingress'
put services/router/cascade.c '#include "cascade.h"'
put services/router/offline.c '#include "cascade.h"'
expect_fail "a helper including a stage fails" "$tmp/stages" 'offline may not include the header of stage cascade'

variant filecycle
put common/mqtt/a.h '#include "b.h"'
put common/mqtt/b.h '#pragma once' '#include "a.h"'
echo '#include "a.h"' >>common/mqtt/mqtt.c
expect_fail "file-level cycle fails" "$tmp/filecycle" 'include cycle'
expect_fail "the cycle names both files" "$tmp/filecycle" \
  'common/mqtt/a\.h:1: include cycle: common/mqtt/a\.h -> common/mqtt/b\.h -> common/mqtt/a\.h'

variant up_proto
echo '#include "edgecascade/err.h"' >>proto/src/p.c
expect_fail "proto including common/core fails" "$tmp/up_proto" \
  'proto/src/p\.c:2: upward include "edgecascade/err\.h"'

variant up_core
echo '#include "edgecascade/mqtt.h"' >>common/core/err.c
expect_fail "common/core including common/mqtt fails" "$tmp/up_core" \
  'common/core/err\.c:2: upward include "edgecascade/mqtt\.h"'

variant sideways
put common/store/CMakeLists.txt 'add_library(ec_store STATIC store.c)' \
  'target_link_libraries(ec_store PUBLIC ec_core)'
put common/store/store.c '#include "edgecascade/err.h"' '#include "edgecascade/mqtt.h"'
expect_fail "undeclared sideways include fails" "$tmp/sideways" \
  'common/store/store\.c:2: undeclared dependency common/store -> common/mqtt'
sed -i 's/PUBLIC ec_core/PUBLIC ec_core ec_mqtt/' common/store/CMakeLists.txt
expect_pass "sideways include passes once declared" "$tmp/sideways"
# Declared transitively: store -> ec_cache (common/cache) -> ec_mqtt.
put common/store/CMakeLists.txt 'add_library(ec_store STATIC store.c)' \
  'target_link_libraries(ec_store PRIVATE ec_cache)'
put common/cache/CMakeLists.txt 'add_library(ec_cache INTERFACE)' \
  'add_library(ec::cache ALIAS ec_cache)' 'target_link_libraries(ec_cache INTERFACE ec_mqtt)'
sed -i 's/PRIVATE ec_cache/PRIVATE ec::cache/' common/store/CMakeLists.txt
expect_pass "sideways include passes when declared transitively (through an alias)" "$tmp/sideways"

variant services
put services/cli/CMakeLists.txt 'add_executable(edgecascade cli.c)' 'target_link_libraries(edgecascade PRIVATE ec_core)'
put services/cli/cli.c '#include "router.h"'
expect_fail "undeclared include between services fails" "$tmp/services" \
  'services/cli/cli\.c:1: undeclared dependency services/cli -> services/router'

variant ambiguous
put common/other/CMakeLists.txt 'add_library(ec_other STATIC o.c)'
put common/other/include/edgecascade/mqtt.h '#pragma once'
put common/other/o.c '#include "edgecascade/mqtt.h"'
expect_fail "a header name in two components is ambiguous" "$tmp/ambiguous" \
  'services/router/router\.h:1: ambiguous include "edgecascade/mqtt\.h"'

variant compcycle
for x in a b; do
  y=$([ $x = a ] && echo b || echo a)
  put common/$x/CMakeLists.txt "add_library(ec_$x STATIC $x.c)" "target_link_libraries(ec_$x PUBLIC ec_$y ec_core)"
  put common/$x/include/edgecascade/$x.h '#include "edgecascade/err.h"'
  put common/$x/$x.c "#include \"edgecascade/$x.h\"" "#include \"edgecascade/$y.h\""
done
expect_fail "component cycle fails although declared" "$tmp/compcycle" \
  'component cycle: common/a -> common/b -> common/a'
if grep -qE 'undeclared|include cycle' <<<"$out"; then bad "component cycle is the only problem"; else ok "component cycle is the only problem"; fi

# The real repository, if given and already in the new layout.
repo=${1:-}
if [ -z "$repo" ]; then
  echo "skip: no repository given (usage: $0 REPO_ROOT)"
elif [ ! -d "$repo/common/core" ]; then
  echo "skip: $repo has the old layout (no common/core)"
else
  expect_pass "the real tree passes" "$repo"
  mkdir "$tmp/real"
  cp -r "$repo/proto" "$repo/common" "$repo/services" "$tmp/real/"
  # Plant a cycle: the first header H including a header T of the tree; T gets
  # an include of H back (a path relative to T, so it resolves from T's folder).
  planted=""
  while IFS= read -r h && [ -z "$planted" ]; do
    for inc in $(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$h"); do
      t="$(dirname "$h")/$inc"
      [ -f "$t" ] || t=$(find "$tmp/real" -path "*/include/$inc" -type f | sort | head -n 1)
      if [ -n "$t" ] && [ -f "$t" ] && [ "$(realpath "$t")" != "$(realpath "$h")" ]; then
        echo "#include \"$(realpath --relative-to="$(dirname "$t")" "$h")\"" >>"$t"
        planted="$(basename "$h") <-> $(basename "$t")"
        break
      fi
    done
  done < <(find "$tmp/real" -name build -prune -o -name '*.h' -type f -print | sort)
  if [ -z "$planted" ]; then
    out="no header including another header of the tree"; bad "a cycle could be planted in the copy"
  else
    echo "planted: $planted"
    expect_fail "the copy with a planted cycle fails" "$tmp/real" 'include cycle'
  fi
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
