#!/usr/bin/env bash
# The CRS in portcullis against the CRS in nginx + ModSecurity 3, request by request:
# replays a corpus (default: every case of tests/waf_corpus/*.toml) through both and
# prints each request where the verdicts (403 or not) or the sets of matched CRS rule
# ids differ, then totals and how often each rule id differed (benches/crs_compare.py),
# and the share refused per attack and benign category by ModSecurity + CRS and by
# portcullis with the CRS, with its native rules, and with both.
#
#   benches/crs-compare.sh [--json FILE] [--keep] [CORPUS.toml...]
#
# --json FILE: every request's statuses and matched ids (and each match's data) as
# JSON; --keep: leave the run dir (configs, both logs) in place and print its path.
#
# ModSecurity runs as benches/wrk/waf.sh and ../shared/peers/README.md set it up
# (Debian's CRS 3.3.4 with /etc/modsecurity/crs/crs-setup.conf, SecRuleEngine On,
# response body access off), except that its audit log is on for every transaction,
# in JSON (parts ABHZ), so the rule ids each request matched can be read. portcullis
# (PORTCULLIS_BIN, default target/release/portcullis if it loads the config, else
# target/debug) runs the same CRS directory and setup file in block mode, one worker,
# access log to a file. Both proxy to a static nginx upstream. Free loopback ports,
# a temp run dir, everything stopped on exit. Nothing is built.
# Needs: nginx-light libnginx-mod-http-modsecurity modsecurity-crs (apt), python3 >= 3.11.
set -euo pipefail
PATH=$PATH:/usr/sbin:/sbin
SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
PEERS=${PEERS:-$REPO/../shared/peers}
CRS_DIR=/usr/share/modsecurity-crs/rules
CRS_SETUP=/etc/modsecurity/crs/crs-setup.conf
JSON= KEEP=0
CORPUS=()
while (($#)); do
    case $1 in
        --json) JSON=${2:?}; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) CORPUS+=("$1"); shift ;;
    esac
