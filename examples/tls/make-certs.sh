#!/usr/bin/env bash
# Test certificates for examples/tls.toml, written to examples/tls/certs/ (not
# for production): a CA, a server certificate for localhost and 127.0.0.1
# signed by it, and a client certificate (CN=example-client) for mTLS.
#   examples/tls/make-certs.sh
#   curl --cacert examples/tls/certs/ca.pem https://localhost:8443/health
#   curl --cacert examples/tls/certs/ca.pem --cert examples/tls/certs/client.pem \
#        --key examples/tls/certs/client.key https://localhost:8443/internal
set -euo pipefail
out="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/certs"
mkdir -p "$out"
cd "$out"
days=825
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days "$days" \
    -keyout ca.key -out ca.pem -subj "/CN=portcullis example CA" 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout server.key -out server.csr -subj "/CN=localhost" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days "$days" \
    -extfile server.ext -out server.pem 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout client.key -out client.csr -subj "/CN=example-client" 2>/dev/null
printf 'extendedKeyUsage=clientAuth\n' >client.ext
openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days "$days" \
    -extfile client.ext -out client.pem 2>/dev/null
rm -f ./*.csr ./*.ext ca.srl
chmod 600 ./*.key
echo "certificates in $out"
