"""From a micro-batch of consumed messages to the records to publish: parse, cache, label, build.

This is the whole labelling path without Kafka: the Faust agent feeds it consumed batches and publishes
what it returns; ``streamnlp tag`` feeds it lines from files. Inference runs in a worker thread, off the
event loop, one batch at a time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from ._errors import ConfigError, RecordError
from .cache import LabelCache
from .config import WorkerSettings
from .metrics import Metrics
from .records import DeadLetter, Incoming, Label, LabelRequest, Labels, OutputRecord, Source, parse_input

log = logging.getLogger(__name__)

# A text longer than this many characters per window token cannot fit the window anyway: it is cut
# before tokenizing, so a megabyte of text costs no more than a page.
_CHARS_PER_TOKEN_BOUND = 64


class Prediction(Protocol):
    heads: Mapping[str, Label]
    truncated: bool


class Model(Protocol):
    """What the pipeline needs of a model (``streamnlp.model.runtime.LabelModel`` is one)."""

    name: str
    version: str
    max_length: int
    heads: Mapping[str, Sequence[str]]

    def predict(self, texts: Sequence[str], heads: Sequence[str] | None = None) -> Sequence[Prediction]: ...


@dataclass(frozen=True, slots=True)
class Publish:
    """One record to publish, with the input it answers (exactly-once mode sends it in that input
    partition's transaction)."""

    topic: str
    key: bytes | None
    value: bytes
    source: Source


@dataclass(frozen=True, slots=True)
class BatchResult:
    outputs: list[Publish]
    dead_letters: list[Publish]


class Pipeline:
    def __init__(
        self,
        model: Model,
        cache: LabelCache,
        *,
        topic_profiles: Mapping[str, str],
        profiles: Mapping[str, Sequence[str]],
        output_topic: str = "streamnlp.labels",
        dlq_topic: str = "streamnlp.dlq",
        text_field: str = "text",
        id_field: str = "id",
        max_value_bytes: int = 16 * 1024 * 1024,
        metrics: Metrics | None = None,
    ) -> None:
        for profile, heads in profiles.items():
            missing = [h for h in heads if h not in model.heads]
            if missing:
                raise ConfigError(
                    f"profile {profile!r} asks for heads {missing} that model {model.version} lacks; "
                    f"it has {sorted(model.heads)}"
                )
        self.model = model
        self.cache = cache
        self.topic_profiles = dict(topic_profiles)
        self.profiles = {p: tuple(h) for p, h in profiles.items()}
        self.output_topic = output_topic
        self.dlq_topic = dlq_topic
        self.text_field = text_field
        self.id_field = id_field
        self.max_value_bytes = max_value_bytes
        self.metrics = metrics or Metrics()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        self._max_chars = model.max_length * _CHARS_PER_TOKEN_BOUND
        self._labelling: dict[str, asyncio.Future[Labels | RecordError | None]] = {}  # cache key -> result

    @classmethod
    def from_settings(cls, settings: WorkerSettings, model: Model, *, use_redis: bool = True) -> Pipeline:
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
            model,
            cache,
            topic_profiles=settings.topic_profiles(),
            profiles=settings.profiles(),
            output_topic=settings.output_topic,
            dlq_topic=settings.dlq_topic,
            text_field=settings.text_field,
            id_field=settings.id_field,
            max_value_bytes=settings.max_value_bytes,
            metrics=metrics,
        )

    def parse(self, message: Incoming) -> LabelRequest:
        profile = self.topic_profiles.get(message.source.topic, "general")
        return parse_input(
            message,
            profile=profile,
            known_profiles=self.profiles,
            text_field=self.text_field,
            id_field=self.id_field,
            max_value_bytes=self.max_value_bytes,
        )

    def _predict(self, texts: list[str], heads: tuple[str, ...]) -> list[Labels]:
        cut = [len(t) > self._max_chars for t in texts]
        predictions = self.model.predict([t[: self._max_chars] for t in texts], heads)
        return [
            Labels({h: Label(p.heads[h].label, float(p.heads[h].score)) for h in heads}, p.truncated or c)
            for p, c in zip(predictions, cut, strict=True)
        ]

    async def _run_model(self, texts: list[str], heads: tuple[str, ...]) -> list[Labels | RecordError]:
        """The model's labels for ``texts``; a text the model fails on gets a RecordError, not the batch.

        A failed batch is retried one text at a time, so one poison text cannot stall a partition.
        """
        loop = asyncio.get_running_loop()
        self.metrics.model_texts.inc(len(texts))
        try:
            return list(await loop.run_in_executor(self._executor, self._predict, texts, heads))
        except Exception:
            if len(texts) == 1:
                raise
        results: list[Labels | RecordError] = []
        for text in texts:
            try:
                results.extend(await loop.run_in_executor(self._executor, self._predict, [text], heads))
            except Exception as exc:  # onnxruntime and tokenizers raise untyped errors
                log.error(
                    "model failed on one text (%s); it goes to the dead-letter topic", type(exc).__name__
                )
                results.append(RecordError("model_error", f"{type(exc).__name__}: {exc}"[:500]))
        return results

    async def label(
        self, requests: Sequence[LabelRequest]
    ) -> tuple[list[Labels | RecordError], list[bool], float]:
        """Labels for each request, whether each came without a model call, and the seconds in the model.

        The cache is asked once for the whole batch; each distinct miss goes through the model once, also
        across the batches in flight: a text another batch is labelling right now is waited for, not
        labelled again.
        """
        keys = [self.cache.key(self.model.version, r.profile, r.text) for r in requests]
        cached: list[Labels | RecordError | None] = list(await self.cache.get_many(keys))
        todo: dict[str, LabelRequest] = {}
        elsewhere: dict[str, tuple[asyncio.Future[Labels | RecordError | None], LabelRequest]] = {}
        for key, hit, request in zip(keys, cached, requests, strict=True):
            if hit is None and key not in todo and key not in elsewhere:
                if key in self._labelling:
                    elsewhere[key] = (self._labelling[key], request)
                else:
                    todo[key] = request
        loop = asyncio.get_running_loop()
        mine = {key: loop.create_future() for key in todo}
        self._labelling.update(mine)
        fresh: dict[str, Labels | RecordError] = {}
        try:
            inference = await self._label_fresh(todo, fresh)
        finally:
            for key, future in mine.items():  # waiters get None (label it yourself) if this batch failed
                del self._labelling[key]
                future.set_result(fresh.get(key))
        unanswered: dict[str, LabelRequest] = {}  # their batch failed or was cancelled: label them here
        for key, (future, request) in elsewhere.items():
            if (shared := await future) is not None:
                fresh[key] = shared
            else:
                unanswered[key] = request
        inference += await self._label_fresh(unanswered, fresh)
        from_model = {*todo, *unanswered}
        hits = sum(1 for key in keys if key not in from_model)
        self.metrics.cache_hits.inc(hits)
        self.metrics.cache_misses.inc(len(requests) - hits)
        results = [hit if hit is not None else fresh[key] for key, hit in zip(keys, cached, strict=True)]
        return results, [key not in from_model for key in keys], inference

    async def _label_fresh(
        self, todo: Mapping[str, LabelRequest], fresh: dict[str, Labels | RecordError]
    ) -> float:
        """Run ``todo`` through the model (one call per head set), store into ``fresh`` and the cache."""
        inference = 0.0
        by_heads: dict[tuple[str, ...], list[tuple[str, str]]] = {}
        for key, request in todo.items():
            by_heads.setdefault(self.profiles[request.profile], []).append((key, request.text))
        for heads, items in by_heads.items():
            began = time.perf_counter()
            try:
                labels = await self._run_model([t for _, t in items], heads)
            except Exception as exc:
                labels = [RecordError("model_error", f"{type(exc).__name__}: {exc}"[:500])] * len(items)
            inference += time.perf_counter() - began
            fresh.update((key, lab) for (key, _), lab in zip(items, labels, strict=True))
        if todo:
            self.metrics.inference_seconds.observe(inference)
            await self.cache.put_many([(k, fresh[k]) for k in todo if isinstance(fresh.get(k), Labels)])
        return inference

    async def process(self, batch: Sequence[Incoming]) -> BatchResult:
        """Everything to publish for one consumed micro-batch; every input yields exactly one record."""
        began = time.perf_counter()
        self.metrics.batch_size.observe(len(batch))
        requests: list[LabelRequest] = []
        dead: list[Publish] = []
        for message in batch:
            self.metrics.messages_in.labels(message.source.topic).inc()
            try:
                requests.append(self.parse(message))
            except RecordError as exc:
                dead.append(self.dead_letter(message, exc.reason, exc.detail))
        labels, cached, inference = await self.label(requests) if requests else ([], [], 0.0)
        total_ms = (time.perf_counter() - began) * 1000
        outputs = []
        for request, lab, hit in zip(requests, labels, cached, strict=True):
            if isinstance(lab, RecordError):
                message = next(m for m in batch if m.source == request.source)
                dead.append(self.dead_letter(message, lab.reason, lab.detail))
                continue
            record = OutputRecord(
                id=request.id,
                source=request.source,
                profile=request.profile,
                labels=lab,
                cached=hit,
                model_name=self.model.name,
                model_version=self.model.version,
                timings_ms={"inference": inference * 1000, "batch": total_ms},
            )
            topic = self.output_topic.format(topic=request.source.topic, profile=request.profile)
            outputs.append(Publish(topic, request.key, record.to_json(), request.source))
            self.metrics.labelled.labels(request.profile).inc()
            if lab.truncated:
                self.metrics.truncated.inc()
        return BatchResult(outputs, dead)

    def dead_letter(self, message: Incoming, reason: str, detail: str) -> Publish:
        self.metrics.dead_letters.labels(reason).inc()
        record = DeadLetter(reason, detail, message.source, message.key, message.value)
        return Publish(self.dlq_topic, message.key, record.to_json(), message.source)

    async def close(self) -> None:
        self._executor.shutdown(wait=True)
        await self.cache.close()
