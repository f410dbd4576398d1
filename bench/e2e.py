"""End-to-end benchmarks through the real Kafka: throughput, latency, cache, scaling, micro-batch sweep.

Run from the repo root with the services up: ``python -m bench e2e`` (or cache, scaling, sweep, all).
Each prints a table, writes ``bench/out/NAME.json`` and a PNG plot. Ratios are measured side by side in
one run, so they hold on a noisy machine better than absolute numbers do.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench.harness import (
    MODEL,
    OUT,
    LoadResult,
    Worker,
    data_texts,
    fresh_stream,
    machine,
    open_loop,
    saturate,
    save,
    table,
)
from streamnlp.dev.streams import Stream

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def plot(
    name: str, xs: Sequence[float], series: dict[str, Sequence[float]], xlabel: str, ylabel: str
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, ys in series.items():
        ax.plot(xs, ys, marker="o", label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = OUT / f"{name}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def model_ceiling(texts: Sequence[str], batch: int | None = None, seconds: float = 8.0) -> float:
    """seq/s of the shipped model alone, one thread, batches as the worker forms them (its default
    batch size unless ``batch`` is given)."""
    from streamnlp.config import WorkerSettings
    from streamnlp.model.runtime import LabelModel

    batch = batch or WorkerSettings.from_env({}).batch_max_size

    model = LabelModel.load(MODEL, threads=1)
    heads = ["sentiment", "intent_ecommerce"]
    done, began, i = 0, time.perf_counter(), 0
    while time.perf_counter() - began < seconds:
        chunk = [texts[(i + k) % len(texts)] for k in range(batch)]
        model.predict(chunk, heads)
        done += batch
        i += batch
    return done / (time.perf_counter() - began)


def start_run(
    tag: str, partitions: int = 4, workers: int = 1, command: list[str] | None = None, **env: str
) -> tuple[Stream, list[Worker]]:
    topics = fresh_stream(tag, partitions)
    asyncio.run(topics.create())
    started = [Worker(topics, command=command, **env).start() for _ in range(workers)]
    time.sleep(2)  # group settles
    return topics, started


def saturated_seq_s(
    tag: str, texts: Sequence[str], count: int, *, partitions: int = 4, workers: int = 1, **env: str
) -> float:
    """Sustained seq/s of fresh workers on ``count`` pre-loaded unique texts (see ``saturate``)."""
    topics, started = start_run(tag, partitions=partitions, workers=workers, **env)
    try:
        return asyncio.run(saturate(topics, texts[:count], count))
    finally:
        for worker in started:
            worker.stop()


def e2e(texts: list[str], count: int = 4000) -> dict[str, object]:
    topics, (worker,) = start_run("e2e")
    try:
        sustained = asyncio.run(saturate(topics, texts[:count], count))
        rss_after_saturation = worker.rss_mb()
    finally:
        worker.stop()
    ceiling = model_ceiling(texts)
    rows: list[LoadResult] = []
    for fraction in (0.25, 0.5, 0.75, 0.9):
        topics, (worker,) = start_run("e2e-rate")
        try:
            rate = max(1.0, sustained * fraction)
            result = asyncio.run(open_loop(topics, texts[count:], rate, seconds=15))
            result.extra = {"fraction_of_saturation": fraction, "rss_mb": round(worker.rss_mb(), 1)}
            rows.append(result)
        finally:
            worker.stop()
    naive = naive_peer(texts, count // 4)
    payload = {
        "machine": machine(),
        **naive,
        "model_ceiling_seq_s": round(ceiling, 1),
        "sustained_seq_s": round(sustained, 1),
        "e2e_over_ceiling": round(sustained / ceiling, 3),
        "worker_rss_mb": round(rss_after_saturation, 1),
        "open_loop": [r.row() for r in rows],
    }
    print(f"model ceiling (worker batch size, 1 thread): {ceiling:.0f} seq/s")
    print(f"end to end, saturated, one worker: {sustained:.0f} seq/s  -> ratio {sustained / ceiling:.2f}")
    if naive:
        print(f"vs naive peer end to end: {sustained / naive['naive_sustained_seq_s']:.1f}x")
        payload["vs_naive_e2e"] = round(sustained / float(naive["naive_sustained_seq_s"]), 1)
    print(f"worker RSS after saturation: {rss_after_saturation:.0f} MB")
    print(
        table(
            [r.row() | r.extra for r in rows],
            ["offered_rate", "throughput", "p50_ms", "p95_ms", "p99_ms", "received", "sent"],
        )
    )
    save("e2e", payload)
    plot(
        "e2e",
        [r.offered_rate for r in rows],
        {"p50": [r.p50_ms for r in rows], "p95": [r.p95_ms for r in rows], "p99": [r.p99_ms for r in rows]},
        "offered msg/s",
        "ms produce -> labelled output",
    )
    return payload


def naive_peer(texts: list[str], count: int) -> dict[str, object]:
    """The naive Faust + transformers peer, end to end and alone (skipped without torch/transformers)."""
    try:
        from bench import naive
    except ImportError:
        return {}
    try:
        alone = naive.ceiling(texts, seconds=8.0)
    except ImportError as exc:
        print(f"naive peer skipped: {exc} (pip install transformers torch)")
        return {}
    topics, (worker,) = start_run("naive", command=[sys.executable, "-m", "bench.naive", "worker"])
    try:
        sustained = asyncio.run(saturate(topics, texts[:count], count))
    finally:
        worker.stop()
    print(f"naive peer: alone {alone:.1f} seq/s, end to end {sustained:.1f} seq/s")
    return {"naive_ceiling_seq_s": round(alone, 1), "naive_sustained_seq_s": round(sustained, 1)}


def cache(texts: list[str], count: int = 4000) -> dict[str, object]:
    rows = []
    for repeat in (0.0, 0.5, 0.9):
        distinct = max(1, int(count * (1 - repeat)))
        rng = np.random.default_rng(1)
        stream = list(texts[:distinct]) + [texts[int(i)] for i in rng.integers(0, distinct, count - distinct)]
        rng.shuffle(stream)
        topics, (worker,) = start_run(f"cache{int(repeat * 100)}")
        try:
            rate = asyncio.run(saturate(topics, stream, count))
            rows.append(
                {
                    "repeated": repeat,
                    "seq_s": round(rate, 1),
                    "model_texts": worker.metric("streamnlp_model_texts_total"),
                }
            )
        finally:
            worker.stop()
    base = rows[0]["seq_s"] or 1.0
    for row in rows:
        row["vs_unique"] = round(float(row["seq_s"]) / float(base), 2)
    print(table(rows, ["repeated", "seq_s", "vs_unique", "model_texts"]))
    payload = {"machine": machine(), "rows": rows}
    save("cache", payload)
    plot(
        "cache",
        [r["repeated"] for r in rows],
        {"seq/s": [r["seq_s"] for r in rows]},
        "share of repeated texts",
        "seq/s",
    )
    return payload


def scaling(texts: list[str], count: int = 6000) -> dict[str, object]:
    rows = []
    for n in (1, 2):
        rate = saturated_seq_s(f"scale{n}", texts, count, partitions=8, workers=n)
        rows.append({"workers": n, "seq_s": round(rate, 1)})
    rows[1]["vs_one"] = round(rows[1]["seq_s"] / max(rows[0]["seq_s"], 1e-9), 2)
    print(table(rows, ["workers", "seq_s", "vs_one"]))
    payload = {"machine": machine(), "rows": rows}
    save("scaling", payload)
    return payload


def guarantee(texts: list[str], count: int = 6000) -> dict[str, object]:
    """Saturated throughput of at-least-once (default settings) vs exactly-once (transactions)."""
    rows = []
    for mode in ("at_least_once", "exactly_once"):
        seq_s = saturated_seq_s(f"g-{mode}", texts, count, STREAMNLP_PROCESSING_GUARANTEE=mode)
        rows.append({"guarantee": mode, "seq_s": round(seq_s, 1)})
    rows[1]["vs_at_least_once"] = round(float(rows[1]["seq_s"]) / max(float(rows[0]["seq_s"]), 1e-9), 2)
    print(table(rows, ["guarantee", "seq_s", "vs_at_least_once"]))
    payload = {"machine": machine(), "rows": rows}
    save("guarantee", payload)
    return payload


def sweep(texts: list[str], rate: float | None = None, count: int = 6000) -> dict[str, object]:
    """Latency at a moderate offered rate for each max size x max wait x batches in flight, then the
    saturated throughput of each size x batches in flight: the two sides of choosing the defaults."""
    rows = []
    grid = [(size, wait, 1) for size in (8, 32, 64) for wait in (0.005, 0.02, 0.05)]
    grid += [(size, 0.005, 2) for size in (8, 32, 64)]
    for size, wait, in_flight in grid:
        topics, (worker,) = start_run(
            f"sweep{size}",
            STREAMNLP_BATCH_MAX_SIZE=str(size),
            STREAMNLP_BATCH_MAX_WAIT=str(wait),
            STREAMNLP_BATCHES_IN_FLIGHT=str(in_flight),
        )
        try:
            offered = rate or 300.0
            result = asyncio.run(open_loop(topics, texts, offered, seconds=10))
            config = {"batch_max_size": size, "batch_max_wait": wait, "in_flight": in_flight}
            rows.append(config | result.row())
        finally:
            worker.stop()
    columns = ["batch_max_size", "batch_max_wait", "in_flight", "offered_rate", "throughput", "p50_ms"]
    print(table(rows, [*columns, "p99_ms"]))
    saturated = []
    for size in (32, 64, 128):
        for in_flight in (1, 2):
            seq_s = saturated_seq_s(
                f"sat{size}",
                texts,
                count,
                STREAMNLP_BATCH_MAX_SIZE=str(size),
                STREAMNLP_BATCHES_IN_FLIGHT=str(in_flight),
            )
            saturated.append({"batch_max_size": size, "in_flight": in_flight, "seq_s": round(seq_s, 1)})
    print(table(saturated, ["batch_max_size", "in_flight", "seq_s"]))
    payload = {"machine": machine(), "rows": rows, "saturated": saturated}
    save("sweep", payload)
    return payload


def padding(texts: list[str], count: int = 4096, batch: int = 32, window: int = 256) -> dict[str, object]:
    """Plain batches (arrival order) vs length-bucketed ones (sorted within a window of 8 batches):
    padding tokens and model seq/s, one thread."""
    from streamnlp.model.runtime import LabelModel

    model = LabelModel.load(MODEL, threads=1)
    sample = texts[:count]
    lengths = {t: len(e.ids) for t, e in zip(sample, model._tokenizer.encode_batch(sample), strict=True)}
    plain = [sample[i : i + batch] for i in range(0, count, batch)]
    bucketed = []
    for start in range(0, count, window):
        ordered = sorted(sample[start : start + window], key=lengths.__getitem__)
        bucketed += [ordered[i : i + batch] for i in range(0, len(ordered), batch)]
    rows = []
    for name, batches in (("plain", plain), ("bucketed", bucketed)):
        real = sum(lengths[t] for b in batches for t in b)
        padded = sum(max(lengths[t] for t in b) * len(b) for b in batches)
        began = time.perf_counter()
        for b in batches:
            model.predict(b, ["sentiment", "intent_ecommerce"])
        rate = count / (time.perf_counter() - began)
        rows.append({"batches": name, "padding_share": round(1 - real / padded, 3), "seq_s": round(rate, 1)})
    rows[1]["vs_plain"] = round(rows[1]["seq_s"] / rows[0]["seq_s"], 2)
    print(table(rows, ["batches", "padding_share", "seq_s", "vs_plain"]))
    payload = {"machine": machine(), "batch": batch, "window": window, "rows": rows}
    save("padding", payload)
    return payload


def load_texts() -> list[str]:
    return data_texts(DATA)
