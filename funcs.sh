wait_listen() { # wait_listen PORT PID: 0 once PORT accepts, 1 if PID exits or after 60 s
  local i
  for i in $(seq 1 3000); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
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
  echo "bench/run: Mosquitto did not start ($name, 5 ports tried)" >&2; exit 1
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
  [ "$ok" = 1 ] || { echo "bench/run: not online: pids $* (root $root)" >&2; exit 1; }
}
stop() { # stop PID: SIGTERM, wait
stop() { # stop PID: SIGTERM, wait
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  local keep=() p
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}
