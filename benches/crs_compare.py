#!/usr/bin/env python3
"""The CRS in portcullis against the CRS in ModSecurity, request by request.

Driven by benches/crs-compare.sh, which starts both (nginx + ModSecurity 3 with its
JSON audit log on for every transaction; portcullis with `[waf] crs` in block mode
and an access log file). This replays a corpus of cases (tests/waf_corpus/*.toml
format) through both, one request at a time, each with a unique X-Request-Id, and
reads the matched rule ids of each request from the two logs by that id:

  - ModSecurity: the JSON audit log (one transaction per line; part B gives the
    request headers, part H the messages with details.ruleId);
  - portcullis: the access log's "type":"waf" line (matches[].rule) with that
    request_id.

It prints every request where the verdicts (403 or not) or the sets of matched rule
ids differ, or only their statuses do (e.g. ModSecurity's 400 from modsecurity.conf's
200002 when its XML/JSON body parser fails, a rule portcullis does not load), then
totals and how often each CRS rule id differed. Rules left out of
the id-set comparison: the initialization, exception and blocking/correlation rules
(901xxx, 905xxx, 949xxx, 959xxx, 980xxx), response-phase rules (phase 3-5: portcullis
runs phases 1 and 2 only), rules without an attack-* tag (the paranoia-level skip
markers), and rules not in the CRS directory (ModSecurity's modsecurity.conf, e.g.
200002 body parse errors; those are shown beside the verdict instead).

  crs_compare.py replay --modsec PORT --gw PORT --modsec-audit FILE --gw-log FILE
                        --rules DIR [--also NAME=PORT]... [--json OUT] CORPUS.toml...

--also adds gateways (e.g. portcullis with its native rules, and with both rule
sets) whose statuses are recorded too; the report then ends with detection (403s)
per attack category and false positives per benign category for every side.
  crs_compare.py rule --rules DIR ID...     (a rule's phase, targets and operator)

Stdlib only (python3 >= 3.11 for tomllib).
"""

import argparse
import collections
import glob
import http.client
import json
import os
import re
import socket
import sys
import time
import tomllib

UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
HOST = "api.example.com"


# ---------------------------------------------------------------- CRS rule files


def _directives(text):
    """SecLang directives of a .conf file: (line number, joined text)."""
    out, cur, start = [], [], 0
    for n, line in enumerate(text.split("\n"), 1):
        s = line.strip()
        if not cur and (not s or s.startswith("#")):
            continue
        if not cur:
            start = n
        if s.endswith("\\"):
            cur.append(s[:-1])
            continue
        cur.append(s)
        out.append((start, " ".join(cur)))
        cur = []
    if cur:
        out.append((start, " ".join(cur)))
    return out


def _tokens(s):
    """Splits a directive into words; double-quoted words lose their quotes."""
    out, i, n = [], 0, len(s)
    while i < n:
        if s[i].isspace():
            i += 1
            continue
        if s[i] == '"':
            j, buf = i + 1, []
            while j < n and s[j] != '"':
                if s[j] == "\\" and j + 1 < n:
                    buf.append(s[j : j + 2] if s[j + 1] != '"' else '"')
                    j += 2
                    continue
                buf.append(s[j])
                j += 1
            out.append("".join(buf))
            i = j + 1
        else:
            j = i
            while j < n and not s[j].isspace():
                j += 1
            out.append(s[i:j])
            i = j
    return out


class Rule:
    def __init__(self, rid, file, line):
        self.id, self.file, self.line = rid, file, line
        self.phase = None
        self.tags = []
        self.msg = ""
        self.links = []  # (variables, operator, transformations)

    def attack(self):
        return any(t.startswith("attack-") for t in self.tags)


