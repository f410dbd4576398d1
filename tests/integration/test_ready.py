"""What ``/ready`` tells an orchestrator: assigned, model loaded, not rebalancing or stopping; a replica
the group gave no partition is ready but not labelling (README says why)."""

from __future__ import annotations

import asyncio
import uuid

from tests.integration.conftest import Stream
from tests.integration.test_worker import as_values, chats
from tests.support import MODEL


async def test_ready_means_assigned_and_a_replica_left_without_partitions_is_ready_but_not_labelling(
    kafka_bootstrap: str, start_worker
) -> None:
    stream = Stream(kafka_bootstrap, partitions=1, model=MODEL)  # two replicas, one partition
    await stream.create()
    env = stream.env(STREAMNLP_CACHE_SECRET=uuid.uuid4().hex)
    first = start_worker(env)  # returns at its first 200 from /ready
    assert first.metric("streamnlp_partition_assignments_total") >= 1, "ready before any assignment"
    status, body = first.readiness()
    assert (status, body["partitions"], body["labelling"]) == (200, 1, True)

    second = start_worker(env)  # ready only once the rebalance it causes has given it its assignment
    assert second.metric("streamnlp_partition_assignments_total") >= 1, "ready before any assignment"
    async with asyncio.timeout(120):  # the first one is 503 while it rebalances, then ready again
        while first.readiness()[0] != 200:  # noqa: ASYNC110 (polling a process)
            await asyncio.sleep(0.1)
    answers = {worker: worker.readiness() for worker in (first, second)}
    (idle,) = [w for w, (_, body) in answers.items() if body["partitions"] == 0]
    (busy,) = [w for w, (_, body) in answers.items() if body["partitions"] == 1]
    idle_status, idle_body = answers[idle]
    busy_status, busy_body = answers[busy]
    assert (idle_status, idle_body["ready"], idle_body["labelling"]) == (200, True, False)
    assert (busy_status, busy_body["ready"], busy_body["labelling"]) == (200, True, True)
    assert idle_body["model"] == busy_body["model"] is not None

    busy.stop()  # the idle replica takes the partition over and labels
    async with asyncio.timeout(120):
        while idle.readiness() != (200, {**idle_body, "partitions": 1, "labelling": True}):  # noqa: ASYNC110
            await asyncio.sleep(0.1)
    await stream.produce(as_values(chats(50, seed=602), "r"))
    outputs, _ = await stream.collect(50)
    assert {o["id"] for o in outputs} == {f"r-{i}" for i in range(50)}
