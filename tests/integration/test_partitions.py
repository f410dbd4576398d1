"""Where outputs land: the input's partition number, or by key.

Inputs are written with kcat, whose default partitioner (librdkafka's CRC32-based one) is not the
murmur2 of the Java and aiokafka clients, so "same key, same partition number" does not hold for them.
"""

from __future__ import annotations

import asyncio
import uuid

import orjson
from aiokafka.partitioner import DefaultPartitioner

from streamnlp.dev import kcat
from tests.integration.conftest import Stream
from tests.integration.test_worker import as_values, chats


def _murmur2(key: bytes, partitions: int) -> int:
    """The partition the Java client's (and aiokafka's) default partitioner gives ``key``."""
    return DefaultPartitioner()(key, list(range(partitions)), list(range(partitions)))


async def _read_all(bootstrap: str, topic: str, expected: int) -> list[kcat.Record]:
    """kcat's reading of ``topic`` once it holds ``expected`` records (at most two minutes)."""
    async with asyncio.timeout(120):
        while len(records := await asyncio.to_thread(kcat.consume, bootstrap, topic)) < expected:  # noqa: ASYNC110
            await asyncio.sleep(0.5)
    return records


async def test_outputs_land_in_their_inputs_partition_number_whatever_partitioner_wrote_the_input(
    stream: Stream, start_worker, kcat_ready: str
) -> None:
    await stream.create()  # input, output and dead-letter topics with 4 partitions each
    total = 800
    await asyncio.to_thread(
        kcat.produce, stream.bootstrap, stream.input, as_values(chats(total, seed=601), "p")
    )
    inputs = await _read_all(stream.bootstrap, stream.input, total)
    elsewhere_by_key = {r.key for r in inputs if _murmur2(r.key, 4) != r.partition}
    assert len(elsewhere_by_key) > total // 4, "kcat placed the inputs as murmur2 would: no test"

    secret = uuid.uuid4().hex
    start_worker(stream.env(STREAMNLP_CACHE_SECRET=secret))  # the default: STREAMNLP_OUTPUT_PARTITION=input
    by_key_topic = f"{stream.output}-by-key"
    start_worker(
        stream.env(
            STREAMNLP_CACHE_SECRET=secret,
            STREAMNLP_OUTPUT_PARTITION="key",
            STREAMNLP_OUTPUT_TOPIC=by_key_topic,
            STREAMNLP_GROUP=f"{stream.group}-by-key",
        )
    )

    by_input = await _read_all(stream.bootstrap, stream.output, total)
    moved = [
        (r.key, r.partition) for r in by_input if orjson.loads(r.value)["source"]["partition"] != r.partition
    ]
    print(f"\noutput partition = input: {len(by_input)} outputs, {len(moved)} in another partition number")
    assert len(by_input) == total and not moved

    by_key = await _read_all(stream.bootstrap, by_key_topic, total)
    off_input = {r.key for r in by_key if orjson.loads(r.value)["source"]["partition"] != r.partition}
    print(f"output partition = key: {len(by_key)} outputs, {len(off_input)} in another partition number")
    assert all(r.partition == _murmur2(r.key, 4) for r in by_key)
    assert off_input == elsewhere_by_key
