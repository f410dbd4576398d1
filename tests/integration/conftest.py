"""Real worker processes (`streamnlp worker`) against the real Kafka and Redis, and their outputs."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streamnlp._worker_process import WorkerProcess
from streamnlp.config import WorkerSettings
from streamnlp.kafka import client_kwargs, ensure_topics
from tests.support import MODEL


class Stream:
    """The topics of one test: an input topic and the worker's output and dead-letter topics."""

    def __init__(
        self,
        bootstrap: str,
        profile: str = "ecommerce",
        replication: int = 1,
        security: dict[str, str] | None = None,
    ) -> None:
        """``security``: STREAMNLP_KAFKA_* settings the test's own clients and the worker both use."""
        run = uuid.uuid4().hex[:10]
        self.replication = replication
        self.security = security or {}
        self.bootstrap = bootstrap
        self.input = f"in-{run}"
        self.output = f"out-{run}"
        self.dlq = f"dlq-{run}"
        self.group = f"group-{run}"
        self.profile = profile

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "STREAMNLP_BROKERS": self.bootstrap,
            "STREAMNLP_INPUTS": f"{self.input}={self.profile}",
            "STREAMNLP_OUTPUT_TOPIC": self.output,
            "STREAMNLP_DLQ_TOPIC": self.dlq,
            "STREAMNLP_GROUP": self.group,
            "STREAMNLP_MODEL_PATH": str(MODEL),
            "STREAMNLP_TOPIC_PARTITIONS": "4",
            "STREAMNLP_TOPIC_REPLICATION": str(self.replication),
            **self.security,
            **extra,
        }

    @property
    def settings(self) -> WorkerSettings:
        return WorkerSettings.from_env(self.env())

    async def produce(self, values: list[tuple[bytes | None, bytes | None]]) -> None:
        await ensure_topics(self.settings, [self.input])
        producer = AIOKafkaProducer(
            **client_kwargs(self.settings), acks="all", enable_idempotence=True, max_request_size=8 << 20
        )
        await producer.start()
        try:
            futures = [await producer.send(self.input, key=k, value=v) for k, v in values]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()

    async def collect(self, expected: int, within: float = 120) -> tuple[list[dict], list[dict]]:
        """Read outputs and dead letters from the start until ``expected`` distinct inputs have one.

        Reads committed records only, as readers of an exactly-once worker must (records of a
        non-transactional producer are all committed)."""
        consumer = AIOKafkaConsumer(
            self.output,
            self.dlq,
            **client_kwargs(self.settings),
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            fetch_max_bytes=64 << 20,
            max_partition_fetch_bytes=64 << 20,
        )
        await consumer.start()
        outputs: list[dict] = []
        dead: list[dict] = []
        answered: set[tuple[str, int, int]] = set()  # inputs, by source position

        async def read(timeout_ms: int) -> None:
            for tp, records in (await consumer.getmany(timeout_ms=timeout_ms)).items():
                for record in records:
                    document = orjson.loads(record.value)
                    (outputs if tp.topic == self.output else dead).append(document)
                    source = document["source"]
                    answered.add((source["topic"], source["partition"], source["offset"]))

        try:
            deadline = time.monotonic() + within
            while len(answered) < expected and time.monotonic() < deadline:
                await read(500)
            await read(1000)  # anything beyond `expected` is a duplicate or a stray: let it show up
        finally:
            await consumer.stop()
        return outputs, dead


@pytest.fixture
def stream(kafka_bootstrap: str) -> Stream:
    return Stream(kafka_bootstrap)


@pytest.fixture
def start_worker(tmp_path: Path, redis_url: str) -> Iterator:
    """Starts workers for one test and stops them (SIGTERM) at its end."""
    workers: list[WorkerProcess] = []

    def start(env: dict[str, str]) -> WorkerProcess:
        env = {"STREAMNLP_REDIS_URL": redis_url, **env}
        worker = WorkerProcess(env, tmp_path / f"worker-{len(workers)}.log")
        workers.append(worker)
        return worker.start()

    yield start
    for worker in workers:
        worker.stop()
