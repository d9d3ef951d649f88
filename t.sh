set -euo pipefail
BIN=/tmp/sbtest/bin; RUN=/tmp/sbtest; PIDS=()
log() { echo "bench: $*" >&2; }
source /tmp/sbtest/funcs.sh
start_broker mosquitto "allow_anonymous true"
echo "started on $BROKER_PORT pid $BROKER_PID"; kill $BROKER_PID
