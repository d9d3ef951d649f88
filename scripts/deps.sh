#!/usr/bin/env bash
# Installs the Debian 12 packages edgecascade needs, only those missing.
# As root it runs apt-get; otherwise it prints the exact command and fails.
set -euo pipefail

PKGS=(build-essential cmake pkg-config
      libpaho-mqtt-dev libmsgpack-dev libsqlite3-dev libcurl4-openssl-dev libssl-dev
      libcmocka-dev libjansson-dev libcjson-dev libyaml-dev libmicrohttpd-dev
      mosquitto mosquitto-clients sqlite3
      clang libclang-rt-14-dev cppcheck clang-tidy valgrind python3
      chromium nodejs)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# npm (the dashboard's browser test installs playwright-core with `npm ci`):
# Debian's package, unless the installed Node.js brings its own (NodeSource's
# nodejs does, and conflicts with Debian's npm).
if ! command -v npm >/dev/null 2>&1; then
  missing+=(npm)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "edgecascade needs these Debian packages; run as root:" >&2
  echo "  apt-get update && apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
# The packaged broker starts a system-wide instance on :1883; edgecascade's
# tests and demo start their own on a free port, so that one is not needed.
