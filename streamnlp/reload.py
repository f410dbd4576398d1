"""Model hot reload: which model labels a message, and how a new version replaces the old one.

A :class:`ModelSlot` holds the loaded models by *generation*: each successful reload is a new
generation. A message is labelled by the generation that was current when it was consumed, so within
an input partition every message before the switch point has the old version and every message after
it the new one (several batches of a partition can be in flight at once, and the messages of two batches
interleave). The previous generation is dropped once no consumed message needs it.

The :class:`Reloader` notices a new version (SIGHUP, or a change of the manifest under
``STREAMNLP_MODEL_PATH``, symlink flips included), loads and checks it in a thread, off the event loop,
and installs it only if it passed. A refused model changes nothing but a log line (once per directory
state) and ``streamnlp_model_reload_failures_total``. Nothing here knows of Kafka.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from ._errors import ModelError
from .labeller import Model
from .metrics import Metrics
from .model.manifest import MANIFEST

log = logging.getLogger(__name__)


class ModelSlot:
    """The current model and the ones consumed-but-unlabelled messages still need."""

    def __init__(self, model: Model, metrics: Metrics | None = None) -> None:
        self.generation = 0
        self._models: dict[int, Model] = {0: model}
        self._holding: Counter[int] = Counter()  # generation -> messages stamped, not yet released
        self._metrics = metrics
        self._show(None, model)

    @property
    def current(self) -> Model:
        return self._models[self.generation]

    def stamp(self) -> int:
        """A message was consumed: it will be labelled by the current generation."""
        self._holding[self.generation] += 1
        return self.generation

    def model(self, generation: int) -> Model:
        """The model of ``generation``; the current one if it is gone (its messages were revoked)."""
        return self._models.get(generation, self.current)

    def release(self, generation: int, count: int = 1) -> None:
        """``count`` messages of ``generation`` are labelled (or abandoned)."""
        self._holding[generation] -= count
        if self._holding[generation] <= 0:
            del self._holding[generation]
        self._prune()

    def forget_stamps(self) -> None:
        """Partitions were revoked: their buffered messages will be consumed again, with new stamps."""
        self._holding.clear()
        self._prune()

    def install(self, model: Model) -> int:
        """Make ``model`` current for every message consumed from now on; its generation."""
        old = self.current
        self.generation += 1
        self._models[self.generation] = model
        self._prune()
        self._show(old, model)
        return self.generation

    def _prune(self) -> None:
        for generation in [g for g in self._models if g != self.generation and g not in self._holding]:
            model = self._models.pop(generation)
            if all(model is not kept for kept in self._models.values()):
                _close(model)

    def close(self) -> None:
        """Stop every model held (a model in a process of its own stops its process)."""
        for model in self._models.values():
            _close(model)

    def _show(self, old: Model | None, new: Model) -> None:
        if self._metrics is None:
            return
        if old is not None and (old.name, old.version) != (new.name, new.version):
            self._metrics.model_loaded.remove(old.name, old.version)
        self._metrics.model_loaded.labels(new.name, new.version).set(1)


def _close(model: Model) -> None:
    # Only a model with something to release has close() (streamnlp.model.isolated.ProcessModel).
    close = getattr(model, "close", None)
    if close is not None:
        close()


def fingerprint(path: Path) -> tuple[str, int, int, int] | None:
    """What changes when a new version lands at ``path``: the resolved directory (a symlink flip) and
    its manifest's identity and mtime (a version written in place). None when there is no manifest."""
    try:
        real = os.path.realpath(path)
        stat = os.stat(os.path.join(real, MANIFEST))
    except OSError:
        return None
    return real, stat.st_ino, stat.st_mtime_ns, stat.st_size


class Reloader:
    """Loads a new model version into a slot when asked (SIGHUP) or when the directory changes."""

    def __init__(
        self,
        slot: ModelSlot,
        path: Path,
        load: Callable[[Path], Model],
        metrics: Metrics,
    ) -> None:
        self.slot = slot
        self.path = path
        self._load = load  # blocking: loads and checks (see streamnlp.model.check.load_checked)
        self._metrics = metrics
        self._seen = fingerprint(path)
        self._lock = asyncio.Lock()

    async def poll(self) -> bool:
        """Reload if the directory changed since the last look; whether a new model was installed."""
        if fingerprint(self.path) == self._seen:
            return False
        return await self.reload()

    async def reload(self, *, forced: bool = False) -> bool:
        """Load, check and install the model at ``path``; on failure keep the current one."""
        async with self._lock:
            state = fingerprint(self.path)
            if state == self._seen and not forced:
                return False
            try:
                model = await asyncio.to_thread(self._load, self.path)
            except ModelError as exc:
                self._metrics.model_reload_failures.inc()
                if state != self._seen or forced:
                    log.error(
                        "refused the model at %s; version %s keeps serving: %s",
                        self.path,
                        self.slot.current.version,
                        exc,
                    )
                self._seen = state
                return False
            self._seen = state
            old = self.slot.current
            generation = self.slot.install(model)
            self._metrics.model_reloads.inc()
            log.warning(
                "model %s %s replaces %s from the next consumed message on (generation %d)",
                model.name,
                model.version,
                old.version,
                generation,
            )
            return True
