#!/usr/bin/env bash
# A real CrowdSec Local API (Debian's crowdsec 1.4.6) on loopback for mtids-crowdsec's tests.
#
#   bash mtids-crowdsec/tests/lapi.sh          install if needed, set up, start (idempotent)
#   bash mtids-crowdsec/tests/lapi.sh stop     stop the LAPI (the tests use this for outages)
#   bash mtids-crowdsec/tests/lapi.sh start    start it again with the same database
#
# Offline by construction: the LAPI runs with `-no-capi -no-cs` (no Central API, no agent),
# its config has no online_client, and no hub command is run. It keeps its own config,
# database and logs under $MTIDS_TEST_LAPI_DIR (default /var/lib/mtids-test-lapi) and leaves
# the package's /etc/crowdsec alone. It writes $MTIDS_TEST_LAPI_DIR/lapi.env (url, cscli
# config, a bouncer key, machine credentials), which tests/lapi.rs reads.
set -euo pipefail

DIR="${MTIDS_TEST_LAPI_DIR:-/var/lib/mtids-test-lapi}"
PORT="${MTIDS_TEST_LAPI_PORT:-18980}"
CFG="$DIR/etc/config.yaml"
PIDFILE="$DIR/crowdsec.pid"
ENVFILE="$DIR/lapi.env"

log() { printf 'lapi.sh: %s\n' "$*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

# A live (not zombie) crowdsec process with this pid.
alive() {
    local stat
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    [[ "$stat" == *"(crowdsec) "[RSDT]* ]]
}

# Our crowdsec: the pid file's, or (after a lost pid file) the one running our config.
our_pid() {
    local pid
    if [ -f "$PIDFILE" ] && alive "$(cat "$PIDFILE")"; then
        cat "$PIDFILE"
        return
    fi
    pid="$(pgrep -f -x "crowdsec -c $CFG -no-capi -no-cs" | head -n 1)" || true
    if [ -n "$pid" ] && alive "$pid"; then
        echo "$pid" >"$PIDFILE"
        echo "$pid"
        return
    fi
    return 1
}

install() {
    command -v crowdsec >/dev/null && command -v cscli >/dev/null && return
    # The package's post-install step registers with the Central API unless these
    # credentials exist already; a comment line is enough to keep it offline.
    mkdir -p /etc/crowdsec
    [ -e /etc/crowdsec/online_api_credentials.yaml ] \
        || echo '# offline: no Central API (mtids tests)' >/etc/crowdsec/online_api_credentials.yaml
    log "installing Debian's crowdsec"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq crowdsec >/dev/null
}

configure() {
    mkdir -p "$DIR/etc" "$DIR/data" "$DIR/log"
    [ -f "$CFG" ] && return
    cp /etc/crowdsec/profiles.yaml "$DIR/etc/profiles.yaml"
    cp /etc/crowdsec/simulation.yaml "$DIR/etc/simulation.yaml"
    : >"$DIR/etc/console.yaml"
    : >"$DIR/dummy.log"
    # Never read (the agent is off), but a file source instead of the default journald one.
    cat >"$DIR/etc/acquis.yaml" <<ACQ
filenames:
  - $DIR/dummy.log
labels:
  type: syslog
ACQ
    cat >"$CFG" <<YAML
common:
  daemonize: false
  log_media: file
  log_level: info
  log_dir: $DIR/log/
  working_dir: .
config_paths:
  config_dir: $DIR/etc/
  data_dir: $DIR/data/
  simulation_path: $DIR/etc/simulation.yaml
  hub_dir: /var/lib/crowdsec/hub/
  index_path: /var/lib/crowdsec/hub/.index.json
  notification_dir: $DIR/etc/notifications/
  plugin_dir: /usr/lib/crowdsec/plugins/
crowdsec_service:
  acquisition_path: $DIR/etc/acquis.yaml
cscli:
  output: human
  color: "no"
db_config:
  log_level: info
  type: sqlite
  db_path: $DIR/data/crowdsec.db
  use_wal: true
api:
  client:
    insecure_skip_verify: false
    credentials_path: $DIR/etc/local_api_credentials.yaml
  server:
    log_level: info
    listen_uri: 127.0.0.1:$PORT
    profiles_path: $DIR/etc/profiles.yaml
    console_path: $DIR/etc/console.yaml
    trusted_ips:
      - 127.0.0.1
      - ::1
prometheus:
  enabled: false
YAML
    mkdir -p "$DIR/etc/notifications"
}

start() {
    if our_pid >/dev/null; then
        for _ in $(seq 1 150); do
            port_open && return
            sleep 0.2
        done
        log "crowdsec runs but 127.0.0.1:$PORT does not answer"
        exit 1
    fi
    if port_open; then
        log "127.0.0.1:$PORT is taken by another program; set MTIDS_TEST_LAPI_PORT"
        exit 1
    fi
    rm -f "$PIDFILE"
    # Its own session (setsid -f always forks), so that it outlives this script's caller.
    setsid -f crowdsec -c "$CFG" -no-capi -no-cs >>"$DIR/log/stdout.log" 2>&1 </dev/null
    for i in $(seq 1 150); do
        if port_open && our_pid >/dev/null; then
            return
        fi
        if [ "$i" -gt 10 ] && ! our_pid >/dev/null; then
            log "crowdsec exited at start; its log:"
            tail -n 30 "$DIR/log/crowdsec_api.log" "$DIR/log/stdout.log" >&2 || true
            exit 1
        fi
        sleep 0.2
    done
    log "the LAPI did not open 127.0.0.1:$PORT within 30 s"
    exit 1
}

stop() {
    local pid
    if pid="$(our_pid)"; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            alive "$pid" || break
            sleep 0.1
        done
        if alive "$pid"; then
            kill -9 "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$PIDFILE"
    for _ in $(seq 1 50); do
        port_open || return 0
        sleep 0.1
    done
    log "127.0.0.1:$PORT still answers after stopping crowdsec"
    exit 1
}

credentials() {
    # cscli's decision commands go through the LAPI as a machine of their own.
    if [ ! -s "$DIR/etc/local_api_credentials.yaml" ]; then
        cscli -c "$CFG" machines add mtids-cscli --auto --force \
            -f "$DIR/etc/local_api_credentials.yaml" >/dev/null 2>&1
    fi
    [ -f "$ENVFILE" ] && return
    local key password
    cscli -c "$CFG" bouncers delete mtids-test >/dev/null 2>&1 || true
    key="$(cscli -c "$CFG" bouncers add mtids-test -o raw)"
    password="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    cscli -c "$CFG" machines add mtids-test --password "$password" --force -f /dev/null >/dev/null 2>&1
    cat >"$ENVFILE.tmp" <<ENV
MTIDS_TEST_LAPI_URL=http://127.0.0.1:$PORT
MTIDS_TEST_LAPI_CSCLI_CONFIG=$CFG
MTIDS_TEST_LAPI_BOUNCER_KEY=$key
MTIDS_TEST_LAPI_MACHINE_ID=mtids-test
MTIDS_TEST_LAPI_MACHINE_PASSWORD=$password
ENV
    mv "$ENVFILE.tmp" "$ENVFILE"
}

case "${1:-up}" in
    up)
        install
        configure
        start
        credentials
        log "LAPI on http://127.0.0.1:$PORT ($ENVFILE)"
        ;;
    start) start ;;
    stop) stop ;;
    *)
        echo "usage: $0 [up|start|stop]" >&2
        exit 2
        ;;
esac
