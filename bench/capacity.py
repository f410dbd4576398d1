"""The capacity model of docs/scaling.md, computed from measured figures: ``python -m bench.capacity``.

Per replica (one worker process) at cache hit ratio ``h``, a message costs ``(1 - h) / C`` seconds of
the inference thread and ``1 / E`` of the event loop, with ``C`` the model ceiling (seq/s at the worker's
batch size, one thread) and ``E`` the echo peer's saturated rate (the same worker with a constant label).
On one core (a replica with ``requests.cpu: 1``, as deployed) the two add up:

    W(h) = 1 / ((1 - h) / C + 1 / E)          messages per second it sustains

and on two or more free cores they overlap: ``W2(h) = 1 / max((1 - h) / C, 1 / E)``. The bench machine
lies between the two (two cores shared with the broker, Redis and the load generator).
For ``rate`` messages/s at utilisation ``rho`` (the share of W a replica is run at, chosen from the
measured latency at that load):

    replicas   N = ceil(rate / (rho * W(h)))
    partitions P = the next power of two >= 2 N  (room for the autoscaler to double)
    Redis      rate * (1 - h) * TTL * b            bytes (each miss stores one label of b bytes)
    broker     rate * (s_in + s_out) * RF          bytes/s written, RF the replication factor

The inputs come from ``bench/out/e2e-summary.json`` and ``cache-summary.json`` (``python -m bench e2e
cache --runs 3``), medians of the runs; the model is checked against the measured one-worker figures
before it is used.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from bench.harness import OUT


def median(value: Any) -> float:
    return float(value["median"]) if isinstance(value, dict) else float(value)


def per_replica(h: float, ceiling: float, echo: float) -> float:
    """W(h): messages/s one replica sustains at cache hit ratio ``h``."""
    return 1.0 / ((1.0 - h) / ceiling + 1.0 / echo)


def overlapped(h: float, ceiling: float, echo: float) -> float:
    """W2(h): the same when the inference thread and the event loop each have a core."""
    return 1.0 / max((1.0 - h) / ceiling, 1.0 / echo)


def plan(
    rate: float,
    *,
    h: float,
    rho: float,
    ceiling: float,
    echo: float,
    label_bytes: float,
    in_bytes: float,
    out_bytes: float,
    ttl: float,
    replication: int,
) -> dict[str, float]:
    w = per_replica(h, ceiling, echo)
    replicas = math.ceil(rate / (rho * w))
    return {
        "msg_s": rate,
        "per_replica_msg_s": round(w, 1),
        "replicas": replicas,
        "partitions": 2 ** math.ceil(math.log2(2 * replicas)),
        "model_texts_s": round(rate * (1 - h), 1),
        "redis_gb": round(rate * (1 - h) * ttl * label_bytes / 1e9, 2),
        "broker_write_mb_s": round(rate * (in_bytes + out_bytes) * replication / 1e6, 2),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.capacity", description=__doc__.splitlines()[0])
    parser.add_argument("--hit-ratio", type=float, default=0.5, help="share of messages the cache answers")
    parser.add_argument("--utilisation", type=float, default=0.5, help="share of W(h) each replica runs at")
    parser.add_argument("--ttl", type=float, default=3600.0, help="STREAMNLP_CACHE_TTL, seconds")
    parser.add_argument("--replication", type=int, default=3, help="topic replication factor")
    args = parser.parse_args(argv)
    e2e = json.loads((OUT / "e2e-summary.json").read_text())
    cache = json.loads((OUT / "cache-summary.json").read_text())
    ceiling, echo = median(e2e["model_ceiling_seq_s"]), median(e2e["echo_sustained_seq_s"])
    rows = {median(r["repeated"]): r for r in cache["rows"]}
    label_bytes = median(rows[0.0]["redis_bytes_per_label"])
    ours = [r for r in e2e["open_loop"] if r["peer"] == "streamnlp"]
    in_bytes = sum(median(r["input_bytes"]) for r in ours) / len(ours)
    out_bytes = sum(median(r["output_bytes"]) for r in ours) / len(ours)
    print(f"C = {ceiling:.0f} seq/s, E = {echo:.0f} msg/s, b = {label_bytes:.0f} B/label, ", end="")
    print(f"s_in = {in_bytes:.0f} B, s_out = {out_bytes:.0f} B")
    print("\ncheck against the one-worker measurements (unique texts, then the cache benchmark's repeats):")
    print("| hit ratio | W(h), one core | W2(h), two cores | measured msg/s | measured / W | measured / W2 |")
    print("|---|---|---|---|---|---|")
    measured = {0.0: median(e2e["sustained_seq_s"])} | {
        # repeated share r of a stream of distinct texts: the cache answers r of the messages
        repeat: median(row["seq_s"])
        for repeat, row in rows.items()
        if repeat > 0
    }
    for h, seen in measured.items():
        one, two = per_replica(h, ceiling, echo), overlapped(h, ceiling, echo)
        print(f"| {h:.1f} | {one:.0f} | {two:.0f} | {seen:.0f} | {seen / one:.2f} | {seen / two:.2f} |")
    print(
        f"\nplan at hit ratio {args.hit_ratio}, utilisation {args.utilisation}, TTL {args.ttl:.0f} s, "
        f"replication {args.replication}:"
    )
    columns = ["msg_s", "per_replica_msg_s", "replicas", "partitions", "model_texts_s", "redis_gb"]
    columns.append("broker_write_mb_s")
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for rate in (1_000.0, 10_000.0, 100_000.0):
        row = plan(
            rate,
            h=args.hit_ratio,
            rho=args.utilisation,
            ceiling=ceiling,
            echo=echo,
            label_bytes=label_bytes,
            in_bytes=in_bytes,
            out_bytes=out_bytes,
            ttl=args.ttl,
            replication=args.replication,
        )
        print("| " + " | ".join(f"{row[c]:,g}" for c in columns) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
