"""The Faust app: consume the input topics in natural batches, label, publish, then let Faust commit.

Batching (``streamnlp.batching``): the agent hands every consumed event to a batcher that starts a batch
as soon as fewer than STREAMNLP_BATCHES_IN_FLIGHT are under way, with everything that has arrived (up
to STREAMNLP_BATCH_MAX_SIZE); no timer. The labeller batches the uncached texts for the model the same
way.

At-least-once (the default): Faust commits an offset only after the agent has acknowledged the event,
and the agent acknowledges a batch only after the brokers have acknowledged every record published for
it. A worker killed mid-batch therefore re-labels that batch after restart; it never skips it.

Exactly-once (``STREAMNLP_PROCESSING_GUARANTEE=exactly_once``): Faust keeps one transactional producer
per assigned input partition (its transactional id names the partition, so a restarted or new owner
fences the old one and aborts its open transaction). Every record answering an input from partition P
is sent in P's transaction, and Faust's commit puts P's offsets into that same transaction before
committing it: outputs and offsets become visible together or not at all. Commits wait while a batch
is between its first send and its acknowledgement, so no transaction holds half a batch.

Model hot reload: SIGHUP, or a new manifest under STREAMNLP_MODEL_PATH (polled), loads and checks the new
version off the event loop (``streamnlp.reload``). Each message is labelled by the model that was current
when it was consumed: with one batch in flight (always in exactly-once mode) it is the model current when
the batch starts, so a batch, and the transaction it is sent in, never mixes versions; with several in
flight the agent stamps each message as it leaves the consumer, because concurrent batches interleave a
partition's messages. Either way versions only move forward within a partition.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
import time
from collections.abc import Awaitable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import faust
from aiokafka.errors import IllegalStateError
from faust.transport.consumer import TopicPartitionGroup
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP
from faust.web import Request, Response, View

from streamnlp.batching import Arrival, NaturalBatcher
from streamnlp.config import WorkerSettings
from streamnlp.envelope import Envelope, Source
from streamnlp.kafka import MAX_MESSAGE_BYTES, ssl_context
from streamnlp.model.check import load_serving
from streamnlp.pipeline import Pipeline
from streamnlp.reload import Reloader

log = logging.getLogger("streamnlp.worker")


def _credentials(settings: WorkerSettings) -> Any:
    protocol = settings.kafka_security_protocol
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


def _source(message: Any) -> Source:
    timestamp = int(message.timestamp * 1000) if message.timestamp else None
    return Source(message.topic, message.partition, message.offset, timestamp)


def create_app(
    settings: WorkerSettings, pipeline: Pipeline, *, partitions: Mapping[str, int] | None = None
) -> LabelApp:
    """A Faust app that labels ``settings.inputs`` with ``pipeline``. ``partitions``: the partition
    count of each input and output topic, read at start (``STREAMNLP_OUTPUT_PARTITION=input`` uses it)."""
    app = LabelApp(
        settings.group,
        broker=[f"kafka://{server.strip()}" for server in settings.brokers.split(",")],
        broker_credentials=_credentials(settings),
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        processing_guarantee=settings.processing_guarantee,
        producer_acks=-1,
        producer_linger=settings.producer_linger,
        producer_max_request_size=MAX_MESSAGE_BYTES,
        consumer_max_fetch_size=MAX_MESSAGE_BYTES,
        broker_commit_interval=settings.commit_interval,
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=max(0.5, settings.session_timeout / 4),
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        topic_disable_leader=True,
        store="memory://",
        datadir=str(settings.data_dir / "{conf.name}-data"),
        web_enabled=True,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.web_port,
        stream_wait_empty=True,  # revocation and shutdown wait for the batches in flight (see _GatedConsumer)
    )
    app.pipeline = pipeline
    app.output_partition = settings.output_partition
    app.partitions = dict(partitions or {})
    if settings.output_partition == "input":
        for source, destination in _not_copartitioned(settings, app._copartitioned):
            log.warning(
                "outputs of %s go to %s by key, not by input partition: %s has %s partitions, %s has %s",
                source,
                destination,
                source,
                app.partitions.get(source, "?"),
                destination,
                app.partitions.get(destination, "?"),
            )
    inputs = app.topic(*settings.topic_profiles(), key_serializer="raw", value_serializer="raw")
    metrics = pipeline.metrics
    reloader = Reloader(
        pipeline.slot,
        settings.model_dir(),
        functools.partial(
            load_serving,
            profiles=settings.profiles(),
            threads=settings.onnx_threads,
            own_process=settings.model_process,
        ),
        metrics,
    )

    # Two batches of one partition in flight could commit the later one's outputs in a transaction
    # whose offsets stop before the earlier one: exactly-once runs one batch at a time.
    in_flight = 1 if settings.processing_guarantee == "exactly_once" else settings.batches_in_flight
    app.batches_in_flight = in_flight

    @app.agent(inputs)
    async def label(stream: faust.StreamT) -> None:
        # Events are acknowledged by `handle` once their outputs are (or when abandoned), never by the
        # stream as it moves on.
        stream.enable_acks = False

        async def handle(arrivals: list[Arrival[tuple[Any, int | None]]]) -> None:
            began = time.perf_counter()
            events = [arrival.item[0] for arrival in arrivals]
            batch = [_envelope(pipeline, arrival, began) for arrival in arrivals]
            await pipeline.process(batch)
            async with app.commit_gate:
                # A message consumed before a rebalance that has happened since, or after this worker's
                # last commit for its partition, is not published: the partition went on at the committed
                # offset, so its owner reads the message again; publishing it too would label it twice.
                published = events
                current = [app.holds(event.message) for event in events]
                if not all(current):
                    abandoned = app.abandon([e for e, ok in zip(events, current, strict=True) if not ok])
                    metrics.abandoned.inc(abandoned)
                    published = [e for e, ok in zip(events, current, strict=True) if ok]
                    batch = [b for b, ok in zip(batch, current, strict=True) if ok]
                pending = [await app.publish(envelope) for envelope in batch]
                await asyncio.gather(*pending)  # acknowledged by the brokers before Faust may commit
                for event in published:
                    event.ack()  # safe to commit now, inside the gate
            for event in events:
                await stream.ack(event)  # Faust's bookkeeping (a no-op ack for those acked above)
            now = time.time() * 1000
            for envelope in batch:
                if envelope.source.timestamp_ms:
                    metrics.end_to_end_seconds.observe(max(0.0, now - envelope.source.timestamp_ms) / 1000)
            _observe_lag(app, batch, metrics)

        batcher = NaturalBatcher(handle, max_size=settings.batch_max_size, in_flight=in_flight)
        try:
            async for event in stream.events():
                # With several batches in flight, concurrent batches interleave a partition's messages:
                # each is stamped with the model generation as it leaves the consumer. With one, the
                # batch is stamped when it starts, so a batch (and its transaction) has one version.
                await batcher.put((event, pipeline.slot.stamp() if in_flight > 1 else None))
            await batcher.drain()
        finally:
            batcher.cancel()

    if settings.model_poll_interval > 0:

        @app.timer(interval=settings.model_poll_interval)
        async def poll_model() -> None:
            await reloader.poll()

    def on_sighup() -> None:
        reload = asyncio.ensure_future(reloader.reload(forced=True))
        app.reloads.add(reload)
        reload.add_done_callback(app.reloads.discard)

    @app.task
    async def reload_on_sighup() -> None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, on_sighup)

    @app.on_partitions_assigned.connect
    async def on_assigned(sender: Any, assigned: Any, **kwargs: Any) -> None:
        metrics.partition_assignments.inc()
        app.assigned = frozenset(assigned)
        app.released = False  # messages of the new generation may be published again

    @app.on_partitions_revoked.connect
    async def on_revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
        pipeline.slot.forget_stamps()  # messages still buffered are consumed again, and stamped again

    @app.page("/metrics")
    async def metrics_view(web: View, request: Request) -> Response:
        return web.bytes(metrics.render(), content_type="text/plain; version=0.0.4")

    @app.page("/health")
    async def health(web: View, request: Request) -> Response:
        model = pipeline.model
        return web.json({"status": "ok", "model": {"name": model.name, "version": model.version}})

    @app.page("/ready")
    async def ready(web: View, request: Request) -> Response:
        body, status = app.readiness()
        return web.json(body, status=status)

    return app


class _IdempotentProducer(aiokafka_driver.Producer):
    """Faust enables the idempotent producer only inside transactions; a retried send must not
    duplicate an output in at-least-once mode either."""

    def _settings_extra(self) -> Mapping[str, Any]:
        return {"acks": "all", "enable_idempotence": True}


class _GatedConsumer(aiokafka_driver.Consumer):
    """Commits wait for the batch in flight, so a commit never splits a batch's outputs from its offsets;
    partitions are let go only after everything published for them is committed."""

    async def commit(self, topics: Any = None, start_new_transaction: bool = True) -> bool:
        async with self.app.commit_gate:  # type: ignore[attr-defined]
            return await super().commit(topics, start_new_transaction=start_new_transaction)

    async def perform_seek(self) -> None:
        """Seek to the committed offsets, never in the middle of a commit.

        Faust seeks back (and resets its record of the committed offsets) when a fetch returns while
        the flow is stopped, that is during a revocation or a stop, concurrently with the commits that
        drain them. A commit landing between its read of the committed offsets and its update of that
        record was undone in the record; the partition's next commits then looked like they left a gap
        and were refused, so work published just before the partitions went was labelled again by
        their next owner. Under the gate a seek and a commit never interleave."""
        async with self.app.commit_gate:  # type: ignore[attr-defined]
            await super().perform_seek()

    async def commit_and_end_transactions(self) -> None:
        """The last commit before the partitions go (revoked in a rebalance, or the worker stopping):
        from here on nothing consumed so far is published (``LabelApp.holds``)."""
        async with self.app.commit_gate:  # type: ignore[attr-defined]
            await aiokafka_driver.Consumer.commit(self, start_new_transaction=False)
            self.app.released = True  # type: ignore[attr-defined]

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        """Let partitions go only after what was published for them is committed.

        Faust's own version forgets the revoked partitions' acknowledged but uncommitted offsets (and
        their committed offsets) first, and only then lets the app stop the flow, wait for the batches
        in flight and commit: that commit could no longer cover work acknowledged just before the
        rebalance, so the next owner, often this same worker (an eager rebalance revokes every
        partition), labelled it again. Here the app's revocation runs first with that bookkeeping intact:
        it stops taking records, waits until every message handed to the agent is published and
        acknowledged (or abandoned), and commits; then the partitions are forgotten.
        """
        if revoked:
            self.app.revoked_at = time.monotonic()  # type: ignore[attr-defined]
        if self._active_partitions is not None:
            self._active_partitions.difference_update(revoked)
        self._paused_partitions.difference_update(revoked)
        try:
            await self._on_partitions_revoked(revoked)
        finally:
            for tp in revoked:
                self._gap.pop(tp, None)
                self._acked.pop(tp, None)
                self._acked_index.pop(tp, None)
                self._read_offset.pop(tp, None)
                self._committed_offset.pop(tp, None)


class _Transport(aiokafka_driver.Transport):
    Consumer = _GatedConsumer
    Producer = _IdempotentProducer


class LabelApp(faust.App):
    """The Faust app of a worker; it owns the pipeline and closes it when the worker stops."""

    pipeline: Pipeline
    output_partition: str = "input"  # STREAMNLP_OUTPUT_PARTITION
    batches_in_flight: int = 1  # STREAMNLP_BATCHES_IN_FLIGHT, 1 in exactly-once mode
    _partitions: Mapping[str, int] = MappingProxyType({})
    _copartitioned: frozenset[tuple[str, str]] = frozenset()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commit_gate = asyncio.Lock()
        self.reloads: set[asyncio.Future[bool]] = set()  # reloads SIGHUP started, kept from the GC
        # Partitions of the latest assignment; None until the first one (an empty set is an assignment).
        self.assigned: frozenset[TP] | None = None
        # True from the last commit before this worker lets its partitions go (a rebalance revoking them,
        # or the worker stopping) until the next assignment: nothing consumed before it may be published.
        self.released = False
        self.revoked_at: float | None = None  # when partitions were last revoked, until the flow resumes

    def readiness(self) -> tuple[dict[str, Any], int]:
        """``/ready``'s body and status: 200 once this replica has joined its group, received its
        assignment, loaded its model and resumed the flow (no rebalance in progress, not stopping);
        503 before, during a rebalance and while stopping. A replica the group gave no partition
        (more replicas than the assignor hands partitions to) is ready too, with ``partitions: 0`` and
        ``labelling: false``: it is healthy and takes partitions at the next rebalance (README says why
        Kubernetes should see it ready)."""
        assigned = self.assigned
        model = self.pipeline.model if getattr(self, "pipeline", None) is not None else None
        ok = (
            bool(self.started)
            and not self.should_stop
            and not self.rebalancing
            and assigned is not None
            and model is not None
        )
        body = {
            "ready": ok,
            "partitions": len(assigned or ()),
            "labelling": ok and bool(assigned),
            "model": model.version if model is not None else None,
        }
        return body, 200 if ok else 503

    def on_rebalance_end(self) -> None:
        """The flow has resumed after a rebalance: observe how long this replica was kept from labelling."""
        super().on_rebalance_end()
        if self.revoked_at is not None:
            self.pipeline.metrics.rebalance_pause_seconds.observe(time.monotonic() - self.revoked_at)
            self.revoked_at = None

    def holds(self, message: Any) -> bool:
        """Whether a consumed message may still be published: this worker has not let its partition go
        since it was consumed (same consumer generation, no final commit since)."""
        return not self.released and message.generation_id == self.consumer_generation_id

    def abandon(self, events: Sequence[Any]) -> int:
        """Drop consumed messages without publishing them and without letting their offsets be committed:
        they are marked done, so Faust no longer waits for them, but never acknowledged to the consumer,
        so no commit covers them and whoever owns the partition next reads them again."""
        unacked = self.consumer.unacked
        for event in events:
            message = event.message
            message.acked = True  # the agent's stream.ack after the batch is a no-op for them now
            unacked.discard(message)
        return len(events)

    @property
    def partitions(self) -> Mapping[str, int]:
        """The partition count of each topic, read at start."""
        return self._partitions

    @partitions.setter
    def partitions(self, counts: Mapping[str, int]) -> None:
        # What partition_for needs, worked out once for every pair of topics, not again per message.
        self._partitions = MappingProxyType(dict(counts))
        self._copartitioned = _copartitioned(self._partitions)

    def partition_for(self, envelope: Envelope) -> int | None:
        """The output's partition: the input's partition number when ``STREAMNLP_OUTPUT_PARTITION`` is
        ``input`` and both topics have the same partition count; otherwise None (the producer's murmur2
        partitioner on the key)."""
        output = envelope.output
        if self.output_partition != "input" or output is None:
            return None
        source = envelope.source
        return source.partition if (source.topic, output.topic) in self._copartitioned else None

    async def publish(self, envelope: Envelope) -> Awaitable[Any]:
        """Send the envelope's output with the input's key, to the partition ``partition_for`` chooses;
        in exactly-once mode inside the transaction of the input partition it answers."""
        output = envelope.output
        assert output is not None, "the pipeline gives every envelope an output"
        partition = self.partition_for(envelope)
        if not self.in_transaction:
            return await self.producer.send(
                output.topic, envelope.key, output.value, partition=partition, timestamp=None, headers=None
            )
        source = envelope.source
        tpg = TopicPartitionGroup(source.topic, source.partition, self.assignor.group_for_topic(source.topic))
        # Faust names (and starts) the producer of an assigned input partition with this format.
        transactional_id = self.consumer.transactions.transactional_id_format.format(
            group_id=self.conf.id, tpg=tpg
        )
        return await self.producer.send(
            output.topic, envelope.key, output.value, partition, None, None, transactional_id=transactional_id
        )

    def _new_transport(self) -> Any:
        return _Transport(self.conf.broker_consumer, self)

    def _new_producer_transport(self) -> Any:
        return _Transport(self.conf.broker_producer, self)

    async def on_stop(self) -> None:
        await super().on_stop()
        await self.pipeline.close()


def _copartitioned(partitions: Mapping[str, int]) -> frozenset[tuple[str, str]]:
    """(topic, topic) pairs with the same partition count: an output of the first may go to the second's
    partition of the same number. A topic whose count is unknown is in no pair."""
    by_count: dict[int, list[str]] = {}
    for topic, count in partitions.items():
        by_count.setdefault(count, []).append(topic)
    return frozenset((a, b) for topics in by_count.values() for a in topics for b in topics)


def _not_copartitioned(
    settings: WorkerSettings, copartitioned: frozenset[tuple[str, str]]
) -> list[tuple[str, str]]:
    """(input topic, destination topic) pairs whose partition counts differ or are unknown."""
    pairs = []
    for source, profile in settings.topic_profiles().items():
        destinations = {settings.output_topic_for(source, profile), settings.dlq_topic}
        if "{profile}" in settings.output_topic:
            destinations |= {settings.output_topic_for(source, p) for p in settings.profiles()}
        pairs += [(source, d) for d in sorted(destinations) if (source, d) not in copartitioned]
    return pairs


def _envelope(pipeline: Pipeline, arrival: Arrival[tuple[Any, int | None]], began: float) -> Envelope:
    event, generation = arrival.item
    message = event.message
    return pipeline.envelope(
        _source(message), message.key, message.value, generation, queued=max(0.0, began - arrival.at)
    )


def _observe_lag(app: faust.App, batch: Sequence[Envelope], metrics: Any) -> None:
    last: dict[tuple[str, int], int] = {}
    for envelope in batch:
        last[(envelope.source.topic, envelope.source.partition)] = envelope.source.offset
    for (topic, partition), offset in last.items():
        try:
            highwater = app.consumer.highwater(TP(topic, partition))
        except (IllegalStateError, KeyError, AssertionError):  # revoked meanwhile: nothing to report
            continue
        if highwater is not None:
            metrics.consumer_lag.labels(topic, str(partition)).set(max(0, highwater - offset - 1))
