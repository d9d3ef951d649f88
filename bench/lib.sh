# bench/lib.sh: what bench/run and bench/instr share (sourced, not run).
# shellcheck shell=bash
# Expects ROOT, BIN and PROG (the script's name, for messages) to be set;
# bench_begin sets RUN (a scratch directory), PIDS (what to stop at exit) and
# LG (the load generator).
log() { echo "bench: $*" >&2; }

cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ -n "${EC_BENCH_KEEP:-}" ]; then echo "bench: files kept in $RUN" >&2; else rm -rf "$RUN"; fi
}
bench_begin() {
  RUN=$(mktemp -d /tmp/ec-bench-XXXXXX)
  PIDS=()
  LG=("$BIN/ec_loadgen")
  trap cleanup EXIT
  trap 'exit 130' INT TERM
}

# Ports as the integration harness picks them: the simulator binds port 0 and
# reports its port; Mosquitto cannot, so it gets a port the kernel has just
# given out (ec_loadgen free-port binds port 0 and closes it), is waited for
# as long as it is alive (a busy machine can take seconds to start it), and
# is started again on a new port if it exits (the port was taken meanwhile).
# Whether the port accepts a connection is not enough: another program may
# hold it; the listening socket must be Mosquitto's own.
owns_port() { # owns_port PID PORT: PID holds a socket listening on PORT (/proc/net/tcp)
  local hex inode
  hex=$(printf ':%04X' "$2")
  for inode in $(awk -v h="$hex" '$4 == "0A" && substr($2, length($2) - 4) == h { print $10 }' /proc/net/tcp); do
    ls -l "/proc/$1/fd" 2>/dev/null | grep -q "socket:\[$inode\]" && return 0
  done
  return 1
}
wait_listen() { # wait_listen PORT PID: 0 once PID listens on PORT, 1 if PID exits or after ~60 s
  local i
  for i in $(seq 1 3000); do
    owns_port "$2" "$1" && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.02
  done
  return 1
}
start_broker() { # start_broker NAME "CONFIG LINES": sets BROKER_PORT and BROKER_PID
  local name=$1 extra=$2 port pid try
  for try in 1 2 3 4 5; do
    port=$("$BIN/ec_loadgen" free-port)
    printf 'listener %s 127.0.0.1\n%s\n' "$port" "$extra" > "$RUN/$name.conf"
    /usr/sbin/mosquitto -c "$RUN/$name.conf" 2> "$RUN/$name.log" &
    pid=$!; PIDS+=("$pid")
    if wait_listen "$port" "$pid"; then BROKER_PORT=$port; BROKER_PID=$pid; return 0; fi
    stop "$pid"
    log "$name: Mosquitto did not start on port $port (try $try): $(tail -n 1 "$RUN/$name.log")"
  done
  echo "$PROG: Mosquitto did not start ($name, 5 ports tried)" >&2; exit 1
}
# await_online URI ROOT PID...: until each PID's retained online status has
# arrived (the services subscribe before they publish it), at most 60 s.
await_online() {
  local uri=$1 root=$2 f="$RUN/await.$RANDOM" w p ok=0
  shift 2
  "${LG[@]}" status --broker "$uri" --root "$root" > "$f" 2> /dev/null &
  w=$!; PIDS+=("$w")
  for _ in $(seq 1 3000); do
    ok=1
    for p in "$@"; do
      kill -0 "$p" 2>/dev/null || { ok=2; break 2; }
      awk -v p="$p" '$2 == p && $3 == "online" { f = 1 } END { exit !f }' "$f" || { ok=0; break; }
    done
    [ "$ok" = 1 ] && break
    sleep 0.02
  done
  stop "$w"
  [ "$ok" = 1 ] || { echo "$PROG: not online: pids $* (root $root)" >&2; exit 1; }
}
stop() { # stop PID: SIGTERM, wait
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  local keep=() p
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}
kb() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null || echo null; }

