"""Labels for texts: the cache first, then one model call per distinct text, shared across batches.

The labeller knows nothing of Kafka: it takes (model, profile, text) jobs and answers each with labels
or a failure. A text that another batch is labelling right now is waited for, not labelled again; a
failed model call is retried one text at a time, so one poison text cannot stall a partition.
Inference runs in one worker thread, off the event loop, one call at a time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from ._errors import ModelError, RecordError
from .cache import LabelCache
from .metrics import Metrics
from .model.labels import Labels

log = logging.getLogger(__name__)

# A text longer than this many characters per token its heads read cannot be read whole anyway: it is cut
# before tokenizing, so a megabyte of text costs no more than a page.
_CHARS_PER_TOKEN_BOUND = 64


class Model(Protocol):
    """What the labeller needs of a model (``streamnlp.model.runtime.LabelModel`` is one). ``predict``
    raises only :class:`ModelError`."""

    name: str
    version: str
    heads: Mapping[str, Sequence[str]]

    def tokens_read(self, heads: Sequence[str]) -> int: ...

    def predict(self, texts: Sequence[str], heads: Sequence[str] | None = None) -> Sequence[Labels]: ...


@dataclass(frozen=True, slots=True)
class Job:
    model: Model
    profile: str
    text: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """Labels or the reason there are none; ``cached``: no model call was made for this job."""

    labels: Labels | RecordError
    cached: bool


Result = Labels | RecordError


class Labeller:
    def __init__(
        self, cache: LabelCache, profiles: Mapping[str, Sequence[str]], metrics: Metrics | None = None
    ) -> None:
        self.cache = cache
        self.profiles = {p: tuple(h) for p, h in profiles.items()}
        self.metrics = metrics or Metrics()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        self._labelling: dict[str, asyncio.Future[Result | None]] = {}  # cache key -> result

    async def label(self, jobs: Sequence[Job]) -> tuple[list[Outcome], float]:
        """An outcome per job, in order, and the seconds spent in the model.

        The cache is asked once for the whole batch; each distinct miss goes through the model once, also
        across the batches in flight.
        """
        keys = [self.cache.key(j.model.version, j.profile, j.text) for j in jobs]
        cached: list[Result | None] = list(await self.cache.get_many(keys))
        todo: dict[str, Job] = {}
        elsewhere: dict[str, tuple[asyncio.Future[Result | None], Job]] = {}
        for key, hit, job in zip(keys, cached, jobs, strict=True):
            if hit is None and key not in todo and key not in elsewhere:
                if key in self._labelling:
                    elsewhere[key] = (self._labelling[key], job)
                else:
                    todo[key] = job
        loop = asyncio.get_running_loop()
        mine = {key: loop.create_future() for key in todo}
        self._labelling.update(mine)
        fresh: dict[str, Result] = {}
        try:
            inference = await self._label_fresh(todo, fresh)
        finally:
            for key, future in mine.items():  # waiters get None (label it yourself) if this batch failed
                del self._labelling[key]
                future.set_result(fresh.get(key))
        unanswered: dict[str, Job] = {}  # their batch failed or was cancelled: label them here
        for key, (future, job) in elsewhere.items():
            if (shared := await future) is not None:
                fresh[key] = shared
            else:
                unanswered[key] = job
        inference += await self._label_fresh(unanswered, fresh)
        from_model = {*todo, *unanswered}
        hits = sum(1 for key in keys if key not in from_model)
        self.metrics.cache_hits.inc(hits)
        self.metrics.cache_misses.inc(len(jobs) - hits)
        outcomes = [
            Outcome(hit if hit is not None else fresh[key], key not in from_model)
            for key, hit in zip(keys, cached, strict=True)
        ]
        return outcomes, inference

    async def _label_fresh(self, todo: Mapping[str, Job], fresh: dict[str, Result]) -> float:
        """Run ``todo`` through the model (one call per model and head set), store into ``fresh`` and
        the cache."""
        inference = 0.0
        groups: dict[tuple[int, tuple[str, ...]], list[tuple[str, Job]]] = {}
        for key, job in todo.items():
            groups.setdefault((id(job.model), self.profiles[job.profile]), []).append((key, job))
        for (_, heads), items in groups.items():
            began = time.perf_counter()
            labels = await self._run_model(items[0][1].model, [j.text for _, j in items], heads)
            inference += time.perf_counter() - began
            fresh.update((key, lab) for (key, _), lab in zip(items, labels, strict=True))
        if todo:
            self.metrics.inference_seconds.observe(inference)
            await self.cache.put_many([(k, fresh[k]) for k in todo if isinstance(fresh.get(k), Labels)])
        return inference

    async def _run_model(self, model: Model, texts: list[str], heads: tuple[str, ...]) -> list[Result]:
        """The model's labels for ``texts``; a text the model fails on gets a RecordError, not the batch."""
        loop = asyncio.get_running_loop()
        self.metrics.model_texts.inc(len(texts))
        try:
            return list(await loop.run_in_executor(self._executor, _predict, model, texts, heads))
        except ModelError as exc:
            if len(texts) == 1:
                return [_model_failure(exc)]
        results: list[Result] = []
        for text in texts:
            try:
                results.extend(await loop.run_in_executor(self._executor, _predict, model, [text], heads))
            except ModelError as exc:
                results.append(_model_failure(exc))
        return results

    async def close(self) -> None:
        self._executor.shutdown(wait=True)
        await self.cache.close()


def _predict(model: Model, texts: list[str], heads: tuple[str, ...]) -> list[Labels]:
    """In the inference thread: texts cut to what the heads can read, labels flagged when cut."""
    limit = model.tokens_read(heads) * _CHARS_PER_TOKEN_BOUND
    labels = model.predict([t[:limit] for t in texts], heads)
    return [
        lab if len(t) <= limit or lab.truncated else Labels(lab.heads, True)
        for lab, t in zip(labels, texts, strict=True)
    ]


def _model_failure(exc: ModelError) -> RecordError:
    log.error("the model failed on one text (%s); it goes to the dead-letter topic", type(exc).__name__)
    return RecordError("model_error", str(exc)[:500])
