#!/usr/bin/env python3
"""Memory per idle keep-alive connection, plain and TLS.

    benches/wrk/idle_tls.py PID PLAIN_PORT TLS_PORT [N]

Opens N (default 2000) plain connections to 127.0.0.1:PLAIN_PORT, each sending one
request and reading the answer, and reads the gateway's VmRSS; closes them; then
the same over TLS to TLS_PORT. Prints KiB of RSS growth per connection. Loopback
only; the gateway needs max_connections above N (see benches/wrk/tls.sh for a
config with both listeners).
"""
import socket
import ssl
import sys
import time


def rss(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1])
    raise SystemExit("no VmRSS")


def open_idle(port, n, ctx):
    out = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        if ctx:
            s = ctx.wrap_socket(s, server_hostname="bench.test")
        s.sendall(b"GET / HTTP/1.1\r\nHost: bench.test\r\n\r\n")
        s.recv(4096)
        out.append(s)
    return out


def main():
    pid, plain, tls = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    n = int(sys.argv[4]) if len(sys.argv) > 4 else 2000
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    for label, port, c in (("plain", plain, None), ("TLS", tls, ctx)):
        before = rss(pid)
        conns = open_idle(port, n, c)
        time.sleep(0.5)
        grown = rss(pid) - before
        print(f"{n} idle {label} connections: +{grown / n:.1f} KiB RSS each")
        for s in conns:
            s.close()
        time.sleep(1)


main()