done
((${#CORPUS[@]})) || CORPUS=("$REPO"/tests/waf_corpus/*.toml)

log() { printf '%s\n' "$*" >&2; }
for t in nginx python3; do command -v $t >/dev/null || { log "$t not found"; exit 1; }; done
[[ -f /usr/lib/nginx/modules/ngx_http_modsecurity_module.so ]] || { log "ModSecurity for nginx not installed (apt-get install -y libnginx-mod-http-modsecurity modsecurity-crs)"; exit 1; }
[[ -d $CRS_DIR && -f $CRS_SETUP ]] || { log "CRS not installed (apt-get install -y modsecurity-crs)"; exit 1; }
[[ -f $PEERS/nginx-modsecurity.conf && -f $PEERS/modsecurity-main.conf ]] || { log "$PEERS: peer configs not found (set PEERS)"; exit 1; }

RUN=$(mktemp -d /tmp/portcullis-crs-compare.XXXXXX)
STARTED=()
cleanup() {
    set +e
    for p in ${STARTED[@]+"${STARTED[@]}"}; do kill -TERM "$p" 2>/dev/null; done
    sleep 0.3
    for p in ${STARTED[@]+"${STARTED[@]}"}; do kill -KILL "$p" 2>/dev/null; done
    wait 2>/dev/null
    if ((KEEP)); then log "run dir kept: $RUN"; else rm -rf "$RUN"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { # port pid what
    local d=$((SECONDS + 30))
    until port_open "$1"; do
        kill -0 "$2" 2>/dev/null || { log "$3 exited"; cat "$RUN"/*.err "$RUN"/*.out 2>/dev/null >&2; exit 1; }
        ((SECONDS < d)) || { log "$3: port $1 not up"; exit 1; }
        sleep 0.1
    done
}
# Five free loopback ports (bound and released; nothing else here picks ports at random).
read -r UP_PORT MS_PORT GW_PORT NATIVE_PORT BOTH_PORT < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(5)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in ss))')

# The static upstream (benches/wrk/peers/upstream-nginx.conf on UP_PORT).
sed "s|/tmp/portcullis-peers|$RUN|g; s|127.0.0.1:9001|127.0.0.1:$UP_PORT|; s| reuseport||" \
    "$SCRIPT_DIR/wrk/peers/upstream-nginx.conf" >"$RUN/upstream.conf"
nginx -c "$RUN/upstream.conf" -p "$RUN" >"$RUN/upstream.out" 2>&1 &
UP_PID=$!; STARTED+=("$UP_PID")

# nginx + ModSecurity + CRS as waf.sh sets it up, with the audit log on (JSON, every
# transaction) into the run dir.
sed 's/^SecRuleEngine DetectionOnly/SecRuleEngine On/; s/^SecAuditEngine RelevantOnly/SecAuditEngine On/; s/^SecResponseBodyAccess On/SecResponseBodyAccess Off/' \
    /etc/nginx/modsecurity.conf |
    sed "s|^SecAuditLogParts .*|SecAuditLogParts ABHZ|; s|^SecAuditLogType .*|SecAuditLogType Serial|; s|^SecAuditLog .*|SecAuditLog $RUN/modsec_audit.json|" \
        >"$RUN/modsecurity.conf"
echo "SecAuditLogFormat JSON" >>"$RUN/modsecurity.conf"
cp /etc/nginx/unicode.mapping "$RUN/"
sed "s|/tmp/portcullis-peers|$RUN|g" "$PEERS/modsecurity-main.conf" >"$RUN/modsecurity-main.conf"
sed "s|/tmp/portcullis-peers|$RUN|g; s|127.0.0.1:9004|127.0.0.1:$MS_PORT|; s|127.0.0.1:9001|127.0.0.1:$UP_PORT|" \
    "$PEERS/nginx-modsecurity.conf" >"$RUN/nginx-modsecurity.conf"
touch "$RUN/modsec_audit.json"
nginx -c "$RUN/nginx-modsecurity.conf" -p "$RUN" >"$RUN/modsec.out" 2>&1 &
MS_PID=$!; STARTED+=("$MS_PID")

# portcullis configs: one WAF in block mode (`$3`: its rule lines) on a route
# proxying to the same upstream. gw_config FILE PORT WAF-LINES ACCESS-LOG
gw_config() {
    cat >"$1" <<EOF
[server]
workers = 1
listen = ["127.0.0.1:$2"]
[log]
access = "$4"
[waf.w]
$3
mode = "block"
[[upstream]]
name = "u"
targets = ["127.0.0.1:$UP_PORT"]
[[route]]
name = "all"
path = "/"
upstream = "u"
waf = "w"
EOF
}
CRS_LINES="crs = \"$CRS_DIR\"
crs_setup = \"$CRS_SETUP\""
NATIVE_LINES="rules = \"$REPO/rules\""
# portcullis with the CRS, logging each request's matched ids.
gw_config "$RUN/gw.toml" "$GW_PORT" "$CRS_LINES" "$RUN/access.log"
if [[ -n ${PORTCULLIS_BIN:-} ]]; then
    BIN=$PORTCULLIS_BIN
    "$BIN" check --config "$RUN/gw.toml" >"$RUN/check.out" 2>&1 || { cat "$RUN/check.out" >&2; log "$BIN: config refused"; exit 1; }
else
    BIN=
    for b in "$REPO/target/release/portcullis" "$REPO/target/debug/portcullis"; do
        [[ -x $b ]] || continue
        if "$b" check --config "$RUN/gw.toml" >"$RUN/check.out" 2>&1; then BIN=$b; break; fi
        log "$b: does not load the CRS config, skipped ($(head -1 "$RUN/check.out"))"
    done
    [[ -n $BIN ]] || { log "no portcullis binary loads the config (cargo build, or set PORTCULLIS_BIN)"; exit 1; }
fi
log "portcullis: $BIN"
grep -h 'CRS:' "$RUN/check.out" | sed 's/^/  /' >&2 || true
"$BIN" run --config "$RUN/gw.toml" >"$RUN/gw.out" 2>&1 &
GW_PID=$!; STARTED+=("$GW_PID")

# The same gateway with the native rules (the default rule set), and with both.
for side in native both; do
    port=$NATIVE_PORT lines=$NATIVE_LINES
    if [[ $side == both ]]; then port=$BOTH_PORT lines="$NATIVE_LINES
$CRS_LINES"; fi
    gw_config "$RUN/gw-$side.toml" "$port" "$lines" off
    "$BIN" run --config "$RUN/gw-$side.toml" >"$RUN/gw-$side.out" 2>&1 &
    pid=$!; STARTED+=("$pid")
    wait_port "$port" "$pid" "portcullis ($side)"
done

wait_port "$UP_PORT" "$UP_PID" "upstream nginx"
wait_port "$MS_PORT" "$MS_PID" "nginx + ModSecurity"
wait_port "$GW_PORT" "$GW_PID" "portcullis"

python3 "$SCRIPT_DIR/crs_compare.py" replay --modsec "$MS_PORT" --gw "$GW_PORT" \
    --modsec-audit "$RUN/modsec_audit.json" --gw-log "$RUN/access.log" --rules "$CRS_DIR" \
    --also "native rules=$NATIVE_PORT" --also "native + CRS=$BOTH_PORT" \
    ${JSON:+--json "$JSON"} "${CORPUS[@]}"
