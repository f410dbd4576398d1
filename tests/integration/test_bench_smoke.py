"""The benchmark harness still measures a real worker: a short smoke run of each of its measurements.

Not a benchmark: no figure is asserted beyond "something real was measured"; the figures live in
bench/RESULTS.md. The harness reads the local services, the ones the suite runs against.
"""

from __future__ import annotations

import asyncio

from bench import e2e
from bench.harness import STAGES, open_loop, saturate
from tests.integration.test_worker import chats


def test_the_benchmark_harness_measures_a_real_worker_saturated_and_open_loop(
    kafka_bootstrap: str, redis_url: str
) -> None:
    texts = chats(400, seed=909)
    topics, (worker,) = e2e.start_run("smoke")
    try:
        seq_s = asyncio.run(saturate(topics, texts[:300], 300, within=120))
        assert worker.metric("streamnlp_labelled_total") == 300
        assert worker.proc is not None
        result = asyncio.run(
            open_loop(
                topics, texts[300:], rate=50, seconds=2, drain=30, warmup=0.5, worker_pids=[worker.proc.pid]
            )
        )
    finally:
        worker.stop()
    assert seq_s > 0
    assert (result.sent, result.received) == (100, 100), result
    assert 0 < result.p50_ms <= result.p99_ms
    assert list(result.stages) == list(STAGES)
    assert result.stages["inference"]["mean"] > 0  # unique texts: each went through the model
    assert result.cpu["worker"] > 0 and result.cpu["load_generator"] > 0
    assert worker.proc.returncode == 0  # SIGTERM: a clean drain and exit


def test_the_echo_peer_answers_every_message_through_the_worker_app_with_a_constant_label(
    kafka_bootstrap: str, redis_url: str
) -> None:
    texts = chats(100, seed=910)
    topics, (peer,) = e2e.start_run("smoke-echo", command=e2e.ECHO)
    try:
        result = asyncio.run(open_loop(topics, texts, rate=50, seconds=2, drain=30, warmup=0.5))
        outputs, dead = asyncio.run(topics.collect(100, within=30))
    finally:
        peer.stop()
    assert (result.sent, result.received) == (100, 100), result
    assert result.stages["inference"]["mean"] == 0 and result.stages["cache"]["mean"] == 0
    assert not dead and len(outputs) == 100
    assert {label["label"] for o in outputs for label in o["labels"].values()} == {"echo"}


def test_the_model_ceiling_benchmark_runs_the_shipped_model(model) -> None:
    assert e2e.model_ceiling(chats(64, seed=5), batch=8, seconds=0.3) > 0
