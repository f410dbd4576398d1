"""The Faust app's producer settings and where its records go in each processing guarantee."""

from __future__ import annotations

import asyncio

from faust.types import TP

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
    sent: list[tuple[str, bytes | None, str | None]] = []

    async def send(topic, key, value, partition, timestamp, headers, *, transactional_id=None):
        sent.append((topic, key, transactional_id))

    app.producer.send = send  # records what the app hands to Faust's producer; nothing is published
    app.in_transaction = True  # Faust sets this only inside a running worker
    app.assignor._topic_groups = {"chats": 0, "streamnlp.labels": 1}  # as an assignment would set them
    envelope = Envelope(Source("chats", 3, 17, None), b"k", b"{}")
    envelope.output = Output("streamnlp.labels", b"{}", dead=False)
    asyncio.run(app.publish(envelope))
    # The transaction Faust commits partition 3's offsets in, not one named after the output's partition.
    (commit_transaction,) = app.consumer.transactions._tps_to_transactional_ids({TP("chats", 3)})
    assert sent == [("streamnlp.labels", b"k", commit_transaction)]


def test_batches_run_concurrently_in_at_least_once_mode_but_one_at_a_time_in_exactly_once(model) -> None:
    def concurrency(**env: str) -> int:
        settings = WorkerSettings.from_env({"STREAMNLP_BATCHES_IN_FLIGHT": "3", **env})
        app = create_app(settings, Pipeline.from_settings(settings, model, use_redis=False))
        (agent,) = app.agents.values()
        return agent.concurrency

    assert concurrency() == 3
    assert concurrency(STREAMNLP_PROCESSING_GUARANTEE="exactly_once") == 1


def test_faust_keeps_its_data_under_the_data_dir_setting_not_the_working_directory(model, tmp_path) -> None:
    settings = WorkerSettings.from_env({"STREAMNLP_DATA_DIR": str(tmp_path), "STREAMNLP_GROUP": "g1"})
    app = create_app(settings, Pipeline.from_settings(settings, model, use_redis=False))
    assert app.conf.datadir == tmp_path / "g1-data"
