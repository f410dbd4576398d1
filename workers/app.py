"""The Faust app: consume the input topics in micro-batches, label, publish, then let Faust commit.

At-least-once (the default): Faust commits an offset only after the agent has acknowledged the event,
and the agent acknowledges a batch only after the brokers have acknowledged every record published for
it. A worker killed mid-batch therefore re-labels that batch after restart; it never skips it.

Exactly-once (``STREAMNLP_PROCESSING_GUARANTEE=exactly_once``): Faust keeps one transactional producer
per assigned input partition (its transactional id names the partition, so a restarted or new owner
fences the old one and aborts its open transaction). Every record answering an input from partition P
is sent in P's transaction, and Faust's commit puts P's offsets into that same transaction before
committing it: outputs and offsets become visible together or not at all. Commits wait while a batch
is between its first send and its acknowledgement, so no transaction holds half a batch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Mapping
from typing import Any

import faust
from faust.transport.consumer import TopicPartitionGroup
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP
from faust.web import Request, Response, View

from streamnlp.config import WorkerSettings
from streamnlp.kafka import MAX_MESSAGE_BYTES, ssl_context
from streamnlp.pipeline import Pipeline, Publish
from streamnlp.records import Incoming, Source

log = logging.getLogger("streamnlp.worker")


def _credentials(settings: WorkerSettings) -> Any:
    protocol = settings.kafka_security_protocol.upper()
    if protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password,
            mechanism=settings.kafka_sasl_mechanism,
            ssl_context=ssl_context(settings),
        )
    if protocol == "SSL":
        return faust.SSLCredentials(ssl_context(settings))
    return None


def _incoming(event: Any) -> Incoming:
    message = event.message
    timestamp = int(message.timestamp * 1000) if message.timestamp else None
    return Incoming(
        Source(message.topic, message.partition, message.offset, timestamp), message.key, message.value
    )


def create_app(settings: WorkerSettings, pipeline: Pipeline) -> LabelApp:
    """A Faust app that labels ``settings.inputs`` with ``pipeline``."""
    app = LabelApp(
        settings.group,
        broker=[f"kafka://{server.strip()}" for server in settings.brokers.split(",")],
        broker_credentials=_credentials(settings),
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        processing_guarantee=settings.processing_guarantee,
        producer_acks=-1,
        producer_max_request_size=MAX_MESSAGE_BYTES,
        consumer_max_fetch_size=MAX_MESSAGE_BYTES,
        broker_commit_interval=settings.commit_interval,
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=max(0.5, settings.session_timeout / 4),
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        topic_disable_leader=True,
        store="memory://",
        web_enabled=True,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.web_port,
    )
    app.pipeline = pipeline
    inputs = app.topic(*settings.topic_profiles(), key_serializer="raw", value_serializer="raw")
    metrics = pipeline.metrics

    # Two batches of one partition in flight could commit the later one's outputs in a transaction
    # whose offsets stop before the earlier one: exactly-once runs one batch at a time.
    in_flight = 1 if settings.processing_guarantee == "exactly_once" else settings.batches_in_flight

    @app.agent(inputs, concurrency=in_flight)
    async def label(stream: faust.StreamT) -> None:
        async for events in stream.take_events(settings.batch_max_size, within=settings.batch_max_wait):
            batch = [_incoming(event) for event in events]
            result = await pipeline.process(batch)
            async with app.commit_gate:
                pending = [await app.publish(p) for p in (*result.outputs, *result.dead_letters)]
                await asyncio.gather(*pending)  # acknowledged by the brokers before Faust may commit
                for event in events:
                    event.ack()  # safe to commit now, inside the gate (take_events acks again: a no-op)
            now = time.time() * 1000
            for message in batch:
                if message.source.timestamp_ms:
                    metrics.end_to_end_seconds.observe(max(0.0, now - message.source.timestamp_ms) / 1000)
            _observe_lag(app, batch, metrics)

    @app.page("/metrics")
    async def metrics_view(web: View, request: Request) -> Response:
        return web.bytes(metrics.render(), content_type="text/plain; version=0.0.4")

    @app.page("/health")
    async def health(web: View, request: Request) -> Response:
        return web.json({"status": "ok", "model": pipeline.model.version})

    @app.page("/ready")
    async def ready(web: View, request: Request) -> Response:
        ok = app.started and not app.rebalancing
        return web.json({"ready": ok}, status=200 if ok else 503)

    return app


class _IdempotentProducer(aiokafka_driver.Producer):
    """Faust enables the idempotent producer only inside transactions; a retried send must not
    duplicate an output in at-least-once mode either."""

    def _settings_extra(self) -> Mapping[str, Any]:
        return {"acks": "all", "enable_idempotence": True}


class _GatedConsumer(aiokafka_driver.Consumer):
    """Commits wait for the batch in flight, so a commit never splits a batch's outputs from its offsets."""

    async def commit(self, topics: Any = None, start_new_transaction: bool = True) -> bool:
        async with self.app.commit_gate:  # type: ignore[attr-defined]
            return await super().commit(topics, start_new_transaction=start_new_transaction)


class _Transport(aiokafka_driver.Transport):
    Consumer = _GatedConsumer
    Producer = _IdempotentProducer


class LabelApp(faust.App):
    """The Faust app of a worker; it owns the pipeline and closes it when the worker stops."""

    pipeline: Pipeline

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commit_gate = asyncio.Lock()

    async def publish(self, record: Publish) -> Awaitable[Any]:
        """Send ``record``; in exactly-once mode inside the transaction of the input partition it answers."""
        if not self.in_transaction:
            return await self.producer.send(
                record.topic, record.key, record.value, partition=None, timestamp=None, headers=None
            )
        topic, partition = record.source.topic, record.source.partition
        tpg = TopicPartitionGroup(topic, partition, self.assignor.group_for_topic(topic))
        # Faust names (and starts) the producer of an assigned input partition with this format.
        transactional_id = self.consumer.transactions.transactional_id_format.format(
            group_id=self.conf.id, tpg=tpg
        )
        return await self.producer.send(
            record.topic, record.key, record.value, None, None, None, transactional_id=transactional_id
        )

    def _new_transport(self) -> Any:
        return _Transport(self.conf.broker_consumer, self)

    def _new_producer_transport(self) -> Any:
        return _Transport(self.conf.broker_producer, self)

    async def on_stop(self) -> None:
        await super().on_stop()
        await self.pipeline.close()


def _observe_lag(app: faust.App, batch: list[Incoming], metrics: Any) -> None:
    last: dict[tuple[str, int], int] = {}
    for message in batch:
        last[(message.source.topic, message.source.partition)] = message.source.offset
    for (topic, partition), offset in last.items():
        try:
            highwater = app.consumer.highwater(TP(topic, partition))
        except Exception:  # the partition was revoked meanwhile: nothing to report
            continue
        if highwater is not None:
            metrics.consumer_lag.labels(topic, str(partition)).set(max(0, highwater - offset - 1))
