#!/usr/bin/env bash
# A performance gate on one machine: start the simulated LLM provider and the
# agent service on loopback, drive a short Locust load, then judge it against
# the scenario's budget (and a baseline, when there is one).
#
#   examples/ci/gate.sh [OUT_DIR]          # exit code: the gate's (0 pass, 1 fail, 2 bad input)
#
# Settings, from the environment (defaults in brackets):
#   PARABENCH        the parabench command [parabench]
#   SCENARIO         scenario to serve and load [research_assistant]
#   SCENARIO_FILE    its file [scenarios/$SCENARIO.yaml if it exists, else the bundled name]
#   VARIANTS         variants the load alternates [parallel sequential]
#   BUDGET           budget file [scenarios/$SCENARIO.budget.yaml]
#   BASELINE         baseline file or run dir to compare with; skipped when unset or missing
#   UPDATE_BASELINE  write this run as a baseline here, if it passes (on purpose only)
#   TIME_SCALE       multiplier on every simulated wait [0.1: runs 10x faster than real]
#   USERS, DURATION  concurrent users and seconds of load [10, 60]
#   WARMUP           seconds of load before the measured one, discarded [5]
#   SEED             seed of every run's draws [1]
#   SIM_PORT, SERVICE_PORT  loopback ports [8001, 8000]
#
# Writes to OUT_DIR [reports/ci]: samples.jsonl (client side), spans.jsonl (the
# service's), Locust's reports, gate.md (for a pull-request comment), gate.xml
# (JUnit), and the servers' logs.
set -euo pipefail

OUT=${1:-reports/ci}
PARABENCH=${PARABENCH:-parabench}
SCENARIO=${SCENARIO:-research_assistant}
# A path, not a name: `pip install .` installs the package, not the scenarios/ folder.
SCENARIO_FILE=${SCENARIO_FILE:-scenarios/$SCENARIO.yaml}
[ -f "$SCENARIO_FILE" ] || SCENARIO_FILE=$SCENARIO
VARIANTS=${VARIANTS:-parallel sequential}
BUDGET=${BUDGET:-scenarios/$SCENARIO.budget.yaml}
TIME_SCALE=${TIME_SCALE:-0.1}
USERS=${USERS:-10}
DURATION=${DURATION:-60}
WARMUP=${WARMUP:-5}
SEED=${SEED:-1}
SIM_PORT=${SIM_PORT:-8001}
SERVICE_PORT=${SERVICE_PORT:-8000}
SERVICE=http://127.0.0.1:$SERVICE_PORT

mkdir -p "$OUT"
rm -f "$OUT/spans.jsonl"
pids=()
cleanup() {
  # Stop only what this script started, by process id.
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

wait_healthy() {  # URL NAME LOG
  for _ in $(seq 1 150); do
    if curl -fsS "$1/healthz" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  echo "gate.sh: $2 did not answer $1/healthz within 30 s; its log:" >&2
  cat "$3" >&2
  exit 2
}

# 1. The OpenAI-compatible simulator, and the agent service calling it. The
#    service writes its spans into the run dir: the gate reads the time scale,
#    executor efficiency and branch costs from them.
"$PARABENCH" simulator --port "$SIM_PORT" --time-scale "$TIME_SCALE" >"$OUT/simulator.log" 2>&1 &
pids+=($!)
wait_healthy "http://127.0.0.1:$SIM_PORT" simulator "$OUT/simulator.log"
"$PARABENCH" serve --port "$SERVICE_PORT" --scenario "$SCENARIO_FILE" --time-scale "$TIME_SCALE" \
  --provider openai --base-url "http://127.0.0.1:$SIM_PORT/v1" \
  --spans "$OUT/spans.jsonl" >"$OUT/service.log" 2>&1 &
service_pid=$!
pids+=("$service_pid")
wait_healthy "$SERVICE" service "$OUT/service.log"

# 2. A warm-up, then a short load: every user runs one agent run after another.
#    The warm-up's runs (first connections, cold caches, all users starting at
#    once) are written elsewhere and not judged.
variant_args=()
for v in $VARIANTS; do variant_args+=(--variant "$v"); done
if [ "$WARMUP" != 0 ]; then
  "$PARABENCH" load --host "$SERVICE" --scenario "$SCENARIO" "${variant_args[@]}" \
    --users "$USERS" --duration "$WARMUP" --out "$OUT/warmup" >/dev/null
fi
"$PARABENCH" load --host "$SERVICE" --scenario "$SCENARIO" "${variant_args[@]}" \
  --users "$USERS" --duration "$DURATION" --seed "$SEED" --out "$OUT"

# 3. Stop the service (Ctrl-C): it flushes its spans before it exits. They
#    cover the warm-up too; the gate takes from them only the time scale,
#    executor efficiency and branch costs.
kill -INT "$service_pid"
wait "$service_pid" || true

# 4. The gate. Its exit code is this script's.
gate_args=(--budget "$BUDGET" --current "$OUT" --markdown "$OUT/gate.md" --junit "$OUT/gate.xml")
if [ -n "${BASELINE:-}" ] && [ -e "$BASELINE" ]; then
  gate_args+=(--baseline "$BASELINE")
elif [ -n "${BASELINE:-}" ]; then
  echo "gate.sh: no baseline at $BASELINE; checking the budget's limits only" >&2
fi
if [ -n "${UPDATE_BASELINE:-}" ]; then gate_args+=(--update-baseline "$UPDATE_BASELINE"); fi
"$PARABENCH" gate "${gate_args[@]}"
