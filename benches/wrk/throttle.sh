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

. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh" "$@"

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
start_upstream
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
ab_compare "Throughput with all four levels and a quota on, versus off" \
    "off $OFF_PID 9012 -H 'x-api-key: $KEY'" "on $ON_PID 9013 -H 'x-api-key: $KEY'"
