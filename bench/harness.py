"""Shared parts of the end-to-end benchmarks: real workers, an open-loop producer, latency percentiles.

Everything runs against the local services (`streamnlp services up`); each run uses fresh topics.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import platform
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streamnlp.config import WorkerSettings
from streamnlp.dev.streams import Stream
from streamnlp.dev.worker_process import WORKER_COMMAND, WorkerProcess
from streamnlp.kafka import client_kwargs

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
# The broker, Redis and model the benchmarks use: STREAMNLP_* settings, as a worker reads them.
SETTINGS = WorkerSettings.from_env()
MODEL = SETTINGS.model_path if SETTINGS.model_path.is_absolute() else ROOT / SETTINGS.model_path


def machine() -> dict[str, object]:
    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "load_avg_at_start": os.getloadavg(),
    }


def data_texts(data_dir: Path, limit: int = 20000, seed: int = 0) -> list[str]:
    """Distinct texts from the training sets (the real length distribution of chat and query text)."""
    texts: list[str] = []
    for path in sorted(data_dir.glob("*/train.csv")):
        with path.open(newline="", encoding="utf-8") as handle:
            texts.extend(row["text"] for row in csv.DictReader(handle))
    unique = list(dict.fromkeys(t for t in texts if t.strip()))
    rng = np.random.default_rng(seed)
    rng.shuffle(unique)
    return unique[:limit]


def fresh_stream(tag: str, partitions: int = 4) -> Stream:
    """New topics and group for one run, on the configured broker (see ``streamnlp.dev.streams``)."""
    return Stream(SETTINGS.brokers, tag=f"bench-{tag}", partitions=partitions, model=MODEL)


class Worker(WorkerProcess):
    """A `streamnlp worker` process (or any command speaking the same topics) on a run's topics."""

    def __init__(self, topics: Stream, *, command: Sequence[str] | None = None, **env: str) -> None:
        settings = topics.env(
            STREAMNLP_REDIS_URL=SETTINGS.redis_url,
            STREAMNLP_CACHE_SECRET=uuid.uuid4().hex,  # a cold cache for every run
            STREAMNLP_LOG_LEVEL="warning",
            STREAMNLP_DATA_DIR=str(OUT / "data"),
            **env,
        )
        log = OUT / f"worker-{topics.group}-{uuid.uuid4().hex[:6]}.log"
        super().__init__(settings, log, command=command or WORKER_COMMAND)

    def rss_mb(self) -> float:
        import psutil

        assert self.proc is not None
        return psutil.Process(self.proc.pid).memory_info().rss / 2**20


@dataclass
class LoadResult:
    offered_rate: float
    sent: int
    received: int
    seconds: float
    throughput: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    extra: dict[str, float] = field(default_factory=dict)

    def row(self) -> dict[str, object]:
        return asdict(self)


async def open_loop(
    topics: Stream,
    texts: Sequence[str],
    rate: float,
    seconds: float,
    *,
    drain: float = 30.0,
    warmup: float = 2.0,
) -> LoadResult:
    """Send ``rate`` messages/s for ``seconds`` on a fixed schedule (not waiting for outputs), and time
    each output from its input's send time to its arrival at a downstream consumer."""
    producer = AIOKafkaProducer(**client_kwargs(topics.settings), linger_ms=2, acks=1)
    consumer = AIOKafkaConsumer(
        topics.output,
        **client_kwargs(topics.settings),
        auto_offset_reset="latest",
        fetch_max_wait_ms=10,
        isolation_level="read_committed",
    )
    await producer.start()
    await consumer.start()
    await consumer.seek_to_end()
    sent_at: dict[str, float] = {}
    arrived: dict[str, float] = {}
    total = int(rate * seconds)

    async def produce() -> None:
        start = time.perf_counter()
        for i in range(total):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            record_id = f"r{i}"
            sent_at[record_id] = time.perf_counter()
            await producer.send(
                topics.input,
                key=record_id.encode(),
                value=orjson.dumps({"id": record_id, "text": texts[i % len(texts)]}),
            )
        await producer.flush()

    async def consume() -> None:
        deadline = None
        while len(arrived) < total:
            batches = await consumer.getmany(timeout_ms=200)
            now = time.perf_counter()
            for records in batches.values():
                for message in records:
                    record_id = orjson.loads(message.value)["id"]
                    arrived.setdefault(record_id, now)
            if sender.done():
                deadline = deadline or now + drain
                if now > deadline:
                    break

    began = time.perf_counter()
    sender = asyncio.create_task(produce())
    await consume()
    await sender
    elapsed = max(arrived.values(), default=began) - began
    await producer.stop()
    await consumer.stop()
    latencies = np.array(
        [(arrived[k] - sent_at[k]) * 1000 for k in arrived if sent_at[k] - began >= warmup] or [float("nan")]
    )
    return LoadResult(
        offered_rate=rate,
        sent=total,
        received=len(arrived),
        seconds=round(elapsed, 2),
        throughput=round(len(arrived) / elapsed, 1) if elapsed > 0 else 0.0,
        p50_ms=round(float(np.percentile(latencies, 50)), 1),
        p95_ms=round(float(np.percentile(latencies, 95)), 1),
        p99_ms=round(float(np.percentile(latencies, 99)), 1),
    )


async def saturate(topics: Stream, texts: Sequence[str], count: int, *, within: float = 600) -> float:
    """Pre-load ``count`` messages, then time how fast the worker(s) label them: sustained throughput."""
    producer = AIOKafkaProducer(**client_kwargs(topics.settings), linger_ms=5, acks=1)
    await producer.start()
    for i in range(count):
        await producer.send(
            topics.input,
            key=str(i).encode(),
            value=orjson.dumps({"id": f"s{i}", "text": texts[i % len(texts)]}),
        )
    await producer.flush()
    await producer.stop()
    consumer = AIOKafkaConsumer(  # read_committed: an exactly-once worker's outputs count once committed
        topics.output,
        **client_kwargs(topics.settings),
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    await consumer.start()
    seen = 0
    first = last = None
    deadline = time.monotonic() + within
    while seen < count and time.monotonic() < deadline:
        for records in (await consumer.getmany(timeout_ms=200)).values():
            now = time.perf_counter()
            first = first or now
            last = now
            seen += len(records)
    await consumer.stop()
    if not first or not last or last <= first:
        return 0.0
    return seen / (last - first)


def save(name: str, payload: dict[str, object]) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=str))
    return path


def table(rows: Sequence[dict[str, object]], columns: Sequence[str]) -> str:
    widths = [max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True))]
    lines += [
        "  ".join(str(r.get(c, "")).rjust(w) for c, w in zip(columns, widths, strict=True)) for r in rows
    ]
    return "\n".join(lines)
