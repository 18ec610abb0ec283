#!/usr/bin/env bash
# The quickstart on this machine: two Envoy sidecars running the configs in envoy/ (the same
# files docker-compose.yaml mounts), the order-processor app, then checkout sending 10 orders.
# Everything started here is stopped on exit, on Ctrl-C and on failure.
set -euo pipefail
cd "$(dirname "$0")/.."

ENVOY_BIN=${ENVOY_BIN:-.venv/bin/envoy}
PYTHON=${PYTHON:-.venv/bin/python}
RUN_DIR=.run/demo
mkdir -p "$RUN_DIR"
pids=()

cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() { echo "demo: $*" >&2; exit 1; }

# wait_for NAME PID PORT: until PORT accepts connections, or PID dies.
wait_for() {
  for _ in $(seq 1 200); do
    kill -0 "$2" 2>/dev/null || fail "$1 exited before it listened on $3 (see $RUN_DIR/$1.log)"
    (exec 3<>"/dev/tcp/127.0.0.1/$3") 2>/dev/null && return 0
    sleep 0.05
  done
  fail "$1 did not listen on port $3 within 10 s (see $RUN_DIR/$1.log)"
}

# run_app NAME CMD...: the app's output, line by line, prefixed as `dapr run -f` does.
run_app() {
  local name=$1; shift
  "$@" > >(sed -u "s/^/== APP - $name == /") 2> >(sed -u "s/^/== APP - $name == /" >&2) &
  pids+=($!)
}

for sidecar in checkout order-processor; do
  "$ENVOY_BIN" -c "envoy/$sidecar-sidecar.yaml" --disable-hot-restart --concurrency 1 \
    --log-level warn > "$RUN_DIR/$sidecar-sidecar.log" 2>&1 &
  pids+=($!)
  echo "started $sidecar's sidecar (Envoy, pid $!), log: $RUN_DIR/$sidecar-sidecar.log"
done
wait_for checkout-sidecar "${pids[0]}" 3500
wait_for order-processor-sidecar "${pids[1]}" 50003

FLASK_SKIP_DOTENV=1 APP_ID=order-processor APP_PORT=6001 DAPR_HTTP_PORT=3501 \
  run_app order-processor "$PYTHON" -u samples/order-processor/app.py
wait_for order-processor "${pids[2]}" 6001

status=0
APP_ID=checkout DAPR_HTTP_PORT=3500 \
  "$PYTHON" -u samples/checkout/app.py > >(sed -u "s/^/== APP - checkout == /") 2>&1 || status=$?
sleep 0.2  # let the last "Order received" line through before stopping the apps
exit $status
