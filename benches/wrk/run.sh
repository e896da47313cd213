#!/usr/bin/env bash
# Side-by-side wrk benchmark: the static upstream straight, nginx, HAProxy and portcullis
# as keep-alive reverse proxies (one worker each), with access logs off and on.
#
#   benches/wrk/run.sh [--rounds N] [--duration S] [--connections C] [--idle]
#                      [--idle-conns N] [--skip-portcullis] [--no-build] [--no-logs] [--pin split|none]
#
# Defaults: 3 rounds, 10 s, 64 connections, wrk -t1 --latency. Rounds are interleaved
# (round 1: every target once, then round 2, ...). For each run it records requests/s,
# p50/p99 latency, user and system CPU per request of the process under test
# (/proc/PID/stat fields 14 and 15 before and after, divided by wrk's request count)
# and peak RSS (VmHWM), then prints one markdown row per target: medians over the
# rounds, min–max for requests/s. --idle also reports portcullis's RSS with 10,000 idle
# keep-alive connections (idle_conns.py). Loopback only; every run is bounded; everything
# it starts is stopped on exit.
#
# --no-build uses the binary already in target/release (or $PORTCULLIS_BIN);
# --skip-portcullis measures the peers only; --pin none lets the scheduler place things.
# Needs: nginx-light haproxy wrk (apt), python3, taskset (util-linux), cargo.
# Peer configs: benches/wrk/peers/ (copies), else ../shared/peers beside the repo.
# Output: markdown on stdout, progress on stderr, raw files in /tmp/portcullis-peers/bench-run.
set -euo pipefail

usage() { sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; }

