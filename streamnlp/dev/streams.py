"""Fresh topics to stream through a worker, and the records that come out: one harness for the
integration tests and the benchmarks (the demo shares its worker process and client settings)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from ..config import WorkerSettings
from ..kafka import client_kwargs, ensure_topics
from ..model.manifest import DEFAULT_MODEL_DIR


class Stream:
    """An input topic of its own, the worker's output and dead-letter topics, and its consumer group.

    ``env`` is what a worker on these topics needs; ``settings`` is the same for this process's own
    clients, so TLS and SASL apply to both alike.
    """

    def __init__(
        self,
        bootstrap: str,
        profile: str = "ecommerce",
        *,
        tag: str = "",
        replication: int = 1,
        partitions: int = 4,
        model: Path = DEFAULT_MODEL_DIR,
        security: Mapping[str, str] | None = None,
    ) -> None:
        """``security``: STREAMNLP_KAFKA_* settings the test's own clients and the worker both use."""
        run = (f"{tag}-" if tag else "") + uuid.uuid4().hex[:10]
        self.bootstrap = bootstrap
        self.profile = profile
        self.replication = replication
        self.partitions = partitions
        self.model = model
        self.security = dict(security or {})
        self.input = f"in-{run}"
        self.output = f"out-{run}"
        self.dlq = f"dlq-{run}"
        self.group = f"group-{run}"

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "STREAMNLP_BROKERS": self.bootstrap,
            "STREAMNLP_INPUTS": f"{self.input}={self.profile}",
            "STREAMNLP_OUTPUT_TOPIC": self.output,
            "STREAMNLP_DLQ_TOPIC": self.dlq,
            "STREAMNLP_GROUP": self.group,
            "STREAMNLP_MODEL_PATH": str(self.model),
            "STREAMNLP_TOPIC_PARTITIONS": str(self.partitions),
            "STREAMNLP_TOPIC_REPLICATION": str(self.replication),
            **self.security,
            **extra,
        }

    @property
    def settings(self) -> WorkerSettings:
        return WorkerSettings.from_env(self.env())

    async def create(self) -> None:
        """Create the input, output and dead-letter topics now, rather than when the worker starts."""
        await ensure_topics(self.settings, [self.input, self.output, self.dlq])

    async def produce(self, values: list[tuple[bytes | None, bytes | None]]) -> None:
        """Write (key, value) records to the input topic, acknowledged by all replicas."""
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
