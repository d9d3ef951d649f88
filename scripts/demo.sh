#!/usr/bin/env bash
# `make demo`: a private Mosquitto on a free loopback port, the model simulator
# (or real endpoints, see below), the three services, the seed's industrial
# queries through MQTT, then the savings summary. Stops everything it started.
#
#   LOCAL_BASE_URL=http://127.0.0.1:8000/v1 LOCAL_MODEL=llama3.2-1b [LOCAL_PROVIDER=vllm|ollama]
#   OPENAI_API_KEY=...  [OPENAI_MODEL=gpt-4o-mini]
#   ANTHROPIC_API_KEY=... [ANTHROPIC_MODEL=claude-3-5-haiku-latest]
#   DEMO_HTTP_PORT=8080 (default: a free port)   DEMO_KEEP=1 (keep running for the dashboard)
set -euo pipefail
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN="$ROOT/$BUILD/bin"
RUN="$ROOT/demo-run"
rm -rf "$RUN" && mkdir -p "$RUN"
PIDS=()

cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

free_port() {
  local p
  for _ in $(seq 1 50); do
    p=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  echo "no free port found" >&2; exit 1
}

wait_port() {
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listening on port $1" >&2; return 1
}

MQTT_PORT=$(free_port)
HTTP_PORT=${DEMO_HTTP_PORT:-$(free_port)}
cat > "$RUN/mosquitto.conf" <<CONF
listener $MQTT_PORT 127.0.0.1
allow_anonymous true
set_tcp_nodelay true
persistence false
max_queued_messages 10000
log_dest stderr
CONF
/usr/sbin/mosquitto -c "$RUN/mosquitto.conf" 2> "$RUN/mosquitto.log" &
PIDS+=($!)
wait_port "$MQTT_PORT"

SIM_NEEDED=0
if [ -z "${LOCAL_BASE_URL:-}" ] || { [ -z "${OPENAI_API_KEY:-}" ] && [ -z "${ANTHROPIC_API_KEY:-}" ]; }; then
  SIM_NEEDED=1
  "$BIN/edgecascade-sim" --port 0 --port-file "$RUN/sim.port" \
      --script "$ROOT/deploy/sim-script.json" 2> "$RUN/sim.log" &
  PIDS+=($!)
  for _ in $(seq 1 100); do [ -s "$RUN/sim.port" ] && break; sleep 0.05; done
  SIM_PORT=$(cat "$RUN/sim.port")
fi

