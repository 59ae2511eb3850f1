#!/usr/bin/env bash
# `mtids replay` against `fail2ban-regex` (routeros-auth filter) on the same RouterOS log,
# side by side in one run. Prints each tool's time, lines/s and the ratio.
#
#   scripts/bench-replay-vs-fail2ban.sh            # 200,000 lines
#   LINES=1000000 scripts/bench-replay-vs-fail2ban.sh
#   REPLAY_BIN=target/release/mtids scripts/bench-replay-vs-fail2ban.sh   # no build
#
# Installs fail2ban (and hyperfine when apt can) from Debian's packages if missing.
# Debian 12's fail2ban 1.0.2 has no routeros-auth filter: fail2ban's own is used when
# installed, else its failregex is written out as upstream ships it
# (https://github.com/fail2ban/fail2ban/blob/master/config/filter.d/routeros-auth.conf).
set -euo pipefail
cd "$(dirname "$0")/.."
LINES=${LINES:-200000}
RUNS=${RUNS:-3}

if ! command -v fail2ban-regex >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq fail2ban >/dev/null
fi
if ! command -v hyperfine >/dev/null 2>&1; then
    apt-get install -y -qq hyperfine >/dev/null 2>&1 || true
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log="$work/routeros.log"
filter=/etc/fail2ban/filter.d/routeros-auth.conf
if [ ! -f "$filter" ]; then
    filter="$work/routeros-auth.conf"
    cat >"$filter" <<'CONF'
[Definition]
failregex = ^\s*\S+ system,error,critical login failure for user <F-USER>.*?</F-USER> from <ADDR> via \S+$
CONF
fi

# REPLAY_BIN=path skips the build (a release binary built already).
mtids=${REPLAY_BIN:-target/release/mtids}
if [ -z "${REPLAY_BIN:-}" ]; then
    cargo build --release --locked -p mtids-cli --bin mtids
fi
python3 scripts/gen-routeros-log.py "$LINES" "$log"

echo "log: $LINES lines, $(du -h "$log" | cut -f1), $(nproc) cores"
f2b_matched=$(fail2ban-regex "$log" "$filter" | grep -E '^Failregex:' || true)
echo "fail2ban-regex: $f2b_matched"
"$mtids" replay --date 2026-11-21 --no-progress "$log" 2>/dev/null | grep -E '^  auth|^Findings' | sed 's/^/mtids replay: /'

mtids_cmd="$mtids replay --date 2026-11-21 --no-progress $log"
mtids1_cmd="$mtids_cmd --threads 1"
f2b_cmd="fail2ban-regex $log $filter"
if command -v hyperfine >/dev/null 2>&1; then
    hyperfine --style basic --runs "$RUNS" --warmup 1 --export-json "$work/h.json" \
        -n mtids "$mtids_cmd" -n mtids-1-thread "$mtids1_cmd" -n fail2ban-regex "$f2b_cmd" \
        >/dev/null 2>&1
    read -r t_mtids t_mtids1 t_f2b < <(python3 -c '
import json, sys
r = {x["command"]: min(x["times"]) for x in json.load(open(sys.argv[1]))["results"]}
print(r["mtids"], r["mtids-1-thread"], r["fail2ban-regex"])' "$work/h.json")
    how="hyperfine, best of $RUNS"
else
    best() {
        local best=999999 t
        for _ in $(seq "$RUNS"); do
            t=$( { /usr/bin/time -f %e sh -c "$1 >/dev/null 2>&1"; } 2>&1 | tail -1)
            best=$(python3 -c "print(min($best, $t))")
        done
        echo "$best"
    }
    t_mtids=$(best "$mtids_cmd"); t_mtids1=$(best "$mtids1_cmd"); t_f2b=$(best "$f2b_cmd")
    how="time, best of $RUNS"
fi
python3 - "$LINES" "$t_mtids" "$t_mtids1" "$t_f2b" "$how" <<'PY'
import sys
n, a, a1, b, how = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
print(f"({how}, wall clock, whole process)")
print(f"mtids replay ({'all cores'}):  {a:8.3f} s  {n / a:>12,.0f} lines/s")
print(f"mtids replay --threads 1:  {a1:8.3f} s  {n / a1:>12,.0f} lines/s")
print(f"fail2ban-regex:            {b:8.3f} s  {n / b:>12,.0f} lines/s")
print(f"ratio: mtids is {b / a:.0f}x fail2ban-regex ({b / a1:.0f}x on one thread)")
PY
