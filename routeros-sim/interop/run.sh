#!/usr/bin/env bash
# Interop test: independent Python RouterOS clients from PyPI (librouteros, routeros-api)
# against the routeros-sim binary. Creates target/interop-venv, installs the pinned
# clients, starts two simulators on free loopback ports (plain login on 7.18, legacy MD5
# login on 6.42) and runs both tests. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/../.."

VENV=target/interop-venv
PASSWORD="interop-$$-secret"
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r routeros-sim/interop/requirements.txt

cargo build --quiet --locked -p routeros-sim --bin routeros-sim
SIM="${CARGO_TARGET_DIR:-target}/debug/routeros-sim"

# Starts a simulator in the background (in this shell, so cleanup can stop it).
start_sim() {
    local name=$1
    shift
    ROUTEROS_SIM_PASSWORD="$PASSWORD" "$SIM" --listen 127.0.0.1:0 --user admin "$@" \
        >"$WORK/$name.out" 2>"$WORK/$name.err" &
    PIDS+=($!)
}

# Prints the address a started simulator bound (its first line of stdout).
bound_addr() {
    local name=$1
    for _ in $(seq 1 100); do
        if [ -s "$WORK/$name.out" ]; then
            head -n1 "$WORK/$name.out"
            return 0
        fi
        sleep 0.1
    done
    echo "routeros-sim ($name) did not start:" >&2
    cat "$WORK/$name.err" >&2
    return 1
}

start_sim plain --version 7.18
start_sim legacy --version 6.42 --legacy-login
ADDR=$(bound_addr plain)
LEGACY=$(bound_addr legacy)
echo "routeros-sim at $ADDR (7.18), $LEGACY (6.42, legacy login)"

status=0
echo "== librouteros"
"$VENV/bin/python" routeros-sim/interop/test_librouteros.py "$ADDR" "$PASSWORD" "$LEGACY" || status=1
echo "== routeros-api"
"$VENV/bin/python" routeros-sim/interop/test_routeros_api.py "$ADDR" "$PASSWORD" || status=1
exit $status
