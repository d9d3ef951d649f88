#!/bin/bash
# Generates a private CA and a server certificate for the broker's TLS
# listener. For a plant without its own PKI; with one, use its certificates.
#
#   make-certs.sh OUTDIR [NAME...]
#
# NAME: extra host names or IP addresses the broker is reached by (localhost
# and 127.0.0.1 are always included). Writes OUTDIR/ca.crt, ca.key,
# server.crt, server.key. Copy ca.crt to every client (mqtt.ca_file); keep
# ca.key offline. An existing CA in OUTDIR is reused, so a rerun with new
# names only reissues the server certificate.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 OUTDIR [NAME...]" >&2; exit 2; }
out=$1
shift
days=${EC_CERT_DAYS:-825}
mkdir -p "$out"
umask 077

san="DNS:localhost,IP:127.0.0.1"
for n in "$@"; do
    if [[ $n =~ ^[0-9.]+$ || $n == *:* ]]; then san="$san,IP:$n"; else san="$san,DNS:$n"; fi
done
cn=${1:-localhost}

if [ ! -f "$out/ca.key" ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$out/ca.key" -out "$out/ca.crt" -days 3650 \
        -subj "/O=edgecascade/CN=edgecascade broker CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
fi
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$out/server.key" -out "$out/server.csr" -subj "/O=edgecascade/CN=$cn" 2>/dev/null
openssl x509 -req -in "$out/server.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" \
    -CAcreateserial -out "$out/server.crt" -days "$days" \
    -extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' "$san") \
    2>/dev/null
rm -f "$out/server.csr"
chmod 644 "$out/ca.crt" "$out/server.crt"
# Mosquitto reads the key after dropping to its own user.
chmod 640 "$out/server.key"
echo "$out: ca.crt, server.crt ($san)"