def load_rules(d):
    rules = {}
    for f in sorted(glob.glob(os.path.join(d, "*.conf"))):
        chained = None
        with open(f, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
        for line, dtext in _directives(text):
            w = _tokens(dtext)
            if not w or w[0] not in ("SecRule", "SecAction"):
                continue
            if w[0] == "SecRule":
                vars_, op = (w[1] if len(w) > 1 else ""), (w[2] if len(w) > 2 else "")
                acts = w[3] if len(w) > 3 else ""
            else:
                vars_, op, acts = "", "(SecAction)", (w[1] if len(w) > 1 else "")
            tfs = re.findall(r"\bt:([A-Za-z0-9]+)", acts)
            if chained is not None:
                chained.links.append((vars_, op, tfs))
                if not re.search(r"(^|,)\s*chain\s*(,|$)", acts):
                    chained = None
                continue
            m = re.search(r"\bid:'?(\d+)", acts)
            if not m:
                continue
            r = Rule(int(m.group(1)), os.path.basename(f), line)
            pm = re.search(r"\bphase:'?(\w+)", acts)
            if pm:
                r.phase = {"request": "2", "response": "4", "logging": "5"}.get(pm.group(1), pm.group(1))
            r.tags = re.findall(r"\btag:'([^']*)'", acts)
            mm = re.search(r"\bmsg:'([^']*)'", acts)
            r.msg = mm.group(1) if mm else ""
            r.links.append((vars_, op, tfs))
            rules[r.id] = r
            if re.search(r"(^|,)\s*chain\s*(,|$)", acts):
                chained = r
    return rules


def compared(rid, rules):
    """Whether a matched rule id takes part in the id-set comparison."""
    r = rules.get(rid)
    if r is None:
        return False
    if rid // 1000 in (901, 905, 949, 959, 980):
        return False
    if r.phase not in ("1", "2"):
        return False
    return r.attack()


def describe(r, width=0):
    out = []
    for i, (v, op, tfs) in enumerate(r.links):
        s = f"{'chain ' if i else ''}{v} \"{op}\" t:{','.join(t for t in tfs if t != 'none') or 'none'}"
        if width and len(s) > width:
            s = s[: width - 1] + "…"
        out.append(s)
    return out


# ---------------------------------------------------------------- requests


def load_cases(files):
    cases = []
    for f in files:
        with open(f, "rb") as fh:
            doc = tomllib.load(fh)
        for c in doc.get("case", []):
            c.setdefault("method", "GET")
            c.setdefault("headers", {})
            c.setdefault("body", "")
            c.setdefault("content_type", "")
            c["file"] = os.path.splitext(os.path.basename(f))[0]
            cases.append(c)
    return cases


def raw_request(c, marker):
    """The request as tests/waf.rs raw_case sends it, plus Accept (and Accept-Language)
    when the case has none, and the correlation marker in X-Request-Id (unless the case
    sets its own, which then serves as the marker)."""
    keys = {k.lower() for k in c["headers"]}
    head = f"{c['method']} {c['path']} HTTP/1.1\r\nHost: {HOST}\r\n"
    if "user-agent" not in keys:
        head += f"User-Agent: {UA}\r\n"
    if "accept" not in keys:
        head += "Accept: application/json, text/plain, */*\r\n"
    if "accept-language" not in keys:
        head += "Accept-Language: en-US,en;q=0.9\r\n"
    if "x-request-id" not in keys:
        head += f"X-Request-Id: {marker}\r\n"
    for k, v in c["headers"].items():
        head += f"{k}: {v}\r\n"
    body = c["body"].encode()
    if c["content_type"]:
        head += f"Content-Type: {c['content_type']}\r\n"
    if body or c["method"] in ("POST", "PUT"):
        head += f"Content-Length: {len(body)}\r\n"
    head += "\r\n"
    return head.encode() + body


def marker_of(c, n):
    for k, v in c["headers"].items():
        if k.lower() == "x-request-id":
            return v
    return f"crscmp-{os.getpid()}-{n:05d}"


def send(port, raw, method):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        s.sendall(raw)
        r = http.client.HTTPResponse(s, method=method)
        r.begin()
        r.read()
        return r.status
    except (OSError, http.client.HTTPException) as e:
        return f"error:{type(e).__name__}"
    finally:
        s.close()


class Tail:
    """New complete lines of a growing file."""

    def __init__(self, path):
        self.path, self.pos, self.buf = path, 0, b""

    def lines(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.pos)
                data = f.read()
        except FileNotFoundError:
            return []
        self.pos += len(data)
        self.buf += data
        *done, self.buf = self.buf.split(b"\n")
        return [l for l in done if l.strip()]


class ModsecLog:
    def __init__(self, path):
        self.tail, self.seen, self.bad = Tail(path), {}, 0

    def poll(self):
        for l in self.tail.lines():
            # The audit log copies request bytes as they came (not always UTF-8).
            try:
                t = json.loads(l.decode("utf-8", "surrogateescape"))["transaction"]
            except (ValueError, KeyError, TypeError):
                self.bad += 1
                continue
            hdrs = t.get("request", {}).get("headers", {}) or {}
            mk = next((v for k, v in hdrs.items() if k.lower() == "x-request-id"), None)
            ids, msgs = [], []
            for m in t.get("messages", []) or []:
                d = m.get("details", {}) or {}
                try:
                    ids.append(int(d.get("ruleId")))
                except (TypeError, ValueError):
                    continue
                msgs.append((int(d["ruleId"]), d.get("data", ""), d.get("match", "")))
            code = t.get("response", {}).get("http_code")
            self.seen[mk] = (ids, msgs, code)

    def get(self, mk, wait):
        end = time.monotonic() + wait
        while True:
            self.poll()
            if mk in self.seen:
                return self.seen.pop(mk)
            if time.monotonic() > end:
                return None
            time.sleep(0.01)


class GwLog:
    """portcullis's access log: a request's access line and its "type":"waf" line
    carry the same request_id. A request whose X-Request-Id portcullis does not keep
    (not sane), or that is refused before it has one (a 400 from the head parser),
    gets a fresh id: such lines are claimed in order by the next request that finds
    no line with its own id (requests are sent one at a time)."""

    def __init__(self, path):
        self.tail, self.waf, self.done, self.unclaimed = Tail(path), {}, {}, []

    def poll(self, markers):
        for l in self.tail.lines():
            try:
                o = json.loads(l.decode("utf-8", "surrogateescape"))
            except ValueError:
                continue
            rid = o.get("request_id")
            if o.get("type") == "waf":
                self.waf[rid] = o
            elif "status" in o:
                self.done[rid] = o
                if rid not in markers:
                    self.unclaimed.append(rid)

    def get(self, mk, markers, wait):
        start = time.monotonic()
        while True:
            self.poll(markers)
            if mk in self.done:
                rid = mk
            elif self.unclaimed and time.monotonic() - start > 0.3:
                rid = self.unclaimed.pop(0)
            elif time.monotonic() - start > wait:
                return None
            else:
                time.sleep(0.01)
                continue
            access = self.done.pop(rid)
            o = self.waf.pop(rid, None) or {}
            ms = o.get("matches", [])
            return (
                [m["rule"] for m in ms],
                [(m["rule"], m.get("target", ""), m.get("data") or m.get("excerpt", "")) for m in ms],
                access.get("route") is None,
            )


# ---------------------------------------------------------------- replay


def verdict(status):
    return "403" if status == 403 else "not-403"


def replay(a):
    rules = load_rules(a.rules)
    cases = load_cases(a.corpus)
    ms_log, gw_log = ModsecLog(a.modsec_audit), GwLog(a.gw_log)
    results = []
    markers = {marker_of(c, n) for n, c in enumerate(cases)}
    for n, c in enumerate(cases):
        mk = marker_of(c, n)
        raw = raw_request(c, mk)
        ms_status = send(a.modsec, raw, c["method"])
        gw_status = send(a.gw, raw, c["method"])
        also = {name: send(port, raw, c["method"]) for name, port in a.also}
        ms = ms_log.get(mk, 3.0)
        gw = gw_log.get(mk, markers, 3.0)
        results.append(
            {
                "file": c["file"],
                "category": c["category"],
                "name": c["name"],
                "method": c["method"],
                "path": c["path"],
                "modsec_status": ms_status,
                "gw_status": gw_status,
                "modsec_ids": ms[0] if ms else None,
                "modsec_msgs": ms[1] if ms else [],
                "gw_ids": gw[0] if gw else None,
                "gw_msgs": gw[1] if gw else [],
                "gw_unrouted": bool(gw and gw[2]),
                "also_status": also,
            }
        )
        if (n + 1) % 100 == 0:
            print(f"… {n + 1}/{len(cases)} requests", file=sys.stderr)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)
    report(results, rules, ms_log.bad)
    if a.also:
        classes(results, [name for name, _ in a.also])