# start_sim [SCRIPT NAME]: the simulator (SCRIPT, default bench/sim-script.json:
# no added latency) on a port of its own choosing; sets SIM and SIM_PORT.
start_sim() {
  local script=${1:-$ROOT/bench/sim-script.json} name=${2:-sim}
  "$BIN/edgecascade-sim" --port 0 --port-file "$RUN/$name.port" --script "$script" \
      2> "$RUN/$name.log" &
  SIM=$!; PIDS+=("$SIM")
  for _ in $(seq 1 3000); do [ -s "$RUN/$name.port" ] && break; kill -0 "$SIM" 2>/dev/null || break; sleep 0.02; done
  [ -s "$RUN/$name.port" ] || { echo "$PROG: the simulator did not start" >&2; cat "$RUN/$name.log" >&2; exit 1; }
  SIM_PORT=$(cat "$RUN/$name.port")
}

# refusal_setup FILE ROOT: what a refusal is measured with. A second
# simulator whose local model takes 3 s (SLOW_SIM; SIM and SIM_PORT stay the
# first one's), and FILE: $RUN/edgecascade.yaml on topic root ROOT, its
# tiers on that simulator, its decision log $RUN/refuse.db, and
# router.max_pending 1, so that the one query admitted at a time holds the
# only place and every other one is answered "busy" at admission.
refusal_setup() {
  local file=$1 root=$2 sim=$SIM port=$SIM_PORT
  sed 's/"llama3.2-1b": {\([^}]*\)"latency_ms": 0}/"llama3.2-1b": {\1"latency_ms": 3000}/' \
      "$ROOT/bench/sim-script.json" > "$RUN/slow-script.json"
  grep -q '"latency_ms": 3000' "$RUN/slow-script.json" || { echo "$PROG: cannot slow the simulator" >&2; exit 1; }
  start_sim "$RUN/slow-script.json" slow-sim
  SLOW_SIM=$SIM
  sed -e "s|^topic_root: .*|topic_root: $root|" -e "s|$RUN/decisions.db|$RUN/refuse.db|" \
      -e "s|:$port/v1\$|:$SIM_PORT/v1|" "$RUN/edgecascade.yaml" > "$file"
  SIM=$sim; SIM_PORT=$port
  # The router block, if any, is the configuration's last (bench/instr's).
  if grep -q '^router:' "$file"; then printf '  max_pending: 1\n' >> "$file"
  else printf 'router:\n  max_pending: 1\n' >> "$file"; fi
}

# write_ec_config FILE URI ROOT: edgecascade's configuration for the bench
# (decision log in $RUN, two tiers on the simulator); needs SIM_PORT.
write_ec_config() {
  export EC_BENCH_OPENAI_KEY=sk-bench-not-a-real-key
  cat > "$1" <<YAML
site: bench
topic_root: $3
mqtt:
  broker: $2
store:
  path: $RUN/decisions.db
log:
  level: info
# The load generator repeats two prompts: with the answer cache on it would
# measure cache hits, not the cascade.
cache:
  enabled: false
tiers:
  - name: local
    provider: vllm
    model: llama3.2-1b
    base_url: http://127.0.0.1:$SIM_PORT/v1
    timeout_ms: 5000
  - name: cloud
    provider: openai
    model: gpt-4o-mini
    base_url: http://127.0.0.1:$SIM_PORT/v1
    api_key_env: EC_BENCH_OPENAI_KEY
    input_per_1m: 0.15
    output_per_1m: 0.60
    timeout_ms: 5000
YAML
}

# The tuned broker the pipelines are measured on: it never drops a QoS 1
# message (overload puts tens of thousands in flight).
BENCH_BROKER_CONF="allow_anonymous true
set_tcp_nodelay true
persistence false
max_queued_messages 1000000
max_inflight_messages 0
log_dest stderr
log_type error
log_type warning"
# What the fair null's local POSTs per query: byte for byte the body
# edgecascade-local sends for the bench's all-local prompt (captured from the
# simulator's /sim/received).
FAIR_BODY='{"model":"llama3.2-1b","messages":[{"role":"user","content":"Convert 150 psi to bar."}],"logprobs":true}'
