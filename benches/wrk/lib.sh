# Shared harness of the feature benches (throttle.sh, auth.sh, waf.sh, tls.sh): source it
# with the script's arguments (`. lib.sh "$@"`); it takes [--duration S] [--rounds N]
# [--no-build] (defaults 10, 3, build) and builds the release binary. Provides a
# run dir, cleanup of everything started,
# a static nginx upstream on 127.0.0.1:9001, portcullis starters, and ab_compare,
# which runs wrk against several portcullis configs in interleaved rounds and
# prints requests/s and CPU µs per request (from /proc/PID/stat).
# Loopback only; every run is bounded.

DURATION=10 ROUNDS=3 BUILD=1
while (($#)); do
    case $1 in
        --duration) DURATION=${2:?}; shift 2 ;;
        --rounds) ROUNDS=${2:?}; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        *) sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
    esac
done
[[ $DURATION =~ ^[0-9]+$ ]] && ((DURATION >= 1 && DURATION <= 60)) || { echo "--duration: 1..60" >&2; exit 2; }
[[ $ROUNDS =~ ^[0-9]+$ ]] && ((ROUNDS >= 1 && ROUNDS <= 10)) || { echo "--rounds: 1..10" >&2; exit 2; }

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[1]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/../.." && pwd)
BIN=${PORTCULLIS_BIN:-$REPO/target/release/portcullis}
PATH=$PATH:/usr/sbin:/sbin
for t in wrk nginx taskset; do command -v $t >/dev/null || { echo "$t not found (apt-get install -y wrk nginx-light util-linux)" >&2; exit 1; }; done
RUN=$(mktemp -d /tmp/portcullis-bench.XXXXXX)
STARTED=()
cleanup() {
    set +e
    for p in ${STARTED[@]+"${STARTED[@]}"}; do pkill -TERM -P "$p" 2>/dev/null; kill -TERM "$p" 2>/dev/null; done
    sleep 0.5
    for p in ${STARTED[@]+"${STARTED[@]}"}; do kill -KILL "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$RUN"
}
trap cleanup EXIT
log() { printf '%s\n' "$*" >&2; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { local d=$((SECONDS + 10)); until port_open "$1"; do ((SECONDS < d)) || { log "port $1 not up"; exit 1; }; sleep 0.1; done; }

if ((BUILD)); then (cd "$REPO" && cargo build --release --quiet); fi

start_gw() { # name config-text -> pid in GW_PID
    printf '%s\n' "$2" >"$RUN/$1.toml"
    "$BIN" run --config "$RUN/$1.toml" >"$RUN/$1.log" 2>&1 &
    GW_PID=$!
    STARTED+=("$GW_PID")
}
stop() { kill -TERM "$1" 2>/dev/null; wait "$1" 2>/dev/null || true; }

start_upstream() { # the static nginx upstream on 9001, pinned to cpu0
    sed 's|/tmp/portcullis-peers|'"$RUN"'|g' "$SCRIPT_DIR/peers/upstream-nginx.conf" >"$RUN/upstream.conf"
    nginx -c "$RUN/upstream.conf" -p "$RUN" &
    UP_PID=$!
    STARTED+=("$UP_PID")
    wait_port 9001
    taskset -a -p -c 0 "$UP_PID" >/dev/null
    for k in $(pgrep -P "$UP_PID"); do taskset -a -p -c 0 "$k" >/dev/null; done
}

# wrk output -> "requests non2xx seconds"
wrk_counts() {
    awk '/requests in/ {r=$1; s=$4; sub(/s,?$/, "", s)} /Non-2xx/ {n=$NF} END {printf "%d %d %s\n", r, n+0, s}' "$1"
}
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# ab_compare TITLE "label pid [https:]port[/path] [wrk args…]"… : interleaved rounds of wrk -t1 -c64
# against each, the gateway pinned to cpu1 and wrk to cpu0; fails on any non-2xx.
ab_compare() {
    local title=$1; shift
    local -A RPS CPU
    local spec label pid port extra round before after req non secs url
    for spec in "$@"; do
        read -r label pid port extra <<<"$spec"
        taskset -a -p -c 1 "$pid" >/dev/null
    done
    for ((round = 1; round <= ROUNDS; round++)); do
        for spec in "$@"; do
            read -r label pid port extra <<<"$spec"
            log "$title: round $round, $label"
            before=$(ticks "$pid")
            case $port in
                https:*) url="https://127.0.0.1:${port#https:}" ;;
                *) url="http://127.0.0.1:$port" ;;
            esac
            [[ $port == */* ]] || url+=/
            eval "taskset -c 0 wrk -t1 -c64 -d${DURATION}s $extra '$url'" >"$RUN/ab-$label-$round.txt"
            after=$(ticks "$pid")
            read -r req non secs < <(wrk_counts "$RUN/ab-$label-$round.txt")
            ((non == 0)) || { log "$label: $non non-2xx responses"; cat "$RUN"/*.log >&2; exit 1; }
            RPS[$label]+="$(awk -v r=$req -v s=$secs 'BEGIN {printf "%.0f", r / s}') "
            CPU[$label]+="$(awk -v d=$((after - before)) -v k="$(getconf CLK_TCK)" -v r=$req 'BEGIN {printf "%.2f", 1e6 * d / k / r}') "
        done
    done
    echo
    echo "### $title (1 worker, wrk -t1 -c64, ${DURATION} s, medians of $ROUNDS rounds)"
    echo
    echo "| config | requests/s | CPU µs/request | rounds (requests/s) |"
    echo "|---|---:|---:|---|"
    for spec in "$@"; do
        read -r label _ <<<"$spec"
        echo "| $label | $(median <<<"${RPS[$label]}") | $(median <<<"${CPU[$label]}") | ${RPS[$label]}|"
    done
}
