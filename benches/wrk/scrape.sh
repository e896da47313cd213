#!/usr/bin/env bash
# The cost of a /metrics scrape on a gateway with 1,000 routes: how long a scrape
# takes once every route has counted traffic (20 scrapes, median and max), and the
# p99 latency of traffic running beside it, with and without a scrape every 100 ms
# (wrk -t1 -c32 --latency, one worker on cpu1, wrk on cpu0).
#
#   benches/wrk/scrape.sh [--duration S] [--no-build]
#
# Needs: wrk, curl, python3.
set -euo pipefail
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh" "$@"

ROUTES=1000
config() {
    printf '[server]\nworkers = 1\nlisten = ["127.0.0.1:9020"]\n[log]\naccess = "off"\n[admin]\nlisten = "127.0.0.1:9021"\n'
    for i in $(seq 1 "$ROUTES"); do
        printf '[[route]]\nname = "route-%04d"\npath_exact = "/r/%d"\nmock = { status = 200, body = "ok" }\n' "$i" "$i"
    done
}
start_gw scrape "$(config)"
wait_port 9020; wait_port 9021
# Every route counts a request, every one a 200 and a few a 404, so each has series.
python3 - <<'PY'
import http.client
c = http.client.HTTPConnection("127.0.0.1", 9020)
for i in range(1, 1001):
    for path in (f"/r/{i}", f"/r/{i}/x"):
        c.request("GET", path, headers={"Host": "bench"})
        c.getresponse().read()
PY
times=()
for _ in $(seq 20); do
    times+=("$(curl -s -o /dev/null -w '%{time_total}' http://127.0.0.1:9021/metrics)")
done
lines=$(curl -s http://127.0.0.1:9021/metrics | wc -l)
printf 'scrape of %s routes (%s lines): median %.1f ms, max %.1f ms\n' "$ROUTES" "$lines" \
    "$(printf '%s\n' "${times[@]}" | median | awk '{print $1 * 1000}')" \
    "$(printf '%s\n' "${times[@]}" | sort -n | tail -1 | awk '{print $1 * 1000}')"

p99() { grep -E '^ +99%' | awk '{print $2}'; }
run_wrk() { taskset -c 0 wrk -t1 -c32 -d"${DURATION}s" --latency -H 'Host: bench' http://127.0.0.1:9020/r/7; }
quiet=$(run_wrk | p99)
( end=$((SECONDS + DURATION)); while ((SECONDS < end)); do curl -s -o /dev/null http://127.0.0.1:9021/metrics; sleep 0.1; done ) &
SCRAPER=$!
busy=$(run_wrk | p99)
wait "$SCRAPER" || true
printf 'traffic p99: %s without scrapes, %s with a scrape every 100 ms\n' "$quiet" "$busy"
