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
from streamnlp.kafka import client_kwargs, ensure_topics

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


async def create_topics(topics: Stream) -> None:
    """The run's topics; the output topic stamps each record with the broker's append time, which
    splits a record's publishing from its downstream fetch."""
    await ensure_topics(topics.settings, [topics.output], configs={"message.timestamp.type": "LogAppendTime"})
    await topics.create()


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
        worker = psutil.Process(self.proc.pid)  # with its model process (STREAMNLP_MODEL_PROCESS)
        return sum(p.memory_info().rss for p in [worker, *worker.children(recursive=True)]) / 2**20


# Where a labelled record's time goes, in order; they add up to its latency from send to arrival.
STAGES = (
    "before_consume",  # sent by the load generator -> handed to the worker's agent (producer, broker, fetch)
    "batch_formation",  # consumed -> its batch starts (waiting for a batch slot)
    "cache",  # its batch's cache lookup
    "model_wait",  # its text queued for the model (0 when cached)
    "inference",  # the model call that labelled it (0 when cached)
    "worker_other",  # the rest of its batch up to encoding it: decode, encode, sharing a text
    "publish",  # encoded -> appended to the output topic (commit gate, send, broker append)
    "downstream_fetch",  # appended -> arrived at the downstream consumer
)


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
    # stage -> {"p50", "mean", "tail"}: ``tail`` is the stage's mean over the slowest 1% of records.
    stages: dict[str, dict[str, float]] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)  # cores each process used while sending
    input_bytes: float = 0.0  # mean size of an input value
    output_bytes: float = 0.0  # mean size of an output value
    extra: dict[str, float] = field(default_factory=dict)

    def row(self) -> dict[str, object]:
        return asdict(self)


class CpuMeter:
    """Cores used by the load generator (this process), the worker, the broker, Redis and everything
    else on the machine between ``start`` and ``stop``."""

    def __init__(self, worker_pids: Sequence[int]) -> None:
        import psutil

        self._psutil = psutil
        self.processes: dict[str, list[psutil.Process]] = {
            "load_generator": [psutil.Process()],
            # a worker's model process (STREAMNLP_MODEL_PROCESS) counts as the worker
            "worker": [
                proc
                for pid in worker_pids
                for proc in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
            ],
            "broker": [],
            "redis": [],
        }
        for proc in psutil.process_iter(["cmdline"]):
            cmdline = " ".join(proc.info["cmdline"] or [])
            if "kafka.Kafka" in cmdline:
                self.processes["broker"].append(proc)
            elif "redis-server" in cmdline:
                self.processes["redis"].append(proc)

    def _sample(self) -> tuple[float, dict[str, float], float]:
        used: dict[str, float] = {}
        for name, procs in self.processes.items():
            total = 0.0
            for proc in procs:
                try:
                    times = proc.cpu_times()
                except self._psutil.Error:
                    continue
                total += times.user + times.system
            used[name] = total
        machine = self._psutil.cpu_times()
        busy = sum(machine) - machine.idle - getattr(machine, "iowait", 0.0)
        return time.perf_counter(), used, busy

    def start(self) -> None:
        self._began = self._sample()

    def stop(self) -> dict[str, float]:
        (t0, used0, busy0), (t1, used1, busy1) = self._began, self._sample()
        wall = max(t1 - t0, 1e-9)
        cores = {name: round((used1[name] - used0[name]) / wall, 3) for name in used1}
        cores["everything_else"] = round(max(0.0, (busy1 - busy0) / wall - sum(cores.values())), 3)
        return cores


def _percentile(values: np.ndarray, q: float) -> float:
    return round(float(np.percentile(values, q)), 1) if values.size else float("nan")


def _stages(records: dict[int, tuple[float, float, float, dict]], sent_at: list[float]) -> dict:
    """Per stage: median, mean, and mean over the slowest 1% of records (what their p99 is made of)."""
    rows = []
    for i, (arrived, appended_ms, labelled_ms, timings) in records.items():
        sent_ms, arrived_ms = sent_at[i] * 1000, arrived * 1000
        consumed_ms = labelled_ms - timings.get("batch", 0.0) - timings.get("queued", 0.0)
        in_worker = sum(timings.get(k, 0.0) for k in ("cache", "model_wait", "inference"))
        rows.append(
            (
                arrived_ms - sent_ms,
                consumed_ms - sent_ms,
                timings.get("queued", 0.0),
                timings.get("cache", 0.0),
                timings.get("model_wait", 0.0),
                timings.get("inference", 0.0),
                timings.get("batch", 0.0) - in_worker,
                appended_ms - labelled_ms,
                arrived_ms - appended_ms,
            )
        )
    if not rows:
        return {}
    table = np.array(rows)
    slowest = table[table[:, 0] >= np.percentile(table[:, 0], 99)]
    return {
        stage: {
            "p50": round(float(np.median(table[:, k])), 2),
            "mean": round(float(table[:, k].mean()), 2),
            "tail": round(float(slowest[:, k].mean()), 2),
        }
        for k, stage in enumerate(STAGES, start=1)
    }