LOCAL_URL=${LOCAL_BASE_URL:-http://127.0.0.1:${SIM_PORT:-0}/v1}
LOCAL_MODEL=${LOCAL_MODEL:-llama3.2-1b}
LOCAL_PROVIDER=${LOCAL_PROVIDER:-vllm}
if [ -n "${OPENAI_API_KEY:-}" ]; then
  CLOUD="  - name: cloud
    provider: openai
    model: ${OPENAI_MODEL:-gpt-4o-mini}
    api_key_env: OPENAI_API_KEY
    input_per_1m: 0.15
    output_per_1m: 0.60"
  CLOUD_DESC="OpenAI ${OPENAI_MODEL:-gpt-4o-mini} (real)"
elif [ -n "${ANTHROPIC_API_KEY:-}" ]; then
  CLOUD="  - name: cloud
    provider: anthropic
    model: ${ANTHROPIC_MODEL:-claude-3-5-haiku-latest}
    api_key_env: ANTHROPIC_API_KEY
    input_per_1m: 0.80
    output_per_1m: 4.00"
  CLOUD_DESC="Anthropic ${ANTHROPIC_MODEL:-claude-3-5-haiku-latest} (real)"
else
  export EC_DEMO_SIM_KEY=sim-demo-key
  CLOUD="  - name: cloud
    provider: openai
    model: gpt-4o-mini
    base_url: http://127.0.0.1:${SIM_PORT}/v1
    api_key_env: EC_DEMO_SIM_KEY
    input_per_1m: 0.15
    output_per_1m: 0.60"
  CLOUD_DESC="gpt-4o-mini (SIMULATED by edgecascade-sim)"
fi
[ -n "${LOCAL_BASE_URL:-}" ] && LOCAL_DESC="$LOCAL_MODEL at $LOCAL_BASE_URL (real)" \
  || LOCAL_DESC="$LOCAL_MODEL (SIMULATED by edgecascade-sim)"

cat > "$RUN/edgecascade.yaml" <<CONF
site: demo
mqtt:
  broker: tcp://127.0.0.1:$MQTT_PORT
store:
  path: $RUN/decisions.db
stats:
  interval_s: 2
http:
  port: $HTTP_PORT
tiers:
  - name: local
    provider: $LOCAL_PROVIDER
    model: $LOCAL_MODEL
    base_url: $LOCAL_URL
$CLOUD
CONF

for svc in router local relay; do
  "$BIN/edgecascade-$svc" --config "$RUN/edgecascade.yaml" 2> "$RUN/$svc.log" &
  PIDS+=($!)
done
for svc in router local relay; do
  if ! mosquitto_sub -p "$MQTT_PORT" -t "edgecascade/demo/status/$svc" -C 1 -W 10 \
       | grep -q '"online"'; then
    echo "edgecascade-$svc did not start; its log:" >&2; tail -20 "$RUN/$svc.log" >&2; exit 1
  fi
done

echo "edgecascade demo"
echo "  broker  tcp://127.0.0.1:$MQTT_PORT (private Mosquitto)"
echo "  local   $LOCAL_DESC"
echo "  cloud   $CLOUD_DESC"
echo "  dashboard  http://127.0.0.1:$HTTP_PORT/   (metrics: /metrics, stats: /api/stats)"
echo

CLI=("$BIN/edgecascade" --config "$RUN/edgecascade.yaml")
QUERIES=(
  "Part #4471 measured 25.04 mm, spec 25.00 ± 0.05 mm. Pass or fail?"
  "Motor M-12 runs at 85 °C with 12 mm/s RMS vibration. Analyse the likely failure mode and recommend actions."
  "What is the normal blood pressure range for an adult?"
  "Convert 150 psi to bar."
  "Draft a root-cause analysis for intermittent PLC watchdog timeouts on a Profinet line with 40 nodes."
  "Is 0.2 mm runout on a 50 mm shaft acceptable for a 3000 rpm pump?"
)
i=0
for q in "${QUERIES[@]}"; do
  i=$((i + 1))
  echo "[$i] $q"
  "${CLI[@]}" query "$q" | sed 's/^/    /'
  echo
done

echo "A JSON query from a PLC gateway, with plain mosquitto_pub/mosquitto_sub (MQTT v5),"
echo "on <root>/query/plc-7 (the topic names the asker; a secured broker vouches for it):"
mosquitto_sub -p "$MQTT_PORT" -V mqttv5 -t "plc/7/answers" -C 1 -W 10 > "$RUN/plc.out" &
SUB=$!
sleep 0.3
mosquitto_pub -p "$MQTT_PORT" -V mqttv5 -t edgecascade/demo/query/plc-7 -q 1 \
  -D publish response-topic plc/7/answers -D publish correlation-data plc7-0042 \
  -m '{"id":"plc7-0042","prompt":"Convert 150 psi to bar.","source":"plc-7"}'
wait $SUB || true
echo "    $(cat "$RUN/plc.out")"
echo

sleep 0.3 # the decision log commits in small batches
"${CLI[@]}" stats
echo
echo "Decision log: $RUN/decisions.db   logs: $RUN/*.log"
echo "Stats topic:  mosquitto_sub -p $MQTT_PORT -t 'edgecascade/+/stats' -C 1"
if [ "${DEMO_KEEP:-0}" = 1 ]; then
  echo "Dashboard:    http://127.0.0.1:$HTTP_PORT/  (running until Ctrl-C)"
  while true; do sleep 1; done
else
  echo "Dashboard:    http://127.0.0.1:$HTTP_PORT/ was live during the run; DEMO_KEEP=1 make demo keeps it up"
fi
