"""Scaling is an ordinary event: replicas joining or leaving (SIGTERM) lose nothing and label nothing twice.

Each test streams through real worker processes in at-least-once mode and counts the outputs twice: with
the project's own consumer and with kcat, a client the project did not write. Each prints the longest
pause in labelling (the longest time no worker published an output between the first and the last
one); with a backlog the stream never idles otherwise, so that is what a rebalance costs.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections import Counter

import orjson

from streamnlp.dev import kcat
from streamnlp.dev.worker_process import WorkerProcess
from tests.integration.conftest import Stream
from tests.integration.test_worker import as_values, chats
from tests.support import MODEL

BATCH = 32


async def _labelled(worker: WorkerProcess, at_least: float) -> None:
    """Poll the worker's metrics until it has labelled ``at_least`` records in all."""
    async with asyncio.timeout(180):
        while worker.metric("streamnlp_labelled_total") < at_least:  # noqa: ASYNC110 (polling a process)
            await asyncio.sleep(0.05)


def _longest_gap(outputs: list[dict]) -> float:
    """The longest time in seconds between two consecutive outputs of the group."""
    times = sorted(o["labelled_at_ms"] for o in outputs)
    return max((b - a) / 1000 for a, b in itertools.pairwise(times))


class Pauses:
    """The rebalance pauses workers measured (``streamnlp_rebalance_pause_seconds``)."""

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self.longest_bound = 0.0  # the upper bound of the highest histogram bucket any pause fell in

    def read(self, *workers: WorkerProcess) -> None:
        for worker in workers:
            samples = worker.metrics()
            self.count += int(samples.get("streamnlp_rebalance_pause_seconds_count", 0))
            self.total += samples.get("streamnlp_rebalance_pause_seconds_sum", 0.0)
            below = 0.0
            for name, value in samples.items():
                if name.startswith("streamnlp_rebalance_pause_seconds_bucket") and 'le="+Inf"' not in name:
                    bound = float(name.split('le="')[1].rstrip('"}'))
                    if value > below:  # a pause above the previous bound sits under this one
                        self.longest_bound = max(self.longest_bound, bound)
                        below = value

    def __str__(self) -> str:
        mean = self.total / self.count if self.count else 0.0
        return f"{self.count} rebalance pauses, mean {mean:.2f} s, longest <= {self.longest_bound:g} s"


def _assert_each_labelled_once(
    stream: Stream, outputs: list[dict], dead: list[dict], prefix: str, total: int, what: str, pauses: Pauses
) -> None:
    """Every input has exactly one output, read by our consumer and by kcat alike."""
    assert not dead
    ids = Counter(o["id"] for o in outputs)
    expected = {f"{prefix}-{i}" for i in range(total)}
    lost = len(expected - set(ids))
    duplicates = sum(n - 1 for n in ids.values())
    seen_by_kcat = kcat.consume(stream.bootstrap, stream.output)
    kcat_ids = Counter(orjson.loads(record.value)["id"] for record in seen_by_kcat)
    kcat_duplicates = sum(n - 1 for n in kcat_ids.values())
    print(
        f"\n{what}: sent {total}, read {len(outputs)} (kcat {len(seen_by_kcat)}), lost {lost}, "
        f"duplicates {duplicates} (kcat {kcat_duplicates}); {pauses}; longest gap between outputs "
        f"{_longest_gap(outputs):.2f} s"
    )
    assert lost == 0, f"lost {lost} messages"
    twice = sorted(
        (o["source"]["partition"], o["source"]["offset"], o["cached"]) for o in outputs if ids[o["id"]] > 1
    )
    assert duplicates == 0, f"{duplicates} duplicates; (partition, offset, cached): {twice[:24]}"
    assert kcat_ids == ids, "kcat reads other outputs than the project's consumer"


def _env(stream: Stream) -> dict[str, str]:
    return stream.env(STREAMNLP_CACHE_SECRET=uuid.uuid4().hex, STREAMNLP_BATCH_MAX_SIZE=str(BATCH))


async def test_one_of_two_workers_stopped_with_sigterm_mid_stream_duplicates_nothing(
    stream: Stream, start_worker, kcat_ready: str
) -> None:
    env = _env(stream)
    total = 4000
    # Produced steadily, not all at once: a backlog the first worker drains before the second has joined
    # leaves the second nothing to label.
    producing = asyncio.create_task(_produce_steadily(stream, as_values(chats(total, seed=501), "t"), 200))
    leaving = start_worker(env)
    staying = await asyncio.to_thread(start_worker, env)
    await _labelled(staying, 150)  # both hold partitions now
    await _labelled(leaving, 300)
    assert not producing.done(), "the stream ended before the worker left: produce more, or slower"
    pauses = Pauses()
    pauses.read(leaving)
    leaving.stop()
    assert leaving.proc is not None and leaving.proc.returncode == 0, leaving.log_tail()
    await producing
    outputs, dead = await stream.collect(total, within=240)
    pauses.read(staying)
    _assert_each_labelled_once(stream, outputs, dead, "t", total, "1 of 2 workers stopped (SIGTERM)", pauses)
    assert staying.alive()


async def _produce_steadily(stream: Stream, values: list[tuple[bytes, bytes]], per_second: float) -> None:
    chunk = 20
    for start in range(0, len(values), chunk):
        await stream.produce(values[start : start + chunk])
        await asyncio.sleep(chunk / per_second)


async def test_a_second_and_a_third_worker_joining_mid_stream_duplicate_nothing(
    kafka_bootstrap: str, start_worker, kcat_ready: str
) -> None:
    stream = Stream(kafka_bootstrap, partitions=8, model=MODEL)  # Faust may leave a third of 4 idle
    await stream.create()
    env = _env(stream)
    total = 6000
    first = start_worker(env)
    producing = asyncio.create_task(_produce_steadily(stream, as_values(chats(total, seed=502), "j"), 150))
    await _labelled(first, 300)
    second = await asyncio.to_thread(start_worker, env)
    await _labelled(second, 100)
    third = await asyncio.to_thread(start_worker, env)
    await _labelled(third, 100)
    assert not producing.done(), "the stream ended before the third worker joined: produce more, or slower"
    await producing
    outputs, dead = await stream.collect(total, within=240)
    pauses = Pauses()
    pauses.read(first, second, third)
    _assert_each_labelled_once(stream, outputs, dead, "j", total, "2nd and 3rd worker joined", pauses)
    assert first.alive() and second.alive() and third.alive()


async def test_five_scale_up_and_down_cycles_during_one_stream_duplicate_nothing(
    kafka_bootstrap: str, start_worker, kcat_ready: str
) -> None:
    stream = Stream(kafka_bootstrap, partitions=8, model=MODEL)
    await stream.create()
    env = _env(stream)
    total = 8000
    values = as_values(chats(total, seed=503), "c")
    base = start_worker(env)
    producing = asyncio.create_task(_produce_steadily(stream, values, per_second=100))
    cycles = 5
    pauses = Pauses()
    for _ in range(cycles):
        extra = await asyncio.to_thread(start_worker, env)  # up: 2 replicas
        await _labelled(extra, 100)
        pauses.read(extra)
        await asyncio.to_thread(extra.stop)  # down: 1 replica
        assert extra.proc is not None and extra.proc.returncode == 0, extra.log_tail()
        assert not producing.done(), "the stream ended before the cycles did: produce more, or slower"
    await producing
    outputs, dead = await stream.collect(total, within=240)
    what = f"{cycles} scale up/down cycles, 8 partitions"
    pauses.read(base)
    _assert_each_labelled_once(stream, outputs, dead, "c", total, what, pauses)
    assert base.alive()
