#!/usr/bin/env bash
# A local Prefect stack for Airlock in one command: a Prefect server on PORT with its own
# PREFECT_HOME, the `airlock` process work pool, the crash-detection automations, every deployment
# in prefect.yaml, and a process worker. Ctrl-C (or SIGTERM) stops the worker and the server.
#
#   deployments/local_stack.sh [PORT] [ENV_FILE]      # PORT defaults to 4200
#
# ENV_FILE (e.g. deployments/dev.env) is read first; variables already set in the environment and
# these win over the defaults below:
#   AIRLOCK_STACK_DIR     where the stack keeps its state and logs (default: .airlock/stack-PORT)
#   PREFECT_HOME          Prefect's home, SQLite database included (default: STACK_DIR/prefect)
#   AIRLOCK_HOME          Airlock's state folder for the flow runs (default: STACK_DIR/airlock)
#   AIRLOCK_PROJECT_DIR   the project folder the worker runs flows from (default: this checkout)
#   AIRLOCK_WORKER_LIMIT  concurrent flow runs for the worker (default: 4)
#   AIRLOCK_STACK_HOST    the address the server listens on (default: 127.0.0.1)
# Once it prints "stack ready", other terminals reach it with the PREFECT_API_URL it prints.
set -euo pipefail

port="${1:-4200}"
env_file="${2:-}"
project="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -n "$env_file" ]]; then
    set -a
    # shellcheck source=/dev/null
    source "$env_file"
    set +a
fi

# The name in prefect.yaml's work_pool definition: deployments reference the pool by name.
pool="airlock"
host="${AIRLOCK_STACK_HOST:-127.0.0.1}"
stack="${AIRLOCK_STACK_DIR:-$project/.airlock/stack-$port}"
bin="$project/.venv/bin"
if [[ -x "$bin/prefect" ]]; then prefect="$bin/prefect"; python="$bin/python"; else prefect="prefect"; python="python3"; fi

mkdir -p "$stack"
export PREFECT_HOME="${PREFECT_HOME:-$stack/prefect}"
export DO_NOT_TRACK=1
export PREFECT_SERVER_ANALYTICS_ENABLED=false
# `server start --port` alone leaves the UI calling port 4200: tell the server where its API is.
export PREFECT_SERVER_API_HOST="$host"
export PREFECT_SERVER_API_PORT="$port"
export PREFECT_API_URL="http://$host:$port/api"
export PREFECT_UI_API_URL="$PREFECT_API_URL"
export AIRLOCK_PROJECT_DIR="${AIRLOCK_PROJECT_DIR:-$project}"
export AIRLOCK_HOME="${AIRLOCK_HOME:-$stack/airlock}"

log() { printf '%s local_stack: %s\n' "$(date -u +%H:%M:%S)" "$*"; }

pids=()
stop() {
    trap - EXIT INT TERM
    # Worker first, so it stops taking runs before the API it reports to goes away. Both get a
    # grace period to shut down cleanly, then are killed.
    for (( i=${#pids[@]}-1; i>=0; i-- )); do
        kill -TERM "${pids[i]}" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "${pids[i]}" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "${pids[i]}" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    log "stopped"
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Start a command with SIGINT restored to its default. A script started in the background (`&`,
# nohup, some service managers) hands its children SIGINT ignored, and Prefect's worker turns
# SIGTERM into a SIGINT to itself: with SIGINT ignored it would never stop.
spawn() {  # only ever with &: it replaces the (sub)shell it runs in
    exec "$python" -c 'import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execvp(sys.argv[1], sys.argv[1:])' "$@"
}

log "PREFECT_HOME=$PREFECT_HOME AIRLOCK_HOME=$AIRLOCK_HOME"
log "starting the Prefect server on $PREFECT_API_URL (log: $stack/server.log)"
spawn "$prefect" server start --host "$host" --port "$port" >"$stack/server.log" 2>&1 &
server=$!
pids+=("$server")

health_ok() {
    "$python" -c "import sys, urllib.request; sys.exit(urllib.request.urlopen(sys.argv[1], timeout=2).status != 200)" \
        "$PREFECT_API_URL/health" >/dev/null 2>&1
}
# A fresh PREFECT_HOME runs the database migrations first: allow for them.
for attempt in $(seq 1 120); do
    if health_ok; then break; fi
    if ! kill -0 "$server" 2>/dev/null; then
        log "the server exited; its log ends with:"; tail -n 30 "$stack/server.log"; exit 1
    fi
    if [[ "$attempt" == 120 ]]; then log "the server did not answer within 60 s"; exit 1; fi
    sleep 0.5
done
log "server is up"

if ! "$prefect" work-pool inspect "$pool" >/dev/null 2>&1; then
    "$prefect" work-pool create "$pool" --type process
fi
"$python" "$project/deployments/apply_automations.py"

# Deploy without AIRLOCK_PROJECT_DIR in the environment: prefect.yaml's pull step then keeps the
# {{ $AIRLOCK_PROJECT_DIR }} placeholder, which each worker resolves from its own environment.
(cd "$project" && env -u AIRLOCK_PROJECT_DIR "$prefect" --no-prompt deploy --all)

log "starting a worker on pool '$pool' in $AIRLOCK_PROJECT_DIR (log: $stack/worker.log)"
(cd "$AIRLOCK_PROJECT_DIR" && spawn "$prefect" worker start --pool "$pool" \
    --limit "${AIRLOCK_WORKER_LIMIT:-4}" --name "airlock-local-$port") >"$stack/worker.log" 2>&1 &
pids+=("$!")

log "stack ready: UI http://$host:$port  API $PREFECT_API_URL"
log "in another terminal: export PREFECT_API_URL=$PREFECT_API_URL"
log "  prefect deployment run 'run-request/run-request' --param review_timeout=0"
# Either process ending ends the stack: a stack without its server or its worker is no stack.
wait -n || true
log "a stack process exited; stopping"
exit 1