async def open_loop(
    topics: Stream,
    texts: Sequence[str],
    rate: float,
    seconds: float,
    *,
    drain: float = 30.0,
    warmup: float = 2.0,
    worker_pids: Sequence[int] = (),
) -> LoadResult:
    """Send ``rate`` messages/s for ``seconds`` on a fixed schedule (not waiting for outputs), and time
    each output from its input's send time to its arrival at a downstream consumer, stage by stage.

    The generator is kept cheap so that it measures the worker, not itself: payloads are encoded before
    the clock starts, each wake-up sends every message that is due, and the consumer long-polls. Its CPU,
    the worker's, the broker's and Redis's are measured while it sends (``LoadResult.cpu``, in cores).
    The output topic should time records by ``LogAppendTime`` (``create_topics``): that splits publishing
    from the downstream fetch.
    """
    producer = AIOKafkaProducer(**client_kwargs(topics.settings), linger_ms=0, acks=1)
    consumer = AIOKafkaConsumer(
        topics.output,
        **client_kwargs(topics.settings),
        auto_offset_reset="latest",
        fetch_max_wait_ms=100,
        isolation_level="read_committed",
    )
    await producer.start()
    await consumer.start()
    await consumer.seek_to_end()
    total = int(rate * seconds)
    keys = [f"r{i}".encode() for i in range(total)]
    values = [orjson.dumps({"id": f"r{i}", "text": texts[i % len(texts)]}) for i in range(total)]
    sent_at = [0.0] * total
    records: dict[int, tuple[float, float, float, dict]] = {}
    output_bytes = 0
    meter = CpuMeter(worker_pids)

    async def produce() -> None:
        start = time.perf_counter()
        sent = 0
        while sent < total:
            due = min(total, int((time.perf_counter() - start) * rate) + 1)
            while sent < due:
                sent_at[sent] = time.time()
                await producer.send(topics.input, key=keys[sent], value=values[sent])
                sent += 1
            delay = start + sent / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        await producer.flush()

    async def consume() -> None:
        nonlocal output_bytes
        deadline = None
        while len(records) < total:
            batches = await consumer.getmany(timeout_ms=200)
            now = time.time()
            for partition_records in batches.values():
                for message in partition_records:
                    document = orjson.loads(message.value)
                    output_bytes += len(message.value)
                    index = int(document["id"][1:])
                    appended = float(message.timestamp) if message.timestamp_type == 1 else float("nan")
                    labelled, timings = document["labelled_at_ms"], document["timings_ms"]
                    records.setdefault(index, (now, appended, labelled, timings))
            if sender.done():
                deadline = deadline or time.perf_counter() + drain
                if time.perf_counter() > deadline:
                    break

    began_wall = time.time()
    meter.start()
    sender = asyncio.create_task(produce())
    sender.add_done_callback(lambda _: cpu.update(meter.stop()))
    cpu: dict[str, float] = {}
    await consume()
    await sender
    elapsed = max((r[0] for r in records.values()), default=began_wall) - began_wall
    await producer.stop()
    await consumer.stop()
    measured = {i: r for i, r in records.items() if sent_at[i] - began_wall >= warmup}
    latencies = np.array([(r[0] - sent_at[i]) * 1000 for i, r in measured.items()])
    return LoadResult(
        offered_rate=round(rate, 1),
        sent=total,
        received=len(records),
        seconds=round(elapsed, 2),
        throughput=round(len(records) / elapsed, 1) if elapsed > 0 else 0.0,
        p50_ms=_percentile(latencies, 50),
        p95_ms=_percentile(latencies, 95),
        p99_ms=_percentile(latencies, 99),
        stages=_stages(measured, sent_at),
        cpu=cpu,
        input_bytes=round(sum(map(len, values)) / max(1, total), 1),
        output_bytes=round(output_bytes / max(1, len(records)), 1),
    )


async def saturate(topics: Stream, texts: Sequence[str], count: int, *, within: float = 600) -> float:
    """Pre-load ``count`` messages, then time how fast the worker(s) label them: sustained throughput."""
    keys = [str(i).encode() for i in range(count)]
    values = [orjson.dumps({"id": f"s{i}", "text": texts[i % len(texts)]}) for i in range(count)]
    producer = AIOKafkaProducer(**client_kwargs(topics.settings), linger_ms=5, acks=1)
    await producer.start()
    for key, value in zip(keys, values, strict=True):
        await producer.send(topics.input, key=key, value=value)
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
