#!/usr/bin/env bash
# Authentication under wrk: the same proxied route without auth and with a JWT
# (RS256) authorizer, every request carrying the same bearer token (the steady
# state of a client reusing its token: a hit in the per-core verified-token cache).
#
#   benches/wrk/auth.sh [--duration S] [--rounds N] [--no-build]
#
# portcullis (1 worker, cpu1) in front of a static nginx upstream (cpu0, with wrk);
# interleaved rounds (default 3 × 10 s), wrk -t1 -c64. The token and its JWKS are
# minted by jwt_token.py from tests/fixtures/jwt/rsa1.pem.
# Needs: wrk, nginx, openssl, python3. Output: markdown on stdout.
set -euo pipefail
. "$(dirname -- "${BASH_SOURCE[0]}")/lib.sh" "$@"

TOKEN=$(python3 "$SCRIPT_DIR/jwt_token.py" "$REPO/tests/fixtures/jwt/rsa1.pem" "$RUN/jwks.json")
start_upstream
config() { # port, extra route lines, extra sections
    printf '[server]\nworkers = 1\nlisten = ["127.0.0.1:%s"]\n[log]\naccess = "off"\n%s\n[[upstream]]\nname = "u"\ntargets = ["127.0.0.1:9001"]\n[[route]]\nname = "all"\npath = "/"\nupstream = "u"\n%s\n' "$1" "$3" "$2"
}
JWT_AUTH='[auth.users]
type = "jwt"
issuer = "https://idp.bench/"
audiences = ["bench"]
jwks_file = "jwks.json"
algorithms = ["RS256"]
forward_claims = { sub = "x-user-id" }'
start_gw none "$(config 9014 '' '')"; NONE_PID=$GW_PID
start_gw jwt "$(config 9015 'auth = "users"
scopes = ["orders:read"]' "$JWT_AUTH")"; JWT_PID=$GW_PID
wait_port 9014; wait_port 9015
ab_compare "A proxied route without auth and with a JWT (RS256) authorizer" \
    "none $NONE_PID 9014 -H 'Authorization: Bearer $TOKEN'" \
    "jwt $JWT_PID 9015 -H 'Authorization: Bearer $TOKEN'"
