#!/usr/bin/env python3
"""Signs one request with botocore (AWS's own SigV4 signer) for tests/auth_sigv4.rs.

    sigv4_sign.py METHOD URL REGION SERVICE KEY_ID SECRET
                  [--body TEXT] [--presign SECONDS] [--unsigned] [--skew SECONDS]
                  [--header NAME:VALUE]...

Prints JSON: {"url": <signed URL>, "headers": [[name, value], ...]} — the headers
to send (including host, x-amz-date, authorization, x-amz-content-sha256).
--skew shifts the signing clock (negative = the past). --unsigned signs with
UNSIGNED-PAYLOAD. --presign makes a presigned URL (query form) valid for SECONDS.
"""
import argparse, datetime, json, sys

import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

p = argparse.ArgumentParser()
for a in ("method", "url", "region", "service", "key_id", "secret"):
    p.add_argument(a)
p.add_argument("--body", default=None)
p.add_argument("--presign", type=int, default=None)
p.add_argument("--unsigned", action="store_true")
p.add_argument("--skew", type=int, default=0)
p.add_argument("--header", action="append", default=[])
args = p.parse_args()

if args.skew:
    real = datetime.datetime
    class Shifted(real):
        @classmethod
        def utcnow(cls):
            return real.utcnow() + datetime.timedelta(seconds=args.skew)
        @classmethod
        def now(cls, tz=None):
            return real.now(tz) + datetime.timedelta(seconds=args.skew)
    botocore.auth.datetime.datetime = Shifted

headers = {}
for h in args.header:
    k, v = h.split(":", 1)
    headers[k] = v
if args.unsigned:
    headers["x-amz-content-sha256"] = "UNSIGNED-PAYLOAD"
req = AWSRequest(method=args.method, url=args.url, data=args.body, headers=headers)
creds = Credentials(args.key_id, args.secret)
if args.presign is not None:
    botocore.auth.SigV4QueryAuth(creds, args.service, args.region, expires=args.presign).add_auth(req)
else:
    signer = botocore.auth.SigV4Auth(creds, args.service, args.region)
    if not args.unsigned and "x-amz-content-sha256" not in headers:
        # What API clients send: the payload hash as a header.
        req.headers["x-amz-content-sha256"] = signer.payload(req)
    signer.add_auth(req)
prepared = req.prepare()
out = {"url": prepared.url, "headers": [[k, v] for k, v in prepared.headers.items()]}
json.dump(out, sys.stdout)
