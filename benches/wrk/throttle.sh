#!/usr/bin/env bash
# Throttling under wrk: how close the admitted rate stays to the limit, and what
# all four throttle levels cost in throughput.
#
#   benches/wrk/throttle.sh [--duration S] [--rounds N] [--no-build]
#
# 1. Accuracy: portcullis with 2 workers and an account limit of 5000 requests/s
#    (burst 100) in front of a mock route; wrk with 1, 8 and 64 connections for S
#    seconds (default 10). Admitted = wrk's requests minus its non-2xx count; the
#    admitted rate is compared with 5000 + burst/S.
# 2. Cost: portcullis (1 worker, on cpu1) proxying to a static nginx upstream (cpu0,
#    with wrk), with no throttling, and with all four levels on — plan (API key),
#    route, account and per-IP, each with a budget large enough never to refuse —
#    plus the plan's quota; N interleaved rounds (default 3), wrk -t1 -c64.
# Loopback only; bounded; everything started is stopped on exit.
# Needs: wrk, nginx (apt), cargo. Output: markdown on stdout, progress on stderr.
set -euo pipefail

DURATION=10 ROUNDS=3 BUILD=1
while (($#)); do
    case $1 in
        --duration) DURATION=${2:?}; shift 2 ;;
        --rounds) ROUNDS=${2:?}; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        *) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
    esac
