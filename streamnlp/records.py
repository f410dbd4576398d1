"""The records the worker reads and writes, and the pure functions that turn bytes into them.

The JSON layouts are described by the schemas in ``schemas/``; tests validate every output against them.
Parsing never raises anything but :class:`RecordError`, whose ``reason`` is a short stable code that the
dead-letter record and the metrics carry.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from ._errors import RecordError

SCHEMA_VERSION = 1
_UTF8_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class Source:
    """Where a record was read from: enough to find the original message again."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Incoming:
    """One consumed Kafka message, still as bytes."""

    source: Source
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True, slots=True)
class LabelRequest:
    """A parsed, valid input: the text to label and how."""

    id: str
    text: str
    profile: str
    source: Source
    key: bytes | None


@dataclass(frozen=True, slots=True)
class Label:
    label: str
    score: float


@dataclass(frozen=True, slots=True)
class Labels:
    """What the model says about one text: a label per head, and whether the text was cut to fit."""

    heads: dict[str, Label]
    truncated: bool

    def to_cache(self) -> bytes:
        return orjson.dumps(
            {"h": {n: [v.label, v.score] for n, v in self.heads.items()}, "t": self.truncated}
        )

    @classmethod
    def from_cache(cls, raw: bytes) -> Labels:
        data = orjson.loads(raw)
        return cls({n: Label(v[0], float(v[1])) for n, v in data["h"].items()}, bool(data["t"]))


@dataclass(frozen=True, slots=True)
class OutputRecord:
    """The labelled record published for one input (see ``schemas/output.schema.json``)."""

    id: str
    source: Source
    profile: str
    labels: Labels
    cached: bool
    model_name: str
    model_version: str
    timings_ms: Mapping[str, float] = field(default_factory=dict)

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "schema_version": SCHEMA_VERSION,
                "id": self.id,
                "source": _source_json(self.source),
                "profile": self.profile,
                "labels": {
                    n: {"label": v.label, "score": round(v.score, 6)} for n, v in self.labels.heads.items()
                },
                "truncated": self.labels.truncated,
                "cached": self.cached,
                "model": {"name": self.model_name, "version": self.model_version},
                "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()},
                "labelled_at_ms": int(time.time() * 1000),
            }
        )


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An input that could not be labelled, with the reason and its original bytes (base64)."""

    reason: str
    detail: str
    source: Source
    key: bytes | None
    value: bytes | None

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "schema_version": SCHEMA_VERSION,
                "reason": self.reason,
                "detail": self.detail,
                "source": _source_json(self.source),
                "key_b64": None if self.key is None else base64.b64encode(self.key).decode(),
                "value_b64": None if self.value is None else base64.b64encode(self.value).decode(),
                "value_bytes": None if self.value is None else len(self.value),
                "failed_at_ms": int(time.time() * 1000),
            }
        )


def _source_json(source: Source) -> dict[str, Any]:
    return {
        "topic": source.topic,
        "partition": source.partition,
        "offset": source.offset,
        "timestamp_ms": source.timestamp_ms,
    }


def _lookup(document: Any, path: str) -> Any:
    """The value at dotted ``path`` in a JSON document, or a RecordError naming the missing part."""
    value = document
    for part in path.split("."):
        if not isinstance(value, dict):
            raise RecordError("wrong_type", f"{path!r}: expected an object at {part!r}")
        if part not in value:
            raise RecordError("missing_field", f"field {path!r} is missing")
        value = value[part]
    return value


def parse_input(
    message: Incoming,
    *,
    profile: str,
    known_profiles: Mapping[str, object],
    text_field: str = "text",
    id_field: str = "id",
    max_value_bytes: int = 16 * 1024 * 1024,
) -> LabelRequest:
    """Turn one consumed message into a :class:`LabelRequest`, or raise :class:`RecordError`.

    With ``text_field`` empty the whole value is the text. A JSON value may carry ``profile`` to override
    the topic's profile for that message.
    """
    value = message.value
    if value is None:
        raise RecordError("null_value", "the message has no value (tombstone)")
    if len(value) > max_value_bytes:
        raise RecordError("value_too_large", f"{len(value)} bytes > limit of {max_value_bytes}")
    fallback_id = f"{message.source.topic}:{message.source.partition}:{message.source.offset}"
    value = value.removeprefix(_UTF8_BOM)  # some producers write one; it is not part of the data
    if not text_field:
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RecordError(
                "invalid_utf8", f"value is not UTF-8: {exc.reason} at byte {exc.start}"
            ) from None
        return _request(fallback_id, text, profile, message)
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        try:
            value.decode("utf-8")
        except UnicodeDecodeError as utf:
            raise RecordError(
                "invalid_utf8", f"value is not UTF-8: {utf.reason} at byte {utf.start}"
            ) from None
        raise RecordError("invalid_json", f"value is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise RecordError("wrong_type", f"expected a JSON object, got {type(document).__name__}")
    text = _lookup(document, text_field)
    if not isinstance(text, str):
        raise RecordError("wrong_type", f"field {text_field!r} must be a string, got {_json_type(text)}")
    record_id = fallback_id
    if id_field:
        try:
            raw_id = _lookup(document, id_field)
        except RecordError:
            raw_id = None
        if isinstance(raw_id, bool) or not isinstance(raw_id, str | int | type(None)):
            raise RecordError("wrong_type", f"field {id_field!r} must be a string or integer")
        if raw_id is not None and str(raw_id):
            record_id = str(raw_id)
    override = document.get("profile")
    if override is not None:
        if not isinstance(override, str) or override not in known_profiles:
            raise RecordError(
                "unknown_profile", f"profile {override!r} is not one of {sorted(known_profiles)}"
            )
        profile = override
    return _request(record_id, text, profile, message)


def _request(record_id: str, text: str, profile: str, message: Incoming) -> LabelRequest:
    if not text.strip():
        raise RecordError("empty_text", "the text is empty or only whitespace")
    return LabelRequest(record_id, text, profile, message.source, message.key)


def _json_type(value: Any) -> str:
    return {dict: "object", list: "array", bool: "boolean", int: "number", float: "number"}.get(
        type(value), "null" if value is None else type(value).__name__
    )
