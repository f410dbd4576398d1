"""The Faust app's producer settings and where its records go in each processing guarantee."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from faust.types import TP
from faust.types.tuples import ConsumerMessage

from streamnlp.config import WorkerSettings
from streamnlp.envelope import Envelope, Output, Source
from streamnlp.pipeline import Pipeline
from streamnlp.workers import create_app


def test_the_worker_producer_waits_for_all_replicas_and_is_idempotent(model) -> None:
    settings = WorkerSettings.from_env({})
    app = create_app(settings, Pipeline.from_settings(settings, model, use_redis=False))
    producer = app.producer
    effective = {**producer._settings_default(), **producer._settings_extra()}
    assert effective["acks"] == "all"
    assert effective["enable_idempotence"] is True


def test_exactly_once_mode_sends_each_record_in_its_input_partitions_transaction(model) -> None:
    settings = WorkerSettings.from_env(
        {"STREAMNLP_PROCESSING_GUARANTEE": "exactly_once", "STREAMNLP_INPUTS": "chats=ecommerce"}
    )
    app = create_app(settings, Pipeline.from_settings(settings, model, use_redis=False))
    assert app.conf.processing_guarantee.value == "exactly_once"
    sent: list[tuple[str, bytes | None, int | None, str | None]] = []

    async def send(topic, key, value, partition, timestamp, headers, *, transactional_id=None):
        sent.append((topic, key, partition, transactional_id))

    app.producer.send = send  # records what the app hands to Faust's producer; nothing is published
    app.in_transaction = True  # Faust sets this only inside a running worker
    app.assignor._topic_groups = {"chats": 0, "streamnlp.labels": 1}  # as an assignment would set them
    envelope = Envelope(Source("chats", 3, 17, None), b"k", b"{}")
    envelope.output = Output("streamnlp.labels", b"{}", dead=False)
    asyncio.run(app.publish(envelope))
    # The transaction Faust commits partition 3's offsets in, not one named after the output's partition.
    (commit_transaction,) = app.consumer.transactions._tps_to_transactional_ids({TP("chats", 3)})
    assert sent == [("streamnlp.labels", b"k", None, commit_transaction)]  # partition counts unknown: by key
    app.partitions = {"chats": 4, "streamnlp.labels": 4}  # co-partitioned: the input's partition number
    asyncio.run(app.publish(envelope))
    assert sent[-1] == ("streamnlp.labels", b"k", 3, commit_transaction)


def test_batches_run_concurrently_in_at_least_once_mode_but_one_at_a_time_in_exactly_once(model) -> None:
    def in_flight(**env: str) -> int:
        settings = WorkerSettings.from_env({"STREAMNLP_BATCHES_IN_FLIGHT": "3", **env})
        app = create_app(settings, Pipeline.from_settings(settings, model, use_redis=False))
        (agent,) = app.agents.values()
        assert agent.concurrency == 1, "one consumer loop; the batcher runs the batches"
        return app.batches_in_flight

    assert in_flight() == 3
    assert in_flight(STREAMNLP_PROCESSING_GUARANTEE="exactly_once") == 1


def test_faust_keeps_its_data_under_the_data_dir_setting_not_the_working_directory(model, tmp_path) -> None:
    settings = WorkerSettings.from_env({"STREAMNLP_DATA_DIR": str(tmp_path), "STREAMNLP_GROUP": "g1"})
    app = create_app(settings, Pipeline.from_settings(settings, model, use_redis=False))
    assert app.conf.datadir == tmp_path / "g1-data"


def _message(offset: int, generation: int) -> ConsumerMessage:
    return ConsumerMessage("chats", 0, offset, 0.0, 0, None, b"k", b"{}", None, generation_id=generation)


def test_a_message_consumed_before_a_rebalance_or_after_the_last_commit_is_not_published(model) -> None:
    settings = WorkerSettings.from_env({"STREAMNLP_INPUTS": "chats=ecommerce"})
    app = create_app(settings, Pipeline.from_settings(settings, model, use_redis=False))
    app.consumer_generation_id = 3  # what the consumer sets on each assignment
    assert app.holds(_message(10, generation=3))
    assert not app.holds(_message(10, generation=2)), "consumed before the latest rebalance"
    app.released = True  # the last commit before the partitions go has been made
    assert not app.holds(_message(11, generation=3))


def test_an_abandoned_message_is_never_acknowledged_so_no_commit_covers_it(model) -> None:
    settings = WorkerSettings.from_env({"STREAMNLP_INPUTS": "chats=ecommerce"})
    app = create_app(settings, Pipeline.from_settings(settings, model, use_redis=False))
    kept, dropped = _message(20, generation=1), _message(21, generation=1)
    consumer = app.consumer
    app.topics._acking_topics.add("chats")  # as the conductor does when it subscribes the agent's topic
    consumer.unacked.add(dropped)
    assert app.abandon([SimpleNamespace(message=dropped)]) == 1
    assert dropped not in consumer.unacked, "Faust would wait for it before a rebalance or a stop"
    assert dropped.ack(consumer) is False  # the agent's stream.ack after the batch changes nothing
    assert kept.ack(consumer) is True
    assert list(consumer._acked[TP("chats", 0)]) == [20]  # only the published one can be committed


def test_outputs_go_to_the_input_partition_only_when_the_topics_are_co_partitioned(model) -> None:
    def partition(mode: str, counts: dict[str, int], topic: str = "streamnlp.labels") -> int | None:
        settings = WorkerSettings.from_env(
            {"STREAMNLP_INPUTS": "chats=ecommerce", "STREAMNLP_OUTPUT_PARTITION": mode}
        )
        pipeline = Pipeline.from_settings(settings, model, use_redis=False)
        app = create_app(settings, pipeline, partitions=counts)
        envelope = Envelope(Source("chats", 3, 17, None), b"k", b"{}")
        envelope.output = Output(topic, b"{}", dead=False)
        return app.partition_for(envelope)

    same = {"chats": 4, "streamnlp.labels": 4, "streamnlp.dlq": 4}
    assert WorkerSettings.from_env({}).output_partition == "input"  # the default
    assert partition("input", same) == 3
    assert partition("input", same, topic="streamnlp.dlq") == 3  # dead letters too
    assert partition("input", {**same, "streamnlp.labels": 8}) is None  # by key: counts differ
    assert partition("input", {"chats": 4}) is None  # by key: count unknown
    assert partition("key", same) is None  # the producer's murmur2 partitioner on the key
    # each destination on its own: outputs by the input's partition, dead letters by key
    assert partition("input", {**same, "streamnlp.dlq": 1}) == 3
    assert partition("input", {**same, "streamnlp.dlq": 1}, topic="streamnlp.dlq") is None


class _Counts(dict[str, int]):
    """Partition counts that count how often they are read."""

    reads = 0

    def __getitem__(self, topic: str) -> int:
        self.reads += 1
        return super().__getitem__(topic)

    def get(self, topic: str, default: Any = None) -> Any:
        self.reads += 1
        return super().get(topic, default)

    def items(self) -> Any:
        self.reads += 1
        return super().items()


def test_partition_counts_are_read_once_at_start_not_for_every_message(model) -> None:
    settings = WorkerSettings.from_env({"STREAMNLP_INPUTS": "chats=ecommerce,notes=medical"})
    app = create_app(settings, Pipeline.from_settings(settings, model, use_redis=False))
    counts = _Counts({"chats": 4, "notes": 2, "streamnlp.labels": 4, "streamnlp.dlq": 2})
    app.partitions = counts  # what the worker read at start
    read = counts.reads
    routed: dict[tuple[str, str], set[int | None]] = {}
    for source in ("chats", "notes"):
        for destination in ("streamnlp.labels", "streamnlp.dlq"):
            for offset in range(100):
                envelope = Envelope(Source(source, 1, offset, None), b"k", b"{}")
                envelope.output = Output(destination, b"{}", dead=destination == "streamnlp.dlq")
                routed.setdefault((source, destination), set()).add(app.partition_for(envelope))
    assert counts.reads == read, "partition counts were looked up again per message"
    assert routed == {
        ("chats", "streamnlp.labels"): {1},
        ("chats", "streamnlp.dlq"): {None},  # 4 and 2 partitions: by key
        ("notes", "streamnlp.labels"): {None},
        ("notes", "streamnlp.dlq"): {1},
    }
