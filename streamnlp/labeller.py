"""Labels for texts: the cache first, then the model, which batches for itself.

The labeller knows nothing of Kafka: it takes (model, profile, text) jobs and answers each with labels
or a failure. Texts the cache does not know go into one queue in front of the model; whenever the model
is free it takes everything queued, up to ``max_batch`` texts, whichever batch of messages asked for them
(natural batching: no timer, so an idle model starts at once, and a busy one gets a bigger batch next).
A text already queued or in the model is waited for, not labelled again; a failed model call is retried
one text at a time, so one poison text cannot stall a partition. Inference is called from one worker
thread, off the event loop, one call at a time (the model itself may live in a process of its own:
``streamnlp.model.isolated``). That thread takes the next batch itself as soon as a call returns and hands
the answers to the event loop: a saturated model never idles while the loop, busy with Faust, gets round
to handing it more work (measured: the model process idled 6% of the time when the loop formed batches).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
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


Result = Labels | RecordError


@dataclass(frozen=True, slots=True)
class Outcome:
    """Labels or the reason there are none. ``cached``: no model call was made for this job (a cache hit,
    or a text another job had already asked the model for); ``model_wait``: seconds its text waited in the
    queue for the model; ``inference``: seconds of the model call that labelled it (both 0 when cached)."""

    labels: Result
    cached: bool
    model_wait: float = 0.0
    inference: float = 0.0


@dataclass(frozen=True, slots=True)
class _Answer:
    result: Result
    model_wait: float
    inference: float


@dataclass(slots=True)
class _Queued:
    job: Job
    future: asyncio.Future[_Answer]
    since: float  # perf_counter when it was queued


class Labeller:
    def __init__(
        self,
        cache: LabelCache,
        profiles: Mapping[str, Sequence[str]],
        metrics: Metrics | None = None,
        *,
        max_batch: int = 32,
    ) -> None:
        """``max_batch``: the most texts in one model call (STREAMNLP_BATCH_MAX_SIZE)."""
        self.cache = cache
        self.profiles = {p: tuple(h) for p, h in profiles.items()}
        self.metrics = metrics or Metrics()
        self.max_batch = max(1, max_batch)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        # The queue is filled by the event loop and drained by the inference thread: both under _lock.
        self._lock = threading.Lock()
        self._queue: OrderedDict[str, _Queued] = OrderedDict()  # cache key -> text waiting for the model
        self._in_model: dict[str, _Queued] = {}  # cache key -> text taken by the model, not yet answered
        self._draining = False  # the inference thread is taking work (started and stopped under _lock)
        self._drain: asyncio.Future[None] | None = None  # that thread's run, for close() to wait on
        self._writes: set[asyncio.Task[None]] = set()  # Redis writes under way

    async def label(self, jobs: Sequence[Job]) -> tuple[list[Outcome], float]:
        """An outcome per job, in order, and the seconds the cache lookup took.

        The cache is asked once for the whole batch; each distinct miss goes through the model once, also
        across the batches in flight.
        """
        began = time.perf_counter()
        keys = [self.cache.key(j.model.version, j.profile, j.text) for j in jobs]
        cached: list[Labels | None] = list(await self.cache.get_many(keys))
        lookup = time.perf_counter() - began
        waiting: dict[str, asyncio.Future[_Answer]] = {}
        mine: set[str] = set()  # keys this call put in the queue: the model call is made for these jobs
        loop = asyncio.get_running_loop()
        with self._lock:
            for key, hit, job in zip(keys, cached, jobs, strict=True):
                if hit is not None or key in waiting:
                    continue
                if (queued := self._queue.get(key) or self._in_model.get(key)) is not None:
                    waiting[key] = queued.future
                else:
                    queued = _Queued(job, loop.create_future(), time.perf_counter())
                    self._queue[key] = queued
                    waiting[key] = queued.future
                    mine.add(key)
            start = bool(mine) and not self._draining
            self._draining = self._draining or start
        if start:
            self._drain = asyncio.wrap_future(self._executor.submit(self._run, loop))
        if waiting:
            # asyncio.wait, not await: a cancelled caller must not cancel a future other batches share.
            await asyncio.wait(waiting.values())
        answers = {key: future.result() for key, future in waiting.items()}
        misses = sum(1 for key in keys if key in mine)
        self.metrics.cache_hits.inc(len(jobs) - misses)
        self.metrics.cache_misses.inc(misses)
        outcomes: list[Outcome] = []
        for key, hit in zip(keys, cached, strict=True):
            if hit is not None:
                outcomes.append(Outcome(hit, True))
            elif key in mine:
                answer = answers[key]
                outcomes.append(Outcome(answer.result, False, answer.model_wait, answer.inference))
            else:
                outcomes.append(Outcome(answers[key].result, True))
        return outcomes, lookup

    def _take(self) -> dict[str, _Queued]:
        """The next model call's texts: everything queued, up to ``max_batch`` (empty when none is)."""
        with self._lock:
            taken: dict[str, _Queued] = {}
            while self._queue and len(taken) < self.max_batch:
                key, queued = self._queue.popitem(last=False)
                taken[key] = queued
            self._in_model.update(taken)  # still shared with new askers until they are answered
            self._draining = bool(taken)  # stopping here, under the lock, so no queued text is stranded
            return taken

    def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        """In the inference thread: whenever the model is free, give it everything queued, up to
        ``max_batch`` texts; hand each call's answers to the event loop and go straight on."""
        while taken := self._take():
            began = time.perf_counter()
            try:
                results: dict[str, Result] | BaseException = self._label_fresh(taken)
            except Exception as exc:  # not a model failure (those are results): a bug; fail its askers
                log.exception("labelling failed")
                results = exc
            inference = time.perf_counter() - began
            try:
                loop.call_soon_threadsafe(self._answer, taken, results, began, inference)
            except RuntimeError:  # the loop is closed: nobody is left to answer
                return

    def _answer(
        self,
        taken: Mapping[str, _Queued],
        results: Mapping[str, Result] | BaseException,
        began: float,
        inference: float,
    ) -> None:
        """On the event loop: answer the askers of one model call and write its labels to the cache."""
        with self._lock:
            for key in taken:
                self._in_model.pop(key, None)
        if isinstance(results, BaseException):
            for queued in taken.values():
                queued.future.set_exception(results)
            return
        labelled = [(key, r) for key, r in results.items() if isinstance(r, Labels)]
        for key, labels in labelled:
            self.cache.lru.put(key, labels)  # before anyone is answered, so a later lookup hits
        for key, queued in taken.items():
            queued.future.set_result(_Answer(results[key], began - queued.since, inference))
        if labelled:  # Redis is written in the background, never in the model's way
            write = asyncio.get_running_loop().create_task(self.cache.put_many(labelled))
            self._writes.add(write)
            write.add_done_callback(self._writes.discard)

    def _label_fresh(self, todo: Mapping[str, _Queued]) -> dict[str, Result]:
        """Run ``todo`` through the model, one call per model and head set."""
        fresh: dict[str, Result] = {}
        groups: dict[tuple[int, tuple[str, ...]], list[tuple[str, Job]]] = {}
        for key, queued in todo.items():
            job = queued.job
            groups.setdefault((id(job.model), self.profiles[job.profile]), []).append((key, job))
        began = time.perf_counter()
        for (_, heads), items in groups.items():
            labels = self._run_model(items[0][1].model, [j.text for _, j in items], heads)
            fresh.update((key, lab) for (key, _), lab in zip(items, labels, strict=True))
        self.metrics.inference_seconds.observe(time.perf_counter() - began)
        self.metrics.model_batch_size.observe(len(todo))
        return fresh

    def _run_model(self, model: Model, texts: list[str], heads: tuple[str, ...]) -> list[Result]:
        """The model's labels for ``texts``; a text the model fails on gets a RecordError, not the batch."""
        self.metrics.model_texts.inc(len(texts))
        try:
            return list(_predict(model, texts, heads))
        except ModelError as exc:
            if len(texts) == 1:
                return [_model_failure(exc)]
        results: list[Result] = []
        for text in texts:
            try:
                results.extend(_predict(model, [text], heads))
            except ModelError as exc:
                results.append(_model_failure(exc))
        return results

    async def close(self) -> None:
        if self._drain is not None and not self._drain.done():
            await asyncio.wait([self._drain])
        if self._writes:
            await asyncio.wait(list(self._writes))
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
