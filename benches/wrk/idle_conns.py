#!/usr/bin/env python3
"""Memory cost of idle keep-alive connections (stdlib only).

Opens N keep-alive client connections to HOST:PORT, sends one `GET / HTTP/1.1` on
each and reads the whole response, keeps every connection open, then prints the
target process's VmRSS / VmHWM (from /proc/PID/status) before and after, and the
number of file descriptors it holds; then closes everything.

    idle_conns.py --pid PID [-n 10000] [--hold 2] [--tls] 127.0.0.1:9009

--tls speaks TLS (certificate not verified: the target is a local test server).

Exit status: 0 when every connection got a 2xx response and stayed open, 1 otherwise.
Loopback only: the target must be a 127.0.0.0/8 address or localhost.
"""

import argparse
import ipaddress
import os
import resource
import socket
import ssl
import sys
import time

MAX_CONNS = 18000  # the fd limit here is 20000; leave room for everything else


def proc_status(pid):
    """VmRSS and VmHWM of pid in KiB (None when unreadable)."""
    out = {"VmRSS": None, "VmHWM": None}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key = line.split(":", 1)[0]
                if key in out:
                    out[key] = int(line.split()[1])
    except OSError:
        pass
    return out


def fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, need)
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class BadResponse(Exception):
    pass


def read_chunked(sock, buf):
    """Consume a chunked body (and its trailers) that starts with buf."""

    def fill():
        chunk = sock.recv(65536)
        if not chunk:
            raise BadResponse("connection closed inside a chunked body")
        return chunk

    while True:
        while b"\r\n" not in buf:
            buf += fill()
        line, buf = buf.split(b"\r\n", 1)
        size = int(line.split(b";", 1)[0].strip() or b"x", 16)
        if size == 0:
            # trailers end with an empty line
            while True:
                while b"\r\n" not in buf:
                    buf += fill()
                line, buf = buf.split(b"\r\n", 1)
                if not line:
                    return
        while len(buf) < size + 2:
            buf += fill()
        buf = buf[size + 2:]


def read_response(sock):
    """Read one HTTP/1.1 response; return (status, keep_alive)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise BadResponse("connection closed before the response head")
        buf += chunk
        if len(buf) > 65536:
            raise BadResponse("response head too large")
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise BadResponse(f"bad status line {lines[0]!r}")
    status = int(parts[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    keep_alive = "close" not in ",".join(headers.get("connection", [])).lower()
    te = ",".join(headers.get("transfer-encoding", [])).lower()
    if te.endswith("chunked"):
        read_chunked(sock, rest)
    elif "content-length" in headers:
        length = int(headers["content-length"][0])
        remaining = length - len(rest)
        while remaining > 0:
            chunk = sock.recv(min(remaining, 65536))
            if not chunk:
                raise BadResponse("connection closed inside the body")
            remaining -= len(chunk)
    elif status >= 200 and status not in (204, 304):
        keep_alive = False  # read-until-close body: nothing to keep open
    return status, keep_alive


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("target", help="HOST:PORT (loopback only)")
    ap.add_argument("-n", "--count", type=int, default=10000, help="connections (default 10000)")
    ap.add_argument("--pid", type=int, help="pid of the server process to read VmRSS/VmHWM from")
    ap.add_argument("--hold", type=float, default=2.0, help="seconds to keep them open before measuring (default 2)")
    ap.add_argument("--host-header", default="localhost", help="Host header to send")
    ap.add_argument("--timeout", type=float, default=5.0, help="per-operation socket timeout, s")
    ap.add_argument("--tls", action="store_true", help="connect over TLS")
    args = ap.parse_args()

    host, _, port = args.target.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    addr = "127.0.0.1" if host == "localhost" else host
    if not ipaddress.ip_address(addr).is_loopback:
        sys.exit(f"refusing non-loopback target {host}")
    port = int(port)
    if not 1 <= args.count <= MAX_CONNS:
        sys.exit(f"--count must be 1..{MAX_CONNS}")
    if not 0 <= args.hold <= 60:
        sys.exit("--hold must be 0..60 s")

    limit = raise_nofile(args.count + 64)
    if limit < args.count + 16:
        sys.exit(f"file descriptor limit {limit} is too low for {args.count} connections (ulimit -n)")

    pid = args.pid
    before = proc_status(pid) if pid else {}
    fds_before = fd_count(pid) if pid else None

    request = (f"GET / HTTP/1.1\r\nHost: {args.host_header}\r\n"
               "User-Agent: idle_conns.py\r\nAccept: */*\r\n\r\n").encode()
    tls = None
    if args.tls:
        tls = ssl.create_default_context()
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
    socks = []
    failures = {}
    statuses = {}
    t0 = time.monotonic()
    for i in range(args.count):
        s = None
        try:
            s = socket.create_connection((addr, port), timeout=args.timeout)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if tls:
                s = tls.wrap_socket(s, server_hostname=args.host_header)
            s.sendall(request)
            status, keep = read_response(s)
            statuses[status] = statuses.get(status, 0) + 1
            if not (200 <= status < 300):
                raise BadResponse(f"status {status}")
            if not keep:
                raise BadResponse("server asked to close")
            socks.append(s)
        except (OSError, BadResponse, ValueError) as e:
            key = f"{type(e).__name__}: {e}"
            failures[key] = failures.get(key, 0) + 1
            if s is not None:
                s.close()
            if sum(failures.values()) >= 100:
                print(f"stopping after 100 failures at connection {i + 1}", file=sys.stderr)
                break
    opened_s = time.monotonic() - t0
    time.sleep(args.hold)

    # Still open? A closed keep-alive connection reads EOF without blocking.
    alive = 0
    for s in socks:
        try:
            s.setblocking(False)
            data = s.recv(1)
            if data:
                alive += 1  # unexpected bytes, but open
        except (BlockingIOError, ssl.SSLWantReadError):
            alive += 1
        except OSError:
            pass

    after = proc_status(pid) if pid else {}
    fds_after = fd_count(pid) if pid else None

    def mib(kib):
        return "n/a" if kib is None else f"{kib / 1024:.1f} MiB"

    print(f"- target: {host}:{port}, pid {pid if pid else 'not given'}")
    print(f"- opened {len(socks)}/{args.count} keep-alive connections in {opened_s:.2f}s "
          f"(one GET each, statuses {dict(sorted(statuses.items()))}); {alive} still open after {args.hold:g}s idle")
    if failures:
        for k, v in sorted(failures.items(), key=lambda kv: -kv[1]):
            print(f"- failures: {v} x {k}")
    if pid:
        print(f"- server VmRSS before: {mib(before.get('VmRSS'))}, with {alive} idle connections: "
              f"{mib(after.get('VmRSS'))}; VmHWM {mib(after.get('VmHWM'))}")
        if before.get("VmRSS") is not None and after.get("VmRSS") is not None and alive:
            per = (after["VmRSS"] - before["VmRSS"]) * 1024 / alive
            print(f"- RSS growth per idle connection: {per:.0f} bytes")
        print(f"- server open fds before: {fds_before}, after: {fds_after}")
    for s in socks:
        s.close()
    return 0 if (alive == args.count and not failures) else 1


if __name__ == "__main__":
    sys.exit(main())
