"""Natural batching of consumed messages: a batch starts as soon as one may, with all that has arrived.

There is no timer. When a message arrives and fewer than ``in_flight`` batches are under way, a batch
starts at the end of that turn of the event loop with every message waiting (all that the consumer had
already fetched), up to ``max_size``; when a batch finishes, the next one takes
everything that arrived meanwhile. So an idle worker labels a lone message immediately, and a busy one
forms larger batches exactly as fast as messages queue up: the batch size follows the load, and a
message waits at most for the batches ahead of it, never for company. The model behind the batches does
the same with the texts the cache does not know (``streamnlp.labeller``).

This knows nothing of Kafka: the Faust agent puts consumed events in and publishes in ``handle``.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Arrival(Generic[T]):
    item: T
    at: float  # time.perf_counter() when it arrived


class NaturalBatcher(Generic[T]):
    """Runs ``handle`` on batches of arrivals, at most ``in_flight`` at once, each of at most ``max_size``.

    ``put`` waits while a full batch is already waiting, so the consumer is held back (and Kafka keeps
    the rest) instead of a queue growing here. The first exception a batch raises is raised again by the
    next ``put`` and by ``drain``: a failed batch is never acknowledged, the caller decides what happens.
    """

    def __init__(
        self, handle: Callable[[list[Arrival[T]]], Awaitable[None]], *, max_size: int, in_flight: int
    ) -> None:
        self.handle = handle
        self.max_size = max(1, max_size)
        self.in_flight = max(1, in_flight)
        self._arrivals: deque[Arrival[T]] = deque()
        self._running: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()  # a batch finished or failed: room may have been made
        self._failure: BaseException | None = None
        self._start_pending = False  # a start is scheduled for the end of this loop turn

    @property
    def waiting(self) -> int:
        """Messages arrived but not yet in a batch."""
        return len(self._arrivals)

    @property
    def running(self) -> int:
        """Batches under way."""
        return len(self._running)

    async def put(self, item: T) -> None:
        """Hand over one arrival; it joins the next batch to start (at once if a slot is free)."""
        while self._failure is None and len(self._arrivals) >= self.max_size:
            self._changed.clear()
            await self._changed.wait()
        self._raise_failure()
        self._arrivals.append(Arrival(item, time.perf_counter()))
        if len(self._arrivals) >= self.max_size:
            self._start_batches()
        elif not self._start_pending:
            # Start after this turn of the event loop, not at once: the consumer hands over, without
            # waiting, every message it has already fetched, and they all belong in this batch.
            self._start_pending = True
            asyncio.get_running_loop().call_soon(self._start_soon)

    async def drain(self) -> None:
        """Wait until every arrival has been handled."""
        while self._failure is None and (self._arrivals or self._running):
            self._changed.clear()
            await self._changed.wait()
        self._raise_failure()

    def cancel(self) -> None:
        """Cancel the batches under way (their messages are not acknowledged, so they are read again)."""
        for task in self._running:
            task.cancel()

    def _start_soon(self) -> None:
        self._start_pending = False
        self._start_batches()

    def _start_batches(self) -> None:
        while self._arrivals and len(self._running) < self.in_flight and self._failure is None:
            count = min(len(self._arrivals), self.max_size)
            batch = [self._arrivals.popleft() for _ in range(count)]
            task = asyncio.get_running_loop().create_task(self.handle(batch))
            self._running.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None and self._failure is None:
            self._failure = exc
        self._start_batches()
        self._changed.set()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure
