"""The one carrier of a message, from the bytes consumed to the record published for it.

An :class:`Envelope` is made for each consumed record and filled in stage by stage: the input codec
decodes it into a :class:`Request` (or a ``failure``), the labeller adds ``labels``, the output codec
adds the :class:`Output` to publish. Whatever goes wrong, it ends with exactly one output: a labelled
record or a dead letter, both built from the envelope itself, so nothing is looked up again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._errors import RecordError
from .model.labels import Labels

if TYPE_CHECKING:
    from .labeller import Model


@dataclass(frozen=True, slots=True)
class Source:
    """Where a record was read from: enough to find the original message again."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None = None

    @property
    def fallback_id(self) -> str:
        """The id of a record that carries none."""
        return f"{self.topic}:{self.partition}:{self.offset}"


@dataclass(frozen=True, slots=True)
class Request:
    """A decoded, valid input: the text to label and with which profile."""

    id: str
    text: str
    profile: str


@dataclass(frozen=True, slots=True)
class Output:
    """The record to publish for an envelope: a labelled record or a dead letter."""

    topic: str
    value: bytes
    dead: bool


@dataclass(slots=True)
class Envelope:
    """One consumed message and everything learnt about it on its way to the output topic."""

    source: Source
    key: bytes | None
    value: bytes | None
    generation: int = 0  # the model generation current when it was consumed (see streamnlp.reload)
    model: Model | None = None  # the model of that generation: the one that labels it
    queued: float = 0.0  # seconds from its consumption to the start of its batch
    request: Request | None = None
    labels: Labels | None = None
    cached: bool = False
    failure: RecordError | None = None
    output: Output | None = None

    def fail(self, error: RecordError) -> None:
        """Mark the message for the dead-letter topic (the first failure is the reason it keeps)."""
        if self.failure is None:
            self.failure = error

    @property
    def pending(self) -> bool:
        """Decoded, not failed, not yet labelled."""
        return self.request is not None and self.failure is None and self.labels is None
