"""The Faust app's producer settings: what at-least-once without duplicates from retries needs."""

from __future__ import annotations

from streamnlp.config import WorkerSettings
from streamnlp.pipeline import Pipeline
from workers import create_app


def test_the_worker_producer_waits_for_all_replicas_and_is_idempotent(model) -> None:
    settings = WorkerSettings.from_env({})
    app = create_app(settings, Pipeline.from_settings(settings, model, use_redis=False))
    producer = app.producer
    effective = {**producer._settings_default(), **producer._settings_extra()}
    assert effective["acks"] == "all"
    assert effective["enable_idempotence"] is True
