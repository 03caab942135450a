#!/usr/bin/env python3
"""Helpers for bench.sh: sign the token, write vegeta targets, summarise results."""
import base64
import hashlib
import hmac
import json
import os
import sys
import time
import uuid


def token(secret):
    def part(d):
        return base64.urlsafe_b64encode(json.dumps(d, separators=(",", ":")).encode()).rstrip(b"=")
    msg = part({"alg": "HS256", "typ": "JWT"}) + b"." + part(
        {"sub": "bench", "tenant_id": "bench", "exp": int(time.time()) + 3600})
    sig = base64.urlsafe_b64encode(hmac.new(secret.encode(), msg, hashlib.sha256).digest()).rstrip(b"=")
    print((msg + b"." + sig).decode())


def targets(url, rate, duration, tok):
    """One JSON target per request, each with its own Idempotency-Key."""
    secs = float(duration.rstrip("s"))
    body = base64.b64encode(json.dumps({
        "customer_email": "bench@example.com", "currency": "EUR", "card_number": "4242424242424242",
        "items": [{"sku": "BENCH-1", "quantity": 1, "unit_price_minor": 100}]}).encode()).decode()
    for _ in range(int(int(rate) * secs * 1.05) + 10):
        print(json.dumps({"method": "POST", "url": url, "body": body, "header": {
            "Content-Type": ["application/json"], "Authorization": ["Bearer " + tok],
            "Idempotency-Key": [str(uuid.uuid4())]}}))


def one(name, rate, results, before, after):
    """Reads a vegeta JSON report on stdin, prints two lines, appends a row to results. before and
    after are CPU snapshots taken around the attack (see cpu_snapshot in bench.sh)."""
    r = json.load(sys.stdin)
    lat = r["latencies"]
    row = {"name": name, "rate": int(rate), "throughput": r["throughput"], "p50_ms": lat["50th"] / 1e6,
           "p99_ms": lat["99th"] / 1e6, "success": r["success"], "codes": r.get("status_codes", {})}
    print("%-8s rate=%5d/s  throughput=%8.1f/s  p50=%8.2fms  p99=%8.2fms  success=%6.2f%%  codes=%s" % (
        name, row["rate"], row["throughput"], row["p50_ms"], row["p99_ms"], row["success"] * 100, row["codes"]))
    own, payments, postgres, vegeta, busy, total = (
        float(y) - float(x) for x, y in zip(before.split(), after.split()))
    per_request_ms = 1e3 / max(1, r["requests"])
    wall = total / (os.cpu_count() or 1)
    c = row["cpu_ms"] = {"app": own * per_request_ms, "postgres": postgres * per_request_ms,
                         "payments": payments * per_request_ms, "vegeta": vegeta * per_request_ms}
    row["cores_busy"] = busy / wall if wall else 0
    print("%-8s   cpu ms/request: %s %.3f  postgres %.3f  payments %.3f  vegeta %.3f  (machine: %.2f cores busy)" % (
        "", name, c["app"], c["postgres"], c["payments"], c["vegeta"], row["cores_busy"]))
    with open(results, "a") as f:
        f.write(json.dumps(row) + "\n")


def kept_up(r, ceiling):
    return r["success"] >= 0.999 and r["throughput"] >= 0.98 * r["rate"] and r["p99_ms"] <= ceiling


def kept(results, name, rate, p99_ceiling_ms):
    """Exit status 0 when the last row for name at rate kept up."""
    rows = [json.loads(line) for line in open(results)]
    last = [r for r in rows if r["name"] == name and r["rate"] == int(rate)][-1]
    sys.exit(0 if kept_up(last, float(p99_ceiling_ms)) else 1)


def mean_rows(rows):
    """Rows of one side at one rate, averaged: a grid may repeat a rate to interleave in time."""
    out = dict(rows[-1])
    for k in ("throughput", "p50_ms", "p99_ms", "success"):
        out[k] = sum(r[k] for r in rows) / len(rows)
    out["p99_ms"] = max(r["p99_ms"] for r in rows)  # the worst repeat: a tail is not averaged away
    cpu = [r.get("cpu_ms") for r in rows if r.get("cpu_ms")]
    if cpu:
        out["cpu_ms"] = {k: sum(c[k] for c in cpu) / len(cpu) for k in cpu[0]}
    out["runs"] = len(rows)
    return out


