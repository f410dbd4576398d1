"""Soak: one worker under steady load for a long time; RSS and consumer lag must stay flat.

``python -m bench.soak --minutes 30 --rate 150`` (services up). Samples RSS and lag every 30 s, prints
them, fits a line through each and writes ``bench/out/soak.json`` + ``soak.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import numpy as np
import orjson
from aiokafka import AIOKafkaProducer

from bench.e2e import load_texts, plot, start_run
from bench.harness import SETTINGS, machine, save, table
from streamnlp.kafka import client_kwargs


async def _steady(
    topic: str, texts: list[str], rate: float, seconds: float, worker, every: float = 30.0
) -> list[dict]:
    producer = AIOKafkaProducer(**client_kwargs(SETTINGS), linger_ms=5, acks=1)
    await producer.start()
    samples: list[dict] = []
    start = time.perf_counter()
    next_sample = start
    i = 0
    try:
        while (now := time.perf_counter()) - start < seconds:
            target = int((now - start) * rate)
            while i < target:
                text = texts[i % len(texts)]  # cycles: later rounds exercise the cache too
                await producer.send(
                    topic, key=str(i).encode(), value=orjson.dumps({"id": f"s{i}", "text": text})
                )
                i += 1
            if now >= next_sample:
                samples.append({
                    "minute": round((now - start) / 60, 2),
                    "sent": i,
                    "labelled": worker.metric("streamnlp_labelled_total"),
                    "lag": worker.metric("streamnlp_consumer_lag"),
                    "rss_mb": round(worker.rss_mb(), 1),
                })  # fmt: skip
                print(table([samples[-1]], list(samples[-1])).splitlines()[-1], flush=True)
                next_sample += every
            await asyncio.sleep(0.01)
    finally:
        await producer.stop()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=150.0, help="messages per second")
    args = parser.parse_args()
    texts = load_texts()
    topics, (worker,) = start_run("soak")
    try:
        samples = asyncio.run(_steady(topics.input, texts, args.rate, args.minutes * 60, worker))
    finally:
        worker.stop()
    minutes = np.array([s["minute"] for s in samples])
    rss_slope = float(np.polyfit(minutes, [s["rss_mb"] for s in samples], 1)[0]) if len(samples) > 2 else 0.0
    lag_slope = float(np.polyfit(minutes, [s["lag"] for s in samples], 1)[0]) if len(samples) > 2 else 0.0
    print(f"RSS slope {rss_slope:+.2f} MB/min, lag slope {lag_slope:+.1f} msgs/min over {args.minutes} min")
    save(
        "soak",
        {
            "machine": machine(),
            "rate": args.rate,
            "samples": samples,
            "rss_mb_per_min": rss_slope,
            "lag_per_min": lag_slope,
        },
    )
    plot(
        "soak",
        list(minutes),
        {"rss MB": [s["rss_mb"] for s in samples], "lag": [s["lag"] for s in samples]},
        "minute",
        "value",
    )


if __name__ == "__main__":
    main()
