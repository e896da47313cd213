#!/usr/bin/env python3
"""Mints an RS256 JWT and the matching JWKS with openssl, for benches/wrk/auth.sh.

    jwt_token.py KEY.pem OUT_JWKS.json   -> prints the token (valid for 1 hour)
"""
import base64, json, subprocess, sys, time

def b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

key, out = sys.argv[1], sys.argv[2]
mod = subprocess.run(["openssl", "rsa", "-in", key, "-noout", "-modulus"], check=True,
                     capture_output=True, text=True).stdout.strip().split("=", 1)[1]
n = bytes.fromhex(mod)
jwks = {"keys": [{"kty": "RSA", "kid": "bench", "alg": "RS256", "use": "sig",
                  "n": b64(n), "e": b64((65537).to_bytes(3, "big"))}]}
with open(out, "w") as f:
    json.dump(jwks, f)
now = int(time.time())
head = b64(json.dumps({"alg": "RS256", "typ": "JWT", "kid": "bench"}).encode())
body = b64(json.dumps({"iss": "https://idp.bench/", "aud": "bench", "sub": "user-1",
                       "exp": now + 3600, "iat": now, "scope": "orders:read"}).encode())
sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=f"{head}.{body}".encode(),
                     check=True, capture_output=True).stdout
print(f"{head}.{body}.{b64(sig)}")
