"""One batch of envelopes from consumed bytes to the records to publish: decode, label, encode.

This is the whole labelling path without Kafka's clients: the Faust agent (``workers/app.py``) feeds it
consumed batches and publishes each envelope's output; ``streamnlp tag`` feeds it lines of files. The
stages live elsewhere (codecs, labeller, model slot); the pipeline wires them, routes each output to its
topic and counts what happened.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence

from .cache import LabelCache
from .codecs import InputCodec, decode, encode_dead_letter, encode_output
from .config import DEFAULT_PROFILE, WorkerSettings
from .envelope import Envelope, Output, Source
from .labeller import Job, Labeller, Model, Outcome
from .logs import RateLimited
from .metrics import Metrics
from .model.check import require_heads
from .reload import ModelSlot

log = logging.getLogger(__name__)


class Pipeline:
    def __init__(
        self,
        codec: InputCodec,
        labeller: Labeller,
        slot: ModelSlot,
        *,
        topic_profiles: Mapping[str, str],
        output_topic: Callable[[str, str], str],
        dlq_topic: str,
        max_value_bytes: int,
        metrics: Metrics,
    ) -> None:
        self.codec = codec
        self.labeller = labeller
        self.slot = slot
        self.topic_profiles = dict(topic_profiles)
        self.output_topic = output_topic
        self.dlq_topic = dlq_topic
        self.max_value_bytes = max_value_bytes
        self.metrics = metrics
        self._dead_log = RateLimited(log)

    @classmethod
    def from_settings(cls, settings: WorkerSettings, model: Model, *, use_redis: bool = True) -> Pipeline:
        """The pipeline the settings describe; :class:`ModelError` if ``model`` lacks a profile's head."""
        profiles = settings.profiles()
        require_heads(model, profiles)
        metrics = Metrics()
        cache = LabelCache(
            settings.redis_url if use_redis else None,
            ttl=settings.cache_ttl,
            lru_size=settings.cache_lru_size,
            secret=settings.cache_secret,
            ca_file=str(settings.redis_ca_file) if settings.redis_ca_file else None,
            on_redis_error=metrics.cache_errors.inc,
        )
        return cls(
            settings.input_codec(),
            Labeller(cache, profiles, metrics, max_batch=settings.batch_max_size),
            ModelSlot(model, metrics),
            topic_profiles=settings.topic_profiles(),
            output_topic=settings.output_topic_for,
            dlq_topic=settings.dlq_topic,
            max_value_bytes=settings.max_value_bytes,
            metrics=metrics,
        )

    @property
    def model(self) -> Model:
        """The model that labels messages consumed from now on."""
        return self.slot.current

    def envelope(
        self,
        source: Source,
        key: bytes | None,
        value: bytes | None,
        generation: int | None = None,
        *,
        queued: float = 0.0,
    ) -> Envelope:
        """The carrier of one consumed message. ``generation``: the model generation stamped when it was
        consumed; None stamps it now. ``queued``: seconds it waited in the worker for its batch."""
        if generation is None:
            generation = self.slot.stamp()
        model = self.slot.model(generation)
        return Envelope(source, key, value, generation=generation, model=model, queued=queued)

    async def process(self, batch: Sequence[Envelope]) -> Sequence[Envelope]:
        """Give every envelope of ``batch`` its output: exactly one, a labelled record or a dead letter."""
        began = time.perf_counter()
        self.metrics.batch_size.observe(len(batch))
        counts: Counter[tuple[str, ...]] = Counter()  # metric increments of the batch, made once each
        try:
            for envelope in batch:
                counts["in", envelope.source.topic] += 1
                profile = self.topic_profiles.get(envelope.source.topic, DEFAULT_PROFILE)
                decode(self.codec, envelope, profile, max_value_bytes=self.max_value_bytes)
            todo = [e for e in batch if e.pending]
            jobs = [Job(e.model, e.request.profile, e.request.text) for e in todo]  # type: ignore[union-attr, arg-type]
            outcomes, lookup = await self.labeller.label(jobs) if jobs else ([], 0.0)
            stages: dict[int, Outcome] = {}
            for envelope, outcome in zip(todo, outcomes, strict=True):
                if isinstance(outcome.labels, Exception):
                    envelope.fail(outcome.labels)
                else:
                    envelope.labels, envelope.cached = outcome.labels, outcome.cached
                    stages[id(envelope)] = outcome
            elapsed = time.perf_counter() - began
            for envelope in batch:
                outcome = stages.get(id(envelope))
                timings = {
                    "queued": envelope.queued * 1000,
                    "cache": lookup * 1000,
                    "model_wait": outcome.model_wait * 1000 if outcome else 0.0,
                    "inference": outcome.inference * 1000 if outcome else 0.0,
                    "batch": elapsed * 1000,
                }
                self._encode(envelope, timings, counts)
        finally:
            for generation, count in Counter(e.generation for e in batch).items():
                self.slot.release(generation, count)
            self._count(counts)
        return batch

    def _count(self, counts: Counter[tuple[str, ...]]) -> None:
        """One increment per metric series and batch: per message they cost the event loop more than
        encoding the output does."""
        m = self.metrics
        for (kind, *labels), n in counts.items():
            if kind == "in":
                m.messages_in.labels(*labels).inc(n)
            elif kind == "labelled":
                m.labelled.labels(*labels).inc(n)
            elif kind == "label":
                m.labels.labels(*labels).inc(n)
            elif kind == "truncated":
                m.truncated.inc(n)

    def _encode(
        self, envelope: Envelope, timings: Mapping[str, float], counts: Counter[tuple[str, ...]]
    ) -> None:
        request, labels = envelope.request, envelope.labels
        if envelope.failure is not None or request is None or labels is None:
            assert envelope.failure is not None, "an envelope is either labelled or failed"
            reason, source = envelope.failure.reason, envelope.source
            self.metrics.dead_letters.labels(reason).inc()
            self._dead_log.warning(  # the reason and where the record is; never its text
                reason, "dead letter (%s): %s:%d@%d", reason, source.topic, source.partition, source.offset
            )
            envelope.output = Output(self.dlq_topic, encode_dead_letter(envelope), dead=True)
            return
        topic = self.output_topic(envelope.source.topic, request.profile)
        envelope.output = Output(topic, encode_output(envelope, timings), dead=False)
        counts["labelled", request.profile] += 1
        for head, label in labels.heads.items():
            counts["label", envelope.source.topic, head, label.label] += 1
        if labels.truncated:
            counts["truncated",] += 1

    async def close(self) -> None:
        await self.labeller.close()
        self.slot.close()
