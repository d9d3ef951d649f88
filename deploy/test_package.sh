#!/bin/bash
# ctest package.deb: builds the .deb with CPack into a temp dir and checks
# what dpkg would install: programs, config (as a conffile), units, user
# creation, and that Depends covers every shared library the programs load.
# usage: test_package.sh BUILD_DIR EXPECTED_DEB_NAME
set -euo pipefail
build=$1
deb_name=$2
tmp=$(mktemp -d /tmp/ec_test_package.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

(cd "$build" && cpack -G DEB -B "$tmp" >"$tmp/cpack.log" 2>&1) || { cat "$tmp/cpack.log"; fail "cpack"; }
deb=$tmp/$deb_name
[ -f "$deb" ] || { ls "$tmp"; fail "no $deb_name"; }

dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|' >"$tmp/files"
dpkg-deb -I "$deb" >"$tmp/info"
for f in /usr/bin/edgecascade /usr/bin/edgecascade-router /usr/bin/edgecascade-local \
         /usr/bin/edgecascade-relay /etc/edgecascade/edgecascade.yaml \
         /lib/systemd/system/edgecascade-router.service \
         /lib/systemd/system/edgecascade-local.service \
         /lib/systemd/system/edgecascade-relay.service \
         /lib/systemd/system/edgecascade.target /usr/lib/sysusers.d/edgecascade.conf \
         /usr/share/doc/edgecascade/examples/vllm.service \
         /usr/share/doc/edgecascade/examples/jetson-nano-4gb.yaml \
         /usr/share/doc/edgecascade/examples/rpi5-ollama.yaml \
         /usr/share/edgecascade/mosquitto/edgecascade.conf \
         /usr/share/edgecascade/mosquitto/make-users.sh \
         /usr/share/edgecascade/mosquitto/make-certs.sh; do
    grep -qx "$f" "$tmp/files" || fail "$f not in the package"
done
# The model server unit is an example, never an active unit.
! grep -q '^/lib/systemd/system/vllm.service$' "$tmp/files" || fail "vllm.service installed as a unit"

grep -q '^ Package: edgecascade$' "$tmp/info" || fail "Package"
grep -q "^ Architecture: $(dpkg --print-architecture)$" "$tmp/info" || fail "Architecture"
grep -q '^ Recommends: .*mosquitto' "$tmp/info" || fail "Recommends mosquitto"
for member in postinst prerm postrm conffiles; do
    grep -Eq "^ +[0-9]+ bytes, +[0-9]+ lines +\*? *$member" "$tmp/info" || fail "control member $member"
done
dpkg-deb -e "$deb" "$tmp/control"
grep -qx /etc/edgecascade/edgecascade.yaml "$tmp/control/conffiles" || fail "config not a conffile"
grep -q 'systemd-sysusers\|adduser' "$tmp/control/postinst" || fail "postinst creates no user"

# Every shared library the programs load comes from a package in Depends
# (Paho is static, so no libpaho-mqtt here).
depends=$(sed -n 's/^ Depends: //p' "$tmp/info")
echo "$depends" | grep -q paho && fail "Depends names Paho, which is linked statically"
dpkg-deb -x "$deb" "$tmp/root"
for b in edgecascade edgecascade-router edgecascade-local edgecascade-relay; do
    "$tmp/root/usr/bin/$b" --version >/dev/null || fail "$b --version"
    for lib in $(readelf -d "$tmp/root/usr/bin/$b" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
        path=$(ldd "$tmp/root/usr/bin/$b" | awk -v l="$lib" '$1 == l {print $3}')
        [ -n "$path" ] || fail "$b: $lib not found"
        pkg=""
        for cand in "$path" "${path#/usr}" "/usr$path" "$(readlink -f "$path")"; do
            pkg=$(dpkg -S "$cand" 2>/dev/null | head -1 | cut -d: -f1) && [ -n "$pkg" ] && break
        done
        [ -n "$pkg" ] || fail "$b: no package owns $path"
        echo ", $depends," | grep -Eq "[ ,]$pkg( \(|,)" || fail "$b needs $lib from $pkg, not in Depends: $depends"
    done
done

# The units start the binaries the package installs, as the package's user.
for s in router local relay; do
    u=$tmp/root/lib/systemd/system/edgecascade-$s.service
    grep -qx "ExecStart=/usr/bin/edgecascade-$s --config /etc/edgecascade/edgecascade.yaml" "$u" ||
        fail "$s: ExecStart"
    grep -qx 'User=edgecascade' "$u" || fail "$s: User"
    grep -qx 'StateDirectory=edgecascade' "$u" || fail "$s: StateDirectory"
    grep -qx 'Restart=on-failure' "$u" || fail "$s: Restart"
    grep -qx 'ProtectSystem=strict' "$u" || fail "$s: ProtectSystem"
    grep -qx 'NoNewPrivileges=yes' "$u" || fail "$s: NoNewPrivileges"
done
grep -q '^u edgecascade ' "$tmp/root/usr/lib/sysusers.d/edgecascade.conf" || fail "sysusers"
# The installed configuration loads.
"$tmp/root/usr/bin/edgecascade" config --check "$tmp/root/etc/edgecascade/edgecascade.yaml" \
    >/dev/null || fail "installed config does not load"
echo "ok: $deb_name ($(stat -c %s "$deb") bytes, $(wc -l <"$tmp/files") entries)"
