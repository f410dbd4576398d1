"""The real broker carries messages over partitions, and committed offsets survive a consumer restart."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections import Counter

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streamnlp.dev.services import kafka_version, require_kafka

N_MESSAGES = 1000
PARTITIONS = 4


async def _produce(bootstrap: str, topic: str) -> Counter[int]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, key=f"key-{i}".encode(), value=str(i).encode())
            for i in range(N_MESSAGES)
        ]
        metadata = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return Counter(m.partition for m in metadata)


async def _consume(bootstrap: str, topic: str, group: str, until: int) -> list[int]:
    """Consume at least ``until`` messages in ``group``, commit what was processed, stop."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=150,
    )
    await consumer.start()
    seen: list[int] = []
    try:
        async with asyncio.timeout(60):
            while len(seen) < until:
                batches = await consumer.getmany(timeout_ms=1000)
                for records in batches.values():
                    seen.extend(int(r.value) for r in records)
                await consumer.commit()  # what getmany returned has been processed
    finally:
        await consumer.stop()
    return seen


def test_broker_is_real_apache_kafka_in_kraft_mode(kafka_bootstrap: str) -> None:
    assert require_kafka(kafka_bootstrap), "the metadata response names no broker"
    assert kafka_version().startswith("4.")


async def test_thousand_messages_over_four_partitions_resume_from_committed_offsets(
    kafka_bootstrap: str, new_topic
) -> None:
    topic = await new_topic(PARTITIONS)
    per_partition = await _produce(kafka_bootstrap, topic)
    assert set(per_partition) == set(range(PARTITIONS)), per_partition

    group = f"{topic}-group"
    first = await _consume(kafka_bootstrap, topic, group, until=400)
    assert 400 <= len(first) < N_MESSAGES

    # A new consumer in the same group starts exactly where the first one committed.
    second = await _consume(kafka_bootstrap, topic, group, until=N_MESSAGES - len(first))
    assert not set(first) & set(second), "a committed message was delivered again"
    assert sorted(first + second) == list(range(N_MESSAGES))

    probe = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False)
    await probe.start()
    try:
        committed = [await probe.committed(TopicPartition(topic, p)) for p in range(PARTITIONS)]
    finally:
        await probe.stop()
    assert sum(committed) == N_MESSAGES


def test_services_topic_creates_an_input_topic_with_the_partitions_asked_for(kafka_bootstrap: str) -> None:
    name = f"topic-cmd-{uuid.uuid4().hex[:8]}"
    command = [sys.executable, "-m", "streamnlp.cli", "services", "topic", name, "--partitions", "6"]
    first = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert first.returncode == 0, first.stderr
    again = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert "created with 6 partitions" in first.stdout and "already exists" in again.stdout

    async def partitions() -> int:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            (description,) = await admin.describe_topics([name])
            await admin.delete_topics([name])
            return len(description["partitions"])
        finally:
            await admin.close()

    assert asyncio.run(partitions()) == 6