def classes(results, also):
    """Per corpus file and category: the share of requests refused (403) by each side."""
    sides = [("ModSecurity+CRS", lambda r: r["modsec_status"]), ("portcullis CRS", lambda r: r["gw_status"])]
    sides += [(n, lambda r, n=n: r["also_status"][n]) for n in also]
    print()
    print("# Refused (403) per category: detection on attacks, false positives on benign")
    print("| corpus | category | requests | " + " | ".join(n for n, _ in sides) + " |")
    print("|---|---|---:|" + "---:|" * len(sides))
    groups = collections.defaultdict(list)
    for r in results:
        groups[(r["file"], r["category"])].append(r)
    totals = collections.defaultdict(list)
    for (f, cat), rs in sorted(groups.items()):
        totals[f].extend(rs)
        cells = [f"{sum(get(r) == 403 for r in rs) * 100 / len(rs):.0f}%" for _, get in sides]
        print(f"| {f} | {cat} | {len(rs)} | " + " | ".join(cells) + " |")
    for f, rs in sorted(totals.items()):
        cells = [f"**{sum(get(r) == 403 for r in rs) * 100 / len(rs):.1f}%**" for _, get in sides]
        print(f"| {f} | **all** | {len(rs)} | " + " | ".join(cells) + " |")


def report(results, rules, bad_audit=0):
    verdict_ok = ids_ok = status_ok = unrouted = 0
    only_ms, only_gw = collections.Counter(), collections.Counter()
    examples = collections.defaultdict(list)
    print("# Requests where nginx + ModSecurity + CRS and portcullis + CRS disagree")
    print("# [VERDICT]: 403 on one side only; [ids]: the matched CRS attack rules of phases")
    print("# 1-2 differ; [status]: same verdict and ids, other statuses (e.g. 400 vs 200)")
    print()
    for r in results:
        ms = set(r["modsec_ids"] or [])
        gw = set(r["gw_ids"] or [])
        msc = {i for i in ms if compared(i, rules)}
        gwc = {i for i in gw if compared(i, rules)}
        engine = sorted(i for i in ms if i not in rules)  # modsecurity.conf's own rules
        same_verdict = verdict(r["modsec_status"]) == verdict(r["gw_status"])
        same_ids = msc == gwc
        same_status = r["modsec_status"] == r["gw_status"]
        verdict_ok += same_verdict
        ids_ok += same_ids
        status_ok += same_status
        if r.get("gw_unrouted"):
            unrouted += not same_ids  # its WAF never ran: not a rule difference
        else:
            for i in msc - gwc:
                only_ms[i] += 1
                examples[i].append(r["name"])
            for i in gwc - msc:
                only_gw[i] += 1
                examples[i].append(r["name"])
        if same_verdict and same_ids and same_status:
            continue
        flag = "VERDICT" if not same_verdict else "ids" if not same_ids else "status"
        print(f"[{flag}] {r['file']}/{r['category']}: {r['name']}")
        print(f"    {r['method']} {r['path'][:160]}")
        notes = []
        if r["modsec_ids"] is None:
            notes.append(
                "no ModSecurity audit record: nginx refused it before ModSecurity"
                if r["modsec_status"] == 400
                else "no ModSecurity audit record"
            )
        if r["gw_ids"] is None:
            notes.append("no portcullis access line")
        elif r.get("gw_unrouted"):
            notes.append("portcullis refused it before routing, so before the WAF")
        if engine:
            notes.append("modsecurity.conf rules " + ",".join(map(str, engine)))
        print(
            f"    status: modsec {r['modsec_status']}  portcullis {r['gw_status']}"
            + (f"  ({'; '.join(notes)})" if notes else "")
        )
        print(f"    only modsec:     {' '.join(map(str, sorted(msc - gwc))) or '-'}")
        print(f"    only portcullis: {' '.join(map(str, sorted(gwc - msc))) or '-'}")
        print(f"    both:            {' '.join(map(str, sorted(msc & gwc))) or '-'}")
    n = len(results)
    print()
    print("# Totals")
    print(f"requests:            {n}")
    missing = sum(r["modsec_ids"] is None for r in results), sum(r["gw_ids"] is None for r in results)
    print(f"without a log record: modsec {missing[0]} ({bad_audit} audit lines unreadable), portcullis {missing[1]}")
    print(f"verdict agreements:  {verdict_ok} ({verdict_ok * 100 / max(n, 1):.1f}%)")
    print(f"id-set agreements:   {ids_ok} ({ids_ok * 100 / max(n, 1):.1f}%)")
    print(f"same status:         {status_ok} ({status_ok * 100 / max(n, 1):.1f}%)")
    for side, key in (("modsec", "modsec_status"), ("portcullis", "gw_status")):
        st = collections.Counter(str(r[key]) for r in results)
        print(f"statuses {side + ':':12} " + ", ".join(f"{k}: {v}" for k, v in sorted(st.items())))
    cross = collections.Counter(
        (verdict(r["modsec_status"]), verdict(r["gw_status"])) for r in results
    )
    print(
        "verdicts (modsec/portcullis): "
        + ", ".join(f"{a}/{b}: {v}" for (a, b), v in sorted(cross.items()))
    )
    print()
    print("# Rule ids by how often they differed (only-modsec / only-portcullis)")
    if unrouted:
        print(f"# (not counted: {unrouted} request(s) portcullis refused before its WAF ran)")
    ids = sorted(set(only_ms) | set(only_gw), key=lambda i: (-(only_ms[i] + only_gw[i]), i))
    for i in ids:
        r = rules.get(i)
        desc = f"{r.file} ph{r.phase}: {r.msg}" if r else "?"
        print(f"{i}  {only_ms[i] + only_gw[i]:4d}  ({only_ms[i]} / {only_gw[i]})  {desc}")
        if r:
            for l in describe(r, 180):
                print(f"          {l}")
        ex = examples[i][:3]
        print(f"          e.g. {' | '.join(ex)}")


def rule_cmd(a):
    rules = load_rules(a.rules)
    for i in a.ids:
        r = rules.get(int(i))
        if not r:
            print(f"{i}: not found")
            continue
        print(f"{r.id} {r.file}:{r.line} phase {r.phase} tags {','.join(r.tags)}\n  msg: {r.msg}")
        for l in describe(r):
            print("  " + l)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("replay")
    r.add_argument("--modsec", type=int, required=True)
    r.add_argument("--gw", type=int, required=True)
    r.add_argument("--modsec-audit", required=True)
    r.add_argument("--gw-log", required=True)
    r.add_argument("--rules", default="/usr/share/modsecurity-crs/rules")
    r.add_argument("--json")
    r.add_argument(
        "--also",
        action="append",
        default=[],
        type=lambda v: (v.split("=", 1)[0], int(v.split("=", 1)[1])),
        help="NAME=PORT: another gateway to replay through",
    )
    r.add_argument("corpus", nargs="+")
    r.set_defaults(fn=replay)
    q = sub.add_parser("rule")
    q.add_argument("--rules", default="/usr/share/modsecurity-crs/rules")
    q.add_argument("ids", nargs="+")
    q.set_defaults(fn=rule_cmd)
    a = p.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
