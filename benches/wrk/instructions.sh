#!/usr/bin/env bash
# User-space instructions per proxied request, counted by callgrind: repeatable for the
# same binary and inputs, whatever else the machine is doing (unlike wall-clock CPU).
#
#   benches/wrk/instructions.sh [N]        (default N = 2000 requests)
#
# Starts the static upstream (nginx, peers/upstream-nginx.conf, 127.0.0.1:9001) and
# target/release/portcullis (or $PORTCULLIS_BIN; one worker, access log off, 127.0.0.1:9005) under
# valgrind --tool=callgrind, sends 200 warm-up requests on one keep-alive connection,
# zeroes the counters, sends N more, dumps, and prints instructions / N.
# Needs: valgrind (callgrind_control, callgrind_annotate), nginx-light, python3.
set -euo pipefail
N=${1:-2000}
root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
peers="$root/benches/wrk/peers"
work=$(mktemp -d /tmp/portcullis-cg.XXXXXX)
mkdir -p /tmp/portcullis-peers
cat > "$work/gw.toml" <<TOML
[server]
workers = 1
listen = ["127.0.0.1:9005"]
[log]
access = "off"
[[upstream]]
name = "up"
targets = ["127.0.0.1:9001"]
[[route]]
name = "all"
path = "/"
upstream = "up"
TOML
cat > "$work/drive.py" <<'PY'
import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port))
req = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
buf = b""
for _ in range(n):
    s.sendall(req)
    while True:
        j = buf.find(b"\r\n\r\n")
        if j >= 0:
            cl = 0
            for line in buf[:j].decode().split("\r\n")[1:]:
                k, v = line.split(":", 1)
                if k.lower() == "content-length":
                    cl = int(v)
            if len(buf) >= j + 4 + cl:
                buf = buf[j + 4 + cl:]
                break
        chunk = s.recv(65536)
        if not chunk:
            sys.exit("connection closed")
        buf += chunk
PY
nginx -c "$peers/upstream-nginx.conf" &
up=$!
valgrind --tool=callgrind --callgrind-out-file="$work/cg.out.%p" \
    "${PORTCULLIS_BIN:-$root/target/release/portcullis}" run --config "$work/gw.toml" > "$work/gw.log" 2>&1 &
vg=$!
cleanup() { kill -9 "$vg" 2>/dev/null || true; kill "$up" 2>/dev/null || true; }
trap cleanup EXIT
for _ in $(seq 100); do sleep 0.2; (echo > /dev/tcp/127.0.0.1/9005) 2>/dev/null && break; done
timeout 120 python3 "$work/drive.py" 9005 200
callgrind_control -z "$vg" > /dev/null
timeout 300 python3 "$work/drive.py" 9005 "$N"
callgrind_control -d "$vg" > /dev/null
sleep 1
total=$(callgrind_annotate "$(ls "$work"/cg.out.*.1 | head -1)" 2>/dev/null | grep -m1 'PROGRAM TOTALS' | awk '{print $1}' | tr -d ,)
echo "user instructions per proxied request: $((total / N)) (callgrind, $N requests, $(grep -o 'driver=[a-z_]*' "$work/gw.log" | head -1))"
echo "profile: $(ls "$work"/cg.out.*.1 | head -1)"