done
[[ $DURATION =~ ^[0-9]+$ ]] && ((DURATION >= 1 && DURATION <= 60)) || { echo "--duration: 1..60" >&2; exit 2; }
[[ $ROUNDS =~ ^[0-9]+$ ]] && ((ROUNDS >= 1 && ROUNDS <= 10)) || { echo "--rounds: 1..10" >&2; exit 2; }
PATH=$PATH:/usr/sbin:/sbin
for t in wrk nginx taskset; do command -v $t >/dev/null || { echo "throttle.sh: $t not found" >&2; exit 1; }; done

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/../.." && pwd)
BIN=${PORTCULLIS_BIN:-$REPO/target/release/portcullis}
if ((BUILD)); then (cd "$REPO" && cargo build --release --quiet); fi
RUN=$(mktemp -d /tmp/portcullis-throttle.XXXXXX)
mkdir -p /tmp/portcullis-peers
STARTED=()
cleanup() {
    set +e
    for p in ${STARTED[@]+"${STARTED[@]}"}; do kill -TERM "$p" 2>/dev/null; done
    sleep 0.5
    for p in ${STARTED[@]+"${STARTED[@]}"}; do kill -KILL "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$RUN"
}
trap cleanup EXIT
log() { printf '%s\n' "$*" >&2; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { local d=$((SECONDS + 10)); until port_open "$1"; do ((SECONDS < d)) || { log "port $1 not up"; exit 1; }; sleep 0.1; done; }

start_gw() { # name config-text -> pid in GW_PID
    printf '%s\n' "$2" >"$RUN/$1.toml"
    "$BIN" run --config "$RUN/$1.toml" >"$RUN/$1.log" 2>&1 &
    GW_PID=$!
    STARTED+=("$GW_PID")
}
stop() { kill -TERM "$1" 2>/dev/null; wait "$1" 2>/dev/null || true; }

# wrk output -> "requests non2xx seconds"
wrk_counts() {
    awk '/requests in/ {r=$1; s=$4; sub(/s,?$/, "", s)} /Non-2xx/ {n=$NF} END {printf "%d %d %s\n", r, n+0, s}' "$1"
}

# --- 1. accuracy ----------------------------------------------------------------------
LIMIT=5000 BURST=100
start_gw acc "[server]
workers = 2
listen = [\"127.0.0.1:9011\"]
[log]
access = \"off\"
[throttle]
rate = $LIMIT
burst = $BURST
[[route]]
name = \"m\"
path = \"/\"
mock = { status = 200, body = \"ok\" }"
wait_port 9011
echo "### Admitted rate against a $LIMIT/s account limit (2 workers, burst $BURST, ${DURATION} s)"
echo
echo "| connections | requests/s offered | admitted | admitted/s | expected (limit + burst/T) | deviation |"
echo "|---:|---:|---:|---:|---:|---:|"
for c in 1 8 64; do
    log "accuracy: $c connections"
    sleep 1 # let the bucket refill to its burst
    wrk -t$((c < 2 ? 1 : 2)) -c$c -d${DURATION}s http://127.0.0.1:9011/ >"$RUN/acc-$c.txt"
    read -r req non secs < <(wrk_counts "$RUN/acc-$c.txt")
    awk -v c=$c -v r=$req -v n=$non -v s=$secs -v l=$LIMIT -v b=$BURST 'BEGIN {
        a = r - n; rate = a / s; want = l + b / s
        printf "| %d | %.0f | %d | %.1f | %.1f | %+.2f%% |\n", c, r / s, a, rate, want, 100 * (rate - want) / want }'
done
stop "$GW_PID"

# --- 2. cost of the four levels -------------------------------------------------------
sed 's|/tmp/portcullis-peers|'"$RUN"'|g' "$SCRIPT_DIR/peers/upstream-nginx.conf" >"$RUN/upstream.conf"
nginx -c "$RUN/upstream.conf" -p "$RUN" &
UP=$!
STARTED+=("$UP")
wait_port 9001
KEY=pk_0000000000000000000000000000000000000000000000000000000000000000bench
HASH=$(printf '%s' "$KEY" | sha256sum | cut -d' ' -f1)
COMMON="[server]
workers = 1
listen = [\"127.0.0.1:PORT\"]
[log]
access = \"off\"
[[upstream]]
name = \"u\"
targets = [\"127.0.0.1:9001\"]"
OFF="${COMMON/PORT/9012}
[[route]]
name = \"all\"
path = \"/\"
upstream = \"u\""
ON="${COMMON/PORT/9013}
[throttle]
rate = 100000000
burst = 100000000
per_ip = { rate = 100000000, burst = 100000000 }
[store]
path = \"$RUN/store.redb\"
[[plan]]
name = \"bench\"
throttle = { rate = 100000000, burst = 100000000 }
quota = { limit = 100000000000, period = \"month\" }
[[api_key]]
name = \"bench\"
plan = \"bench\"
hash = \"sha256:$HASH\"
[[route]]
name = \"all\"
path = \"/\"
upstream = \"u\"
api_key = true
throttle = { rate = 100000000, burst = 100000000 }"
start_gw off "$OFF"; OFF_PID=$GW_PID
start_gw on "$ON"; ON_PID=$GW_PID
wait_port 9012; wait_port 9013
for p in $OFF_PID $ON_PID; do taskset -a -p -c 1 "$p" >/dev/null; done
taskset -a -p -c 0 "$UP" >/dev/null; for k in $(pgrep -P "$UP"); do taskset -a -p -c 0 "$k" >/dev/null; done
TCK=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
declare -A RPS CPU
for ((round = 1; round <= ROUNDS; round++)); do
    for t in off on; do
        pid_var=${t^^}_PID; pid=${!pid_var}
        port=$([[ $t == off ]] && echo 9012 || echo 9013)
        log "cost: round $round, throttling $t"
        before=$(ticks "$pid")
        taskset -c 0 wrk -t1 -c64 -d${DURATION}s -H "x-api-key: $KEY" "http://127.0.0.1:$port/" >"$RUN/cost-$t-$round.txt"
        after=$(ticks "$pid")
        read -r req non secs < <(wrk_counts "$RUN/cost-$t-$round.txt")
        ((non == 0)) || { log "cost: $non non-2xx responses with throttling $t"; cat "$RUN/$t.log" >&2; exit 1; }
        RPS[$t]+="$(awk -v r=$req -v s=$secs 'BEGIN {printf "%.0f", r / s}') "
        CPU[$t]+="$(awk -v d=$((after - before)) -v k=$TCK -v r=$req 'BEGIN {printf "%.2f", 1e6 * d / k / r}') "
    done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
echo
echo "### Throughput with all four levels and a quota on, versus off (1 worker, wrk -t1 -c64, ${DURATION} s, medians of $ROUNDS rounds)"
echo
echo "| throttling | requests/s | CPU µs/request | rounds (requests/s) |"
echo "|---|---:|---:|---|"
for t in off on; do
    echo "| $t | $(median <<<"${RPS[$t]}") | $(median <<<"${CPU[$t]}") | ${RPS[$t]}|"
done