ROUNDS=3 DURATION=10 CONNS=64 IDLE=0 IDLE_CONNS=10000 SKIP_PC=0 BUILD=1 LOGS=1 PIN=split
while (($#)); do
    case $1 in
        --rounds) ROUNDS=${2:?}; shift 2 ;;
        --rounds=*) ROUNDS=${1#*=}; shift ;;
        --duration) DURATION=${2:?}; shift 2 ;;
        --duration=*) DURATION=${1#*=}; shift ;;
        --connections) CONNS=${2:?}; shift 2 ;;
        --connections=*) CONNS=${1#*=}; shift ;;
        --idle) IDLE=1; shift ;;
        --idle-conns) IDLE=1; IDLE_CONNS=${2:?}; shift 2 ;;
        --idle-conns=*) IDLE=1; IDLE_CONNS=${1#*=}; shift ;;
        --skip-portcullis) SKIP_PC=1; shift ;;
        --no-build) BUILD=0; shift ;;
        --no-logs) LOGS=0; shift ;;
        --pin) PIN=${2:?}; shift 2 ;;
        --pin=*) PIN=${1#*=}; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "run.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done
DURATION=${DURATION%s}
int_in() { [[ $2 =~ ^[0-9]+$ ]] && (($2 >= $3 && $2 <= $4)) || { echo "run.sh: $1 must be an integer in $3..$4 (got '$2')" >&2; exit 2; }; }
int_in --rounds "$ROUNDS" 1 20
int_in --duration "$DURATION" 1 120
# nginx's worker_connections (4096) counts client and upstream sockets; HAProxy maxconn 4000
int_in --connections "$CONNS" 1 1800
int_in --idle-conns "$IDLE_CONNS" 1 18000
[[ $PIN == split || $PIN == none ]] || { echo "run.sh: --pin must be split or none" >&2; exit 2; }

for tool in nginx haproxy wrk python3 taskset getconf; do
    command -v "$tool" >/dev/null || PATH=$PATH:/usr/sbin:/sbin
    command -v "$tool" >/dev/null || { echo "run.sh: $tool not found (apt-get install -y nginx-light haproxy wrk util-linux python3)" >&2; exit 1; }
done

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO=$(git -C "$SCRIPT_DIR" rev-parse --show-toplevel 2>/dev/null || (cd "$SCRIPT_DIR/../.." && pwd))
PEER_FILES=(upstream-nginx.conf nginx-proxy.conf haproxy.cfg)
has_peers() { local f; for f in "${PEER_FILES[@]}"; do [[ -f $1/$f ]] || return 1; done; }
if has_peers "$SCRIPT_DIR/peers"; then
    PEERS=$SCRIPT_DIR/peers
elif has_peers "$REPO/../shared/peers"; then
    PEERS=$(cd "$REPO/../shared/peers" && pwd)
else
    echo "run.sh: peer configs not found in $SCRIPT_DIR/peers nor $REPO/../shared/peers" >&2; exit 1
fi

# The peer configs write pid and error logs under /tmp/portcullis-peers (fixed path).
PEER_DIR=/tmp/portcullis-peers
RUN=$PEER_DIR/bench-run

ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
CLK_TCK=$(getconf CLK_TCK)
NCPU=$(nproc)
if [[ $PIN == split && $NCPU -lt 2 ]]; then PIN=none; fi
LOAD_CPU=0 SUT_CPU=1

declare -A PORT LABEL LOGCOL PID
STARTED=()
WRK_PID=
log() { printf '%s\n' "$*" >&2; }

tree_pids() { # pid and its direct children (nginx: master + workers)
    local p=$1
    [[ -d /proc/$p ]] || return 0
    echo "$p"
    pgrep -P "$p" 2>/dev/null || true
}

cleanup() {
    set +e
    trap - EXIT INT TERM
    [[ -n $WRK_PID ]] && kill -TERM "$WRK_PID" 2>/dev/null
    local pid kids=() all=()
    for pid in ${STARTED[@]+"${STARTED[@]}"}; do
        all+=("$pid")
        kids+=($(pgrep -P "$pid" 2>/dev/null))
        kill -TERM "$pid" 2>/dev/null
    done
    local deadline=$((SECONDS + 10))
    for pid in ${all[@]+"${all[@]}"} ${kids[@]+"${kids[@]}"}; do
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null
    done
    wait 2>/dev/null
    # access logs can reach hundreds of MB (a line of each is kept in *-sample.log)
    rm -f "$RUN"/*access.log
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_ready() { # port pid seconds
    local port=$1 pid=$2 deadline=$((SECONDS + $3))
    while ((SECONDS < deadline)); do
        kill -0 "$pid" 2>/dev/null || return 1
        port_open "$port" && return 0
        sleep 0.1
    done
    return 1
}

probe() { # one GET over bash /dev/tcp; prints the status line; succeeds on 200 + "hello world"
    local port=$1 resp
    resp=$(
        exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
        printf 'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
        timeout 5 cat <&3
    ) 2>/dev/null || true
    printf '%s\n' "${resp%%$'\r'*}"
    [[ $resp == "HTTP/1.1 200"* && $resp == *"hello world"* ]]
}

pin_tree() { # cpu pid: every thread of the pid and its children
    [[ $PIN == split ]] || return 0
    local p
    for p in $(tree_pids "$2"); do taskset -a -p -c "$1" "$p" >/dev/null 2>&1 || true; done
}

affinity_of() { # the Cpus_allowed_list values of all threads of the tree
    local p t out=()
    for p in $(tree_pids "$1"); do
        for t in /proc/"$p"/task/*; do
            out+=("$(awk '/^Cpus_allowed_list/ {print $2}' "$t/status" 2>/dev/null)")
        done
    done
    printf '%s\n' "${out[@]}" | sort -u | paste -sd/ -
}

cpu_ticks() { # "utime stime" summed over the tree (fields 14, 15 of /proc/PID/stat)
    local p u=0 s=0 rest
    for p in "$@"; do
        rest=$(cat "/proc/$p/stat" 2>/dev/null) || continue
        rest=${rest##*) }            # drop "pid (comm) "; field 3 is now the first
        read -r -a f <<<"$rest"
        u=$((u + f[11])) s=$((s + f[12]))
    done
    echo "$u $s"
}

cpu_snapshot() { # "busy idle" jiffies per cpu, space separated
    awk '/^cpu[0-9]/ {printf "%d %d ", $2 + $3 + $4 + $7 + $8 + $9, $5 + $6}' /proc/stat
}

cpu_busy() { # before after -> "96/97" (busy % of each cpu during the run)
    awk -v a="$1" -v b="$2" 'BEGIN {
        n = split(a, x, " "); split(b, y, " "); out = ""
        for (i = 1; i < n; i += 2) {
            bu = y[i] - x[i]; id = y[i + 1] - x[i + 1]
            out = out (out == "" ? "" : "/") (bu + id > 0 ? int(100 * bu / (bu + id) + 0.5) : "?")
        }
        print out }'
}

peak_rss_kb() { # largest VmHWM in the tree (for nginx: the worker)
    local p v max=0
    for p in "$@"; do
        v=$(awk '/^VmHWM/ {print $2}' "/proc/$p/status" 2>/dev/null) || continue
        [[ -n $v ]] && ((v > max)) && max=$v
    done
    echo "$max"
}

# --- targets ------------------------------------------------------------------------
ORDER=()
add_target() { # key port label log
    ORDER+=("$1"); PORT[$1]=$2; LABEL[$1]=$3; LOGCOL[$1]=$4
}
NGX_V=$(nginx -v 2>&1 | sed 's|.*nginx/||')
HAP_V=$(haproxy -v 2>/dev/null | awk 'NR==1 {print $3}')
add_target direct 9001 "upstream direct (nginx return 200)" off
add_target nginx 9002 "nginx $NGX_V proxy" off
add_target haproxy 9003 "HAProxy $HAP_V proxy" off
add_target portcullis 9005 "portcullis" off
if ((LOGS)); then
    add_target nginx_log 9007 "nginx $NGX_V proxy" "on (JSON, buffer=64k flush=100ms)"
    add_target haproxy_log 9008 "HAProxy $HAP_V proxy" "on (option httplog, log stdout → file)"
    add_target portcullis_log 9006 "portcullis" "on (JSON file)"
fi
IDLE_PORT=9009

for key in "${ORDER[@]}"; do
    if port_open "${PORT[$key]}"; then
        echo "run.sh: port ${PORT[$key]} is already in use; stop whatever listens there first" >&2; exit 1
    fi
done
if ((IDLE)) && port_open $IDLE_PORT; then echo "run.sh: port $IDLE_PORT is already in use" >&2; exit 1; fi
mkdir -p "$PEER_DIR"
rm -rf "$RUN"
mkdir -p "$RUN"

avail_mb=$(df -Pm /tmp | awk 'NR==2 {print $4}')
((avail_mb > 2048)) || log "warning: only ${avail_mb} MB free in /tmp; the access-log runs write up to ~200 MB each"

# --- build portcullis -----------------------------------------------------------------
PC_BIN=${PORTCULLIS_BIN:-${CARGO_TARGET_DIR:-$REPO/target}/release/portcullis}
PC_NOTE=
if ((SKIP_PC)); then
    PC_NOTE="skipped (--skip-portcullis)"
elif ((!BUILD)); then
    [[ -x $PC_BIN ]] || { PC_NOTE="skipped: --no-build and no $PC_BIN"; SKIP_PC=1; }
else
    log "building portcullis (cargo build --release) ..."
    if ! (cd "$REPO" && cargo build --release) >"$RUN/build.log" 2>&1; then
        tail -n 20 "$RUN/build.log" >&2
        PC_NOTE="skipped: cargo build --release failed (see $RUN/build.log)"
        SKIP_PC=1
    elif [[ ! -x $PC_BIN ]]; then
        PC_NOTE="skipped: $PC_BIN not found after the build"
        SKIP_PC=1
    fi
fi

# --- configs --------------------------------------------------------------------------
write_pc_config() { # file port access [extra server lines]
    cat >"$1" <<EOF
# written by benches/wrk/run.sh
[server]
workers = 1
listen = ["127.0.0.1:$2"]
${4:-}
[log]
access = "$3"

[[upstream]]
name = "up"
targets = ["127.0.0.1:9001"]

[[route]]
name = "all"
path = "/"
upstream = "up"
EOF
}
write_pc_config "$RUN/portcullis.toml" 9005 off
write_pc_config "$RUN/portcullis-log.toml" 9006 "$RUN/portcullis-access.log"
# 10,000 idle connections must stay under max_connections (default 10000 per core)
write_pc_config "$RUN/portcullis-idle.toml" $IDLE_PORT off "max_connections = $((IDLE_CONNS + 1000))
idle_timeout = \"300s\""

# nginx with an access log: same config, port 9007, a JSON line per request, buffered
# writes flushed every 100 ms (portcullis writes its access log asynchronously, ≤100 ms).
NGX_LOG_FORMAT="  log_format pcjson escape=json '{\"time\":\"\$time_iso8601\",\"request_id\":\"\$request_id\",\"client_ip\":\"\$remote_addr\",\"method\":\"\$request_method\",\"path\":\"\$request_uri\",\"status\":\$status,\"bytes_in\":\$request_length,\"bytes_out\":\$bytes_sent,\"upstream\":\"\$upstream_addr\",\"upstream_ms\":\"\$upstream_response_time\",\"duration_ms\":\"\$request_time\"}';"
while IFS= read -r line; do
    if [[ $line == *"access_log off;"* ]]; then
        printf '%s\n' "$NGX_LOG_FORMAT" "  access_log $RUN/nginx-proxy-access.log pcjson buffer=64k flush=100ms;"
    else
        line=${line//9002/9007}
        line=${line//nginx-proxy.err/nginx-proxy-log.err}
        line=${line//nginx-proxy.pid/nginx-proxy-log.pid}
        printf '%s\n' "$line"
    fi
done <"$PEERS/nginx-proxy.conf" >"$RUN/nginx-proxy-log.conf"
grep -q 'access_log .*pcjson' "$RUN/nginx-proxy-log.conf" || { echo "run.sh: could not derive the nginx access-log config" >&2; exit 1; }
# HAProxy with an access log: `option httplog`, `log stdout format raw`, stdout → file
# (no syslog daemon needed; HAProxy writes each line with its own write()).
sed -e 's/9003/9008/g' -e '/^defaults/a\  log stdout format raw local0\n  option httplog' \
    "$PEERS/haproxy.cfg" >"$RUN/haproxy-log.cfg"
cp "$PEERS"/upstream-nginx.conf "$PEERS"/nginx-proxy.conf "$PEERS"/haproxy.cfg "$RUN/"

# --- start ----------------------------------------------------------------------------
launch() { # key cpu stdout-file command...
    local key=$1 cpu=$2 out=$3; shift 3
    if [[ $PIN == split ]]; then
        taskset -c "$cpu" "$@" >>"$out" 2>&1 &
    else
        "$@" >>"$out" 2>&1 &
    fi
    PID[$key]=$!
    STARTED+=("$!")
}

start_target() { # key -> 0 when ready
    local key=$1 port=${PORT[$1]} cpu=$SUT_CPU
    case $key in
        direct) cpu=$LOAD_CPU
            launch "$key" "$cpu" "$RUN/$key.out" nginx -c "$RUN/upstream-nginx.conf" -e "$PEER_DIR/upstream.err" ;;
        nginx) launch "$key" "$cpu" "$RUN/$key.out" nginx -c "$RUN/nginx-proxy.conf" -e "$PEER_DIR/nginx-proxy.err" ;;
        nginx_log) launch "$key" "$cpu" "$RUN/$key.out" nginx -c "$RUN/nginx-proxy-log.conf" -e "$PEER_DIR/nginx-proxy-log.err" ;;
        haproxy) launch "$key" "$cpu" "$RUN/$key.out" haproxy -f "$RUN/haproxy.cfg" ;;
        haproxy_log) launch "$key" "$cpu" "$RUN/haproxy-access.log" haproxy -f "$RUN/haproxy-log.cfg" ;;
        portcullis) launch "$key" "$cpu" "$RUN/$key.out" "$PC_BIN" run --config "$RUN/portcullis.toml" ;;
        portcullis_log) launch "$key" "$cpu" "$RUN/$key.out" "$PC_BIN" run --config "$RUN/portcullis-log.toml" ;;
        portcullis_idle) launch "$key" "$cpu" "$RUN/$key.out" "$PC_BIN" run --config "$RUN/portcullis-idle.toml" ;;
    esac
    if ! wait_ready "$port" "${PID[$key]}" 15; then
        log "error: $key did not start listening on $port; its output:"
        tail -n 20 "$RUN/$key.out" >&2 2>/dev/null || true
        return 1
    fi
    # re-pin after start: also overrides any per-thread affinity the server set itself
    if [[ $key == direct ]]; then pin_tree "$LOAD_CPU" "${PID[$key]}"; else pin_tree "$SUT_CPU" "${PID[$key]}"; fi
    local status
    if ! status=$(probe "$port"); then
        log "error: $key on $port answered '$status' instead of 200 hello world"
        return 1
    fi
}

check_pc_config() {
    local out
    if ! out=$("$PC_BIN" check --config "$1" 2>&1); then
        log "error: portcullis check --config $1 failed: $out"
        return 1
    fi
}

drop_target() { # key: remove from ORDER
    local k new=()
    for k in "${ORDER[@]}"; do [[ $k == "$1" ]] || new+=("$k"); done
    ORDER=("${new[@]}")
}

start_target direct || { echo "run.sh: the upstream (9001) did not start" >&2; exit 1; }
for key in "${ORDER[@]}"; do
    [[ $key == direct ]] && continue
    if [[ $key == portcullis* ]]; then
        if ((SKIP_PC)); then drop_target "$key"; continue; fi
        cfg=$RUN/portcullis.toml; [[ $key == portcullis_log ]] && cfg=$RUN/portcullis-log.toml
        if ! check_pc_config "$cfg" || ! start_target "$key"; then
            PC_NOTE="skipped: $key failed to start (see $RUN/$key.out)"
            drop_target portcullis; drop_target portcullis_log; SKIP_PC=1
            continue
        fi
    else
        start_target "$key" || { echo "run.sh: $key did not start" >&2; exit 1; }
    fi
done

PC_DRIVER=
if [[ -f $RUN/portcullis.out ]]; then
    PC_DRIVER=$(grep -o 'driver=[a-z_]*' "$RUN/portcullis.out" | head -n1 || true)
fi

WRK=(wrk)
[[ $PIN == split ]] && WRK=(taskset -c "$LOAD_CPU" wrk)

to_us() { # "123.45us" | "1.2ms" | "1.01s" -> microseconds
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) { sub(/us$/, "", v); print v + 0 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); print v * 1000 }
        else if (v ~ /m$/) { sub(/m$/, "", v); print v * 60e6 }
        else if (v ~ /s$/) { sub(/s$/, "", v); print v * 1e6 }
        else print "nan" }'
}

RESULTS=$RUN/results.tsv
printf 'key\tround\trps\trequests\tp50_us\tp99_us\tuser_ticks\tsys_ticks\thwm_kb\terrors\tlog_lines\tcpu_busy\n' >"$RESULTS"

logfile_of() {
    case $1 in
        nginx_log) echo "$RUN/nginx-proxy-access.log" ;;
        haproxy_log) echo "$RUN/haproxy-access.log" ;;
        portcullis_log) echo "$RUN/portcullis-access.log" ;;
    esac
}

run_one() { # key round duration record(0|1)
    local key=$1 round=$2 dur=$3 record=$4 port=${PORT[$1]} out
    local -a pids
    mapfile -t pids < <(tree_pids "${PID[$key]}")
    if [[ $key == direct ]]; then pin_tree "$SUT_CPU" "${PID[direct]}"; fi
    local lf; lf=$(logfile_of "$key")
    [[ -n $lf && -f $lf ]] && : >"$lf"
    out=$RUN/wrk-$key-$round.txt
    local t0 t1 c0 c1
    c0=$(cpu_snapshot)
    t0=$(cpu_ticks "${pids[@]}")
    "${WRK[@]}" -t1 -c"$CONNS" -d"${dur}s" --latency "http://127.0.0.1:$port/" >"$out" 2>&1 &
    WRK_PID=$!
    wait "$WRK_PID" || { log "warning: wrk exited non-zero for $key"; }
    WRK_PID=
    t1=$(cpu_ticks "${pids[@]}")
    c1=$(cpu_snapshot)
    if [[ $key == direct ]]; then pin_tree "$LOAD_CPU" "${PID[direct]}"; fi
    ((record)) || return 0
    local lines=
    if [[ -n $lf ]]; then
        sleep 0.3 # let async / buffered log writers flush (≤100 ms)
        lines=$(wc -l <"$lf" 2>/dev/null || echo 0)
        # last line: HAProxy's stdout loses O_APPEND, so after a truncation its file starts sparse
        [[ -s $RUN/$key-sample.log ]] || tail -n 1 "$lf" 2>/dev/null | tr -d '\0' >"$RUN/$key-sample.log" || true
        : >"$lf"
    fi
    local requests rps p50 p99 non2xx sockerr
    requests=$(awk '/requests in/ {print $1; exit}' "$out")
    rps=$(awk '/^Requests\/sec:/ {print $2; exit}' "$out")
    p50=$(awk '$1 == "50%" {print $2; exit}' "$out")
    p99=$(awk '$1 == "99%" {print $2; exit}' "$out")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $NF; exit}' "$out")
    sockerr=$(awk '/Socket errors:/ {gsub(",", ""); print $4 + $6 + $8 + $10; exit}' "$out")
    if [[ -z $requests || -z $rps ]]; then
        log "warning: could not parse wrk output for $key round $round:"; cat "$out" >&2
        requests=0 rps=0
    fi
    local u0 s0 u1 s1
    read -r u0 s0 <<<"$t0"; read -r u1 s1 <<<"$t1"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$key" "$round" "$rps" "$requests" \
        "$(to_us "${p50:-nan}")" "$(to_us "${p99:-nan}")" "$((u1 - u0))" "$((s1 - s0))" \
        "$(peak_rss_kb "${pids[@]}")" "$(( ${non2xx:-0} + ${sockerr:-0} ))" "$lines" "$(cpu_busy "$c0" "$c1")" >>"$RESULTS"
    log "  round $round  $(printf '%-15s' "$key") $(printf '%10s' "$rps") req/s  p50 ${p50:-?}  p99 ${p99:-?}"
}

log "pinning: $PIN; peers from $PEERS; fd limit $NOFILE; CLK_TCK $CLK_TCK"
log "warm-up: 1 s per target"
for key in "${ORDER[@]}"; do run_one "$key" 0 1 0; done
for ((r = 1; r <= ROUNDS; r++)); do
    log "round $r/$ROUNDS"
    for key in "${ORDER[@]}"; do run_one "$key" "$r" "$DURATION" 1; sleep 1; done
done

# --- idle keep-alive connections -------------------------------------------------------
IDLE_OUT=
if ((IDLE)); then
    if ((SKIP_PC)); then
        IDLE_OUT="- portcullis $PC_NOTE"
    elif ((IDLE_CONNS + 100 > NOFILE)); then
        IDLE_OUT="- skipped: fd limit $NOFILE is too low for $IDLE_CONNS connections"
    else
        log "idle: $IDLE_CONNS keep-alive connections to a fresh portcullis on $IDLE_PORT"
        PORT[portcullis_idle]=$IDLE_PORT
        if check_pc_config "$RUN/portcullis-idle.toml" && start_target portcullis_idle; then
            IDLE_OUT=$(python3 "$SCRIPT_DIR/idle_conns.py" --pid "${PID[portcullis_idle]}" -n "$IDLE_CONNS" --hold 2 \
                "127.0.0.1:$IDLE_PORT" 2>&1) || IDLE_OUT+=$'\n- (idle_conns.py reported failures)'
        else
            IDLE_OUT="- skipped: portcullis did not start with $RUN/portcullis-idle.toml"
        fi
    fi
fi

# --- report ---------------------------------------------------------------------------
PC_REV=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo "no commit")
[[ -n $(git -C "$REPO" status --porcelain 2>/dev/null | grep -v '^??' || true) ]] && PC_REV+=" (+ uncommitted changes)"
WRK_V=$( (wrk -v 2>&1 || true) | awk 'NR==1 {print $2}')
CPU_MODEL=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)
if [[ $PIN == split ]]; then
    PIN_TEXT="wrk and the upstream nginx on cpu$LOAD_CPU; the process under test alone on cpu$SUT_CPU (taskset at launch, then \`taskset -a -p\` on every thread after start, overriding any self-pinning; for the upstream-direct row the upstream moves to cpu$SUT_CPU during its run)"
else
    PIN_TEXT="none (the scheduler places wrk, the upstream and the proxy on the $NCPU cores)"
fi
AFF=
for key in "${ORDER[@]}"; do
    [[ $key == direct ]] && continue
    AFF+="$key=cpu$(affinity_of "${PID[$key]}") "
done

{
    echo "## portcullis wrk benchmark — $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "- machine: $NCPU × $CPU_MODEL, Linux $(uname -r); fd limit $NOFILE"
    echo "- load: \`wrk -t1 -c$CONNS -d${DURATION}s --latency\` (wrk $WRK_V), $ROUNDS rounds interleaved, each round in the order: ${ORDER[*]} (1 s warm-up of each first)"
    echo "- pinning: $PIN_TEXT; thread affinity seen: ${AFF:-n/a}"
    echo "- every server: one worker, keep-alive to the upstream nginx on 9001 (\`return 200 \"hello world\\n\"\`); peer configs from $PEERS"
    echo "- portcullis: ${PC_NOTE:-$PC_REV, release build, ${PC_DRIVER:-driver not logged}}"
    echo "- CPU/request: (utime + stime) delta of the process under test (/proc/PID/stat fields 14 and 15, nginx: master + worker; CLK_TCK $CLK_TCK) ÷ requests wrk reported. For the upstream-direct row it is the upstream's own cost. Peak RSS: VmHWM after the runs (nginx: the worker)."
    echo
    for key in "${ORDER[@]}"; do printf '%s\t%s\t%s\n' "$key" "${LABEL[$key]}" "${LOGCOL[$key]}"; done >"$RUN/labels.tsv"
    python3 - "$RESULTS" "$ROUNDS" "$CLK_TCK" "$RUN/labels.tsv" <<'PY'
import csv, statistics, sys
path, rounds, tck, labels_path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
order, lab, logcol = [], {}, {}
with open(labels_path) as f:
    for line in f:
        key, label, logc = line.rstrip("\n").split("\t")
        order.append(key)
        lab[key], logcol[key] = label, logc
rows = {}
with open(path) as f:
    for r in csv.DictReader(f, delimiter="\t"):
        rows.setdefault(r["key"], []).append(r)

def f(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")

def med(xs):
    xs = [x for x in xs if x == x]
    return statistics.median(xs) if xs else float("nan")

hdr = ["target", "access log", "req/s (median)", "req/s min–max", "p50 ms", "p99 ms",
       "user µs/req", "sys µs/req", "CPU µs/req", "peak RSS MiB", "errors"]
print("| " + " | ".join(hdr) + " |")
print("|" + "|".join(["---"] * 2 + ["---:"] * (len(hdr) - 2)) + "|")
for key in order:
    rs = rows.get(key, [])
    if not rs:
        continue
    rps = [f(r["rps"]) for r in rs]
    per = lambda r, col: f(r[col]) * 1e6 / tck / f(r["requests"]) if f(r["requests"]) > 0 else float("nan")
    user = med([per(r, "user_ticks") for r in rs])
    sys_ = med([per(r, "sys_ticks") for r in rs])
    tot = med([per(r, "user_ticks") + per(r, "sys_ticks") for r in rs])
    logtxt = logcol.get(key, "off")
    if any(r["log_lines"] for r in rs):
        ratio = med([f(r["log_lines"]) / f(r["requests"]) for r in rs if f(r["requests"]) > 0])
        logtxt += f"; {ratio:.2f} lines/req"
    errors = sum(int(f(r["errors"])) for r in rs)
    print(f"| {lab.get(key, key)} | {logtxt} | {med(rps):,.0f} | {min(rps):,.0f}–{max(rps):,.0f} | "
          f"{med([f(r['p50_us']) for r in rs]) / 1000:.3f} | {med([f(r['p99_us']) for r in rs]) / 1000:.3f} | "
          f"{user:.2f} | {sys_:.2f} | {tot:.2f} | {max(f(r['hwm_kb']) for r in rs) / 1024:.1f} | {errors} |")
print()
print(f"Medians over {rounds} round(s); errors = non-2xx responses + socket errors summed over the rounds.")
print()
print("<details><summary>every run</summary>")
print()
print("| round | target | req/s | p50 ms | p99 ms | user µs/req | sys µs/req | VmHWM MiB | errors | CPUs busy % |")
print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for rnd in range(1, rounds + 1):
    for key in order:
        for r in rows.get(key, []):
            if int(r["round"]) != rnd:
                continue
            n = f(r["requests"])
            u = f(r["user_ticks"]) * 1e6 / tck / n if n else float("nan")
            s = f(r["sys_ticks"]) * 1e6 / tck / n if n else float("nan")
            print(f"| {rnd} | {key} | {f(r['rps']):,.0f} | {f(r['p50_us']) / 1000:.3f} | {f(r['p99_us']) / 1000:.3f} | "
                  f"{u:.2f} | {s:.2f} | {f(r['hwm_kb']) / 1024:.1f} | {r['errors']} | {r['cpu_busy']} |")
print()
print("</details>")
PY
    if ((LOGS)); then
        echo
        echo "Access-log line written per request (a sample line of each log):"
        echo
        for key in nginx_log haproxy_log portcullis_log; do
            if [[ -s $RUN/$key-sample.log ]]; then
                printf -- '- %s: `%s`\n' "$key" "$(head -c 400 "$RUN/$key-sample.log")"
            fi
        done
    fi
    if ((IDLE)); then
        echo
        echo "### idle keep-alive connections (portcullis, fresh process on $IDLE_PORT, max_connections $((IDLE_CONNS + 1000)), idle_timeout 300s)"
        echo
        printf '%s\n' "$IDLE_OUT"
    fi
}
exit 0
