#!/usr/bin/env bash
# HTTPS under wrk: portcullis and nginx terminating TLS with the same ECDSA P-256
# certificate, both proxying to the same static nginx upstream (keep-alive), in
# interleaved rounds of the same run:
#   1. keep-alive requests/s (wrk -c64 over 64 long-lived TLS connections),
#      terminating only (a mock route / `return 200`) and proxying;
#   2. new TLS handshakes/s (`Connection: close`: every request is a new TCP
#      connection and a full handshake; wrk does not resume sessions).
# Plain HTTP portcullis is run alongside as the no-TLS reference.
#
#   benches/wrk/tls.sh [--duration S] [--rounds N] [--no-build]
#
# One worker each on cpu1; the upstream and wrk (-t1) on cpu0. CPU µs per request
# is the server's own CPU (from /proc), the fairer figure when wrk's side of the
# handshakes limits the rate. Needs: wrk nginx-light openssl (apt).
set -euo pipefail
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh" "$@"
command -v openssl >/dev/null || { log "openssl not found (apt-get install -y openssl)"; exit 1; }

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -keyout "$RUN/key.pem" -out "$RUN/cert.pem" -subj /CN=bench.test \
    -addext subjectAltName=DNS:bench.test,IP:127.0.0.1 2>/dev/null

start_upstream
# gw_config PLAIN_LISTEN TLS_PORT ROUTE: one worker, access log off, the bench
# certificate on 127.0.0.1:TLS_PORT.
gw_config() {
    printf '[server]\nworkers = 1\nlisten = %s\n[[server.tls]]\nlisten = "127.0.0.1:%s"\ncerts = [{ cert = "%s", key = "%s" }]\n[log]\naccess = "off"\n%s\n' \
        "$1" "$2" "$RUN/cert.pem" "$RUN/key.pem" "$3"
}
start_gw portcullis "$(gw_config '["127.0.0.1:9020"]' 9443 '[[upstream]]
name = "u"
targets = ["127.0.0.1:9001"]
[[route]]
name = "all"
path = "/"
upstream = "u"')"
GW=$GW_PID

# nginx: the peers' keep-alive proxy config with an ssl listener on 9444.
sed -e "s|/tmp/portcullis-peers|$RUN|g" \
    -e "s|listen 127.0.0.1:9002 backlog=4096;|listen 127.0.0.1:9444 ssl backlog=4096; ssl_certificate $RUN/cert.pem; ssl_certificate_key $RUN/key.pem; ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache shared:SSL:10m;|" \
    "$SCRIPT_DIR/peers/nginx-proxy.conf" >"$RUN/nginx-tls.conf"
grep -q 'listen 127.0.0.1:9444 ssl' "$RUN/nginx-tls.conf" || { log "could not derive the nginx TLS config"; exit 1; }
nginx -c "$RUN/nginx-tls.conf" -p "$RUN" &
NGX_MASTER=$!
STARTED+=("$NGX_MASTER")
wait_port 9020; wait_port 9443; wait_port 9444
NGX=$(pgrep -P "$NGX_MASTER" | head -1)

# Terminating only (no upstream: portcullis answers a mock route, nginx `return
# 200`), so cpu0 runs wrk alone and the TLS servers, not the upstream, set the pace.
start_gw terminate "$(gw_config '[]' 9445 '[[route]]
name = "hello"
path = "/"
mock = { status = 200, body = "hello world\n", content_type = "text/plain" }')"
GW_TERM=$GW_PID
cat >"$RUN/nginx-tls-return.conf" <<NGX
worker_processes 1;
daemon off;
error_log $RUN/nginx-tls-return.err;
pid $RUN/nginx-tls-return.pid;
events { worker_connections 4096; }
http {
  access_log off;
  server {
    listen 127.0.0.1:9446 ssl backlog=4096;
    ssl_certificate $RUN/cert.pem; ssl_certificate_key $RUN/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache shared:SSL:10m;
    keepalive_requests 1000000;
    location / { default_type text/plain; return 200 "hello world\n"; }
  }
}
NGX
nginx -c "$RUN/nginx-tls-return.conf" -p "$RUN" &
NGX_RET_MASTER=$!
STARTED+=("$NGX_RET_MASTER")
wait_port 9445; wait_port 9446
NGX_RET=$(pgrep -P "$NGX_RET_MASTER" | head -1)

ab_compare "HTTPS keep-alive requests, terminating only (mock / return 200)" \
    "portcullis_https_mock $GW_TERM https:9445" \
    "nginx_https_return $NGX_RET https:9446"

ab_compare "HTTPS keep-alive requests, proxying to the upstream" \
    "portcullis_https $GW https:9443" \
    "nginx_https $NGX https:9444" \
    "portcullis_plain_http $GW 9020"

CLOSE="-H 'Connection: close'"
ab_compare "New TLS handshakes (a full handshake per request)" \
    "portcullis_https_handshakes $GW https:9443 $CLOSE" \
    "nginx_https_handshakes $NGX https:9444 $CLOSE"