# The pairs a before/after run compares: (current side, its baseline in the same run).
PAIRS = (("service", "basesvc"), ("work", "basework"))


def summary(results, p99_ceiling_ms="100"):
    rows = [json.loads(line) for line in open(results)]
    names = list(dict.fromkeys(r["name"] for r in rows))
    grouped = {}
    for r in rows:
        grouped.setdefault((r["name"], r["rate"]), []).append(r)
    by = {k: mean_rows(v) for k, v in grouped.items()}
    rates = sorted({r["rate"] for r in rows})
    ceiling = float(p99_ceiling_ms)
    best = {}
    for r in rows:
        if kept_up(r, ceiling):
            best[r["name"]] = max(best.get(r["name"], 0), r["rate"])

    def show(name):
        return "%d/s" % best[name] if name in best else "none"
    print("== highest tested rate kept up with p99 <= %.0f ms: %s" % (
        ceiling, ", ".join("%s %s" % (n, show(n)) for n in names)))
    for a, b, what in (("service", "bare", "target >= 70%"),
                       ("service", "work", "the middleware; target >= 90%"),
                       ("basesvc", "basework", "the middleware, before"),
                       ("work", "bare", "the playbook's storage and payments work"),
                       ("basework", "bare", "the playbook's storage and payments work, before")):
        if best.get(a) and best.get(b):
            print("   kept-up %s/%s: %.0f%% (%s)" % (a, b, best[a] / best[b] * 100, what))

    print("== CPU per order (ms of CPU per request sent; a rate run more than once is averaged)")
    print("%-9s %6s %10s %9s %9s %9s %9s %9s" % (
        "side", "rate", "thr/s", "p99 ms", "own", "postgres", "payments", "pg/bare"))
    for rate in rates:
        b = by.get(("bare", rate))
        bpg = b["cpu_ms"]["postgres"] if b and b.get("cpu_ms") else 0
        for n in names:
            r = by.get((n, rate))
            if not r or not r.get("cpu_ms"):
                continue
            c = r["cpu_ms"]
            print("%-9s %6d %10.1f %9.2f %9.3f %9.3f %9.3f %9s" % (
                n, rate, r["throughput"], r["p99_ms"], c["app"], c["postgres"], c["payments"],
                "%.2fx" % (c["postgres"] / bpg) if bpg else "-"))
    print("== PostgreSQL CPU per order against the bare insert's (target service/bare <= 2x)")
    for rate in rates:
        b = by.get(("bare", rate))
        if not b or not b.get("cpu_ms") or not b["cpu_ms"]["postgres"]:
            continue
        bpg = b["cpu_ms"]["postgres"]
        parts = []
        for n in ("service", "basesvc", "work", "basework"):
            r = by.get((n, rate))
            if r and r.get("cpu_ms"):
                parts.append("%s/bare=%.2fx" % (n, r["cpu_ms"]["postgres"] / bpg))
        for cur, base in PAIRS:
            r, o = by.get((cur, rate)), by.get((base, rate))
            if r and o and r.get("cpu_ms") and o.get("cpu_ms") and o["cpu_ms"]["postgres"]:
                parts.append("%s/%s=%+.0f%%" % (cur, base, (r["cpu_ms"]["postgres"] / o["cpu_ms"]["postgres"] - 1) * 100))
        print("rate=%5d/s  %s" % (rate, "  ".join(parts)))

    print("== service / bare and service / work (successful throughput; p99 side by side)")

    def good(r):
        return r["throughput"] * r["success"]
    for rate in rates:
        s, b, w = by.get(("service", rate)), by.get(("bare", rate)), by.get(("work", rate))
        if s and b and w and good(b) > 0 and good(w) > 0:
            print("rate=%5d/s  service/bare=%6.1f%%  service/work=%6.1f%%  p99 service=%.2fms work=%.2fms bare=%.2fms" % (
                rate, good(s) / good(b) * 100, good(s) / good(w) * 100, s["p99_ms"], w["p99_ms"], b["p99_ms"]))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"token": token, "targets": targets, "one": one, "kept": kept, "summary": summary}[cmd](*args)
