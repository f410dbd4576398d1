"""Natural batching: a batch starts as soon as a slot is free, with everything that has arrived."""

from __future__ import annotations

import asyncio

import pytest

from streamnlp.batching import Arrival, NaturalBatcher


class Recorder:
    """A ``handle`` that records each batch and holds it until the test releases it."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()
        self.running = 0
        self.most_running = 0

    async def __call__(self, arrivals: list[Arrival[int]]) -> None:
        self.batches.append([a.item for a in arrivals])
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await self.release.wait()
        finally:
            self.running -= 1


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_lone_message_starts_a_batch_at_once_with_no_timer() -> None:
    handle = Recorder()
    batcher = NaturalBatcher(handle, max_size=32, in_flight=2)
    await batcher.put(1)
    await settle()  # only loop turns: nothing waits for company
    assert handle.batches == [[1]]


async def test_messages_handed_over_in_one_turn_of_the_loop_form_one_batch() -> None:
    handle = Recorder()
    batcher = NaturalBatcher(handle, max_size=32, in_flight=2)
    for i in range(5):  # as the consumer hands over what it has already fetched: no wait in between
        await batcher.put(i)
    await settle()
    assert handle.batches == [[0, 1, 2, 3, 4]]


async def test_messages_arriving_while_every_slot_is_busy_form_the_next_batch_together() -> None:
    handle = Recorder()
    batcher = NaturalBatcher(handle, max_size=32, in_flight=1)
    await batcher.put(0)
    await settle()
    for i in range(1, 6):
        await batcher.put(i)
        await settle()  # each arrives in a turn of its own
    assert handle.batches == [[0]] and batcher.waiting == 5
    handle.release.set()
    await batcher.drain()
    assert handle.batches == [[0], [1, 2, 3, 4, 5]]


async def test_no_more_batches_run_at_once_than_in_flight_and_none_above_the_maximum() -> None:
    handle = Recorder()
    batcher = NaturalBatcher(handle, max_size=3, in_flight=2)
    for i in range(2):
        await batcher.put(i)
        await settle()
    assert handle.batches == [[0], [1]] and batcher.running == 2
    for i in range(2, 5):
        await batcher.put(i)
    putter = asyncio.create_task(batcher.put(5))  # a full batch already waits: the consumer is held
    await settle()
    assert not putter.done() and batcher.waiting == 3
    handle.release.set()
    await asyncio.wait_for(putter, timeout=5)
    await asyncio.wait_for(batcher.drain(), timeout=5)
    assert handle.batches[2:] == [[2, 3, 4], [5]]
    assert handle.most_running == 2
    assert sorted(i for b in handle.batches for i in b) == list(range(6))


async def test_a_failed_batch_is_raised_to_the_consumer_and_stops_new_batches() -> None:
    async def fail(arrivals: list[Arrival[int]]) -> None:
        raise RuntimeError("publish failed")

    batcher = NaturalBatcher(fail, max_size=4, in_flight=1)
    await batcher.put(1)
    await settle()
    with pytest.raises(RuntimeError, match="publish failed"):
        await batcher.put(2)
    with pytest.raises(RuntimeError, match="publish failed"):
        await batcher.drain()


async def test_each_arrival_carries_the_time_it_arrived_for_the_queued_timing() -> None:
    seen: list[Arrival[int]] = []

    async def handle(arrivals: list[Arrival[int]]) -> None:
        seen.extend(arrivals)

    batcher = NaturalBatcher(handle, max_size=4, in_flight=1)
    await batcher.put(7)
    await batcher.drain()
    (arrival,) = seen
    assert arrival.item == 7 and arrival.at > 0
