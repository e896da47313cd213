#!/usr/bin/env bash
# The WAF under wrk, on benign API traffic: portcullis without a WAF, portcullis
# with the full shipped rule set (rules/, paranoia 1, block mode), portcullis with
# Debian's OWASP CRS 3.3.4 (its crs-setup.conf, paranoia 1), and nginx +
# ModSecurity 3 + the same CRS (../shared/peers, blocking mode), all proxying to
# the same static nginx upstream, in interleaved rounds of the same run.
#
#   benches/wrk/waf.sh [--duration S] [--rounds N] [--no-build]
#
# One worker each on cpu1; the upstream and wrk (-t1 -c64) on cpu0. Requests carry
# a realistic Host, User-Agent and Accept (CRS scores their absence).
# Needs: wrk nginx-light libnginx-mod-http-modsecurity modsecurity-crs (apt).
set -euo pipefail
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh" "$@"
[[ -f /usr/lib/nginx/modules/ngx_http_modsecurity_module.so ]] || { log "ModSecurity for nginx not installed (apt-get install -y libnginx-mod-http-modsecurity modsecurity-crs)"; exit 1; }

start_upstream
config() { # port, route extra, sections
    printf '[server]\nworkers = 1\nlisten = ["127.0.0.1:%s"]\n[log]\naccess = "off"\n%s\n[[upstream]]\nname = "u"\ntargets = ["127.0.0.1:9001"]\n[[route]]\nname = "all"\npath = "/"\nupstream = "u"\n%s\n' "$1" "$3" "$2"
}
start_gw off "$(config 9016 '' '')"; OFF_PID=$GW_PID
start_gw on "$(config 9017 'waf = "default"' "[waf.default]
rules = \"$REPO/rules\"")"; ON_PID=$GW_PID
start_gw crs "$(config 9018 'waf = "crs"' "[waf.crs]
crs = \"/usr/share/modsecurity-crs/rules\"
crs_setup = \"/etc/modsecurity/crs/crs-setup.conf\"")"; CRS_PID=$GW_PID

# nginx + ModSecurity + CRS, as ../shared/peers/README.md sets it up (paths into $RUN).
PEERS=$REPO/../shared/peers
sed 's/^SecRuleEngine DetectionOnly/SecRuleEngine On/; s/^SecAuditEngine RelevantOnly/SecAuditEngine Off/; s/^SecResponseBodyAccess On/SecResponseBodyAccess Off/' \
    /etc/nginx/modsecurity.conf >"$RUN/modsecurity.conf"
cp /etc/nginx/unicode.mapping "$RUN/"
sed "s|/tmp/portcullis-peers|$RUN|g" "$PEERS/modsecurity-main.conf" >"$RUN/modsecurity-main.conf"
sed "s|/tmp/portcullis-peers|$RUN|g" "$PEERS/nginx-modsecurity.conf" >"$RUN/nginx-modsecurity.conf"
nginx -c "$RUN/nginx-modsecurity.conf" -p "$RUN" &
MS_MASTER=$!
STARTED+=("$MS_MASTER")
wait_port 9016; wait_port 9017; wait_port 9018; wait_port 9004
MS_WORKER=$(pgrep -P "$MS_MASTER" | head -1)

H="-H 'Host: api.example.com' -H 'User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36' -H 'Accept: application/json' -H 'Accept-Language: en-US,en;q=0.9'"
URL_PATH="api/v1/orders?page=2&sort=created_at&q=O%27Brien"
ab_compare "Benign API traffic: no WAF, portcullis WAF (native rules), portcullis + CRS, nginx + ModSecurity + CRS" \
    "portcullis_no_waf $OFF_PID 9016/$URL_PATH $H" \
    "portcullis_waf $ON_PID 9017/$URL_PATH $H" \
    "portcullis_crs $CRS_PID 9018/$URL_PATH $H" \
    "nginx_modsecurity_crs $MS_WORKER 9004/$URL_PATH $H"
