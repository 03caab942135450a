#!/usr/bin/env python3
"""Helpers for bench.sh: sign the token, write vegeta targets, summarise results."""
import base64
import hashlib
import hmac
import json
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


def one(name, rate, results):
    """Reads a vegeta JSON report on stdin, prints a line, appends a row to results."""
    r = json.load(sys.stdin)
    lat = r["latencies"]
    row = {"name": name, "rate": int(rate), "throughput": r["throughput"], "p50_ms": lat["50th"] / 1e6,
           "p99_ms": lat["99th"] / 1e6, "success": r["success"], "codes": r.get("status_codes", {})}
    print("%-8s rate=%5d/s  throughput=%8.1f/s  p50=%8.2fms  p99=%8.2fms  success=%6.2f%%  codes=%s" % (
        name, row["rate"], row["throughput"], row["p50_ms"], row["p99_ms"], row["success"] * 100, row["codes"]))
    with open(results, "a") as f:
        f.write(json.dumps(row) + "\n")


def summary(results, p99_ceiling_ms="100"):
    rows = [json.loads(line) for line in open(results)]
    by = {(r["name"], r["rate"]): r for r in rows}
    ceiling = float(p99_ceiling_ms)
    best = {}
    for r in rows:
        kept_up = r["success"] >= 0.999 and r["throughput"] >= 0.98 * r["rate"]
        if kept_up and r["p99_ms"] <= ceiling:
            best[r["name"]] = max(best.get(r["name"], 0), r["rate"])
    def show(name):
        return "%d/s" % best[name] if name in best else "none"
    print("== highest tested rate kept up with p99 <= %.0f ms: service %s, bare %s" % (
        ceiling, show("service"), show("bare")))
    if best.get("service") and best.get("bare"):
        print("   service/bare at the same p99 ceiling: %.0f%% (target >= 70%%)" % (
            best["service"] / best["bare"] * 100))
    print("== service / bare (successful throughput; p99 side by side)")
    for rate in sorted({r["rate"] for r in rows}):
        s, b = by.get(("service", rate)), by.get(("bare", rate))
        if s and b and b["throughput"] * b["success"] > 0:
            ratio = s["throughput"] * s["success"] / (b["throughput"] * b["success"]) * 100
            print("rate=%5d/s  ratio=%6.1f%%  p99 service=%.2fms bare=%.2fms" % (rate, ratio, s["p99_ms"], b["p99_ms"]))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"token": token, "targets": targets, "one": one, "summary": summary}[cmd](*args)
