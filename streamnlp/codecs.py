"""Bytes in, bytes out: input codecs decode a consumed value into a :class:`Request`; the output codec
encodes labelled records and dead letters.

The input format is a setting (``STREAMNLP_INPUT_FORMAT``): ``json`` finds the text at a dotted field
path, ``text`` takes the whole value as UTF-8 text. A new format (Avro, Protobuf) is one more class with
a ``decode`` method and one more name in :data:`INPUT_FORMATS`. The JSON layouts of the outputs are
described by the schemas in ``schemas/``; tests validate every output against them.

Decoding never raises anything but :class:`RecordError`, whose ``reason`` is a short stable code that the
dead-letter record and the metrics carry; its detail never quotes the text.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import click
import orjson

from ._errors import RecordError
from .envelope import Envelope, Request, Source
from .model.labels import Labels

SCHEMA_VERSION = 1
_UTF8_BOM = b"\xef\xbb\xbf"

InputFormat = Literal["json", "text"]


class InputCodec(Protocol):
    """Turns one value (never None, within the size limit, BOM removed) into a request."""

    def decode(self, value: bytes, source: Source, profile: str) -> Request: ...


def _utf8(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecordError("invalid_utf8", f"value is not UTF-8: {exc.reason} at byte {exc.start}") from None


def _request(record_id: str, text: str, profile: str) -> Request:
    if not text.strip():
        raise RecordError("empty_text", "the text is empty or only whitespace")
    return Request(record_id, text, profile)


@dataclass(frozen=True, slots=True)
class TextInput:
    """The whole value is the text; the id is the record's position."""

    def decode(self, value: bytes, source: Source, profile: str) -> Request:
        return _request(source.fallback_id, _utf8(value), profile)


@dataclass(frozen=True, slots=True)
class JsonInput:
    """A JSON object with the text at ``text_field`` and, optionally, an id at ``id_field``; a
    ``profile`` member may choose another known profile for that message."""

    text_field: str
    id_field: str
    known_profiles: Collection[str]

    def decode(self, value: bytes, source: Source, profile: str) -> Request:
        try:
            document = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            _utf8(value)  # bytes that are not UTF-8 say so, rather than "not JSON"
            raise RecordError("invalid_json", f"value is not JSON: {exc}") from None
        if not isinstance(document, dict):
            raise RecordError("wrong_type", f"expected a JSON object, got {_json_type(document)}")
        text = _lookup(document, self.text_field)
        if not isinstance(text, str):
            raise RecordError(
                "wrong_type", f"field {self.text_field!r} must be a string, got {_json_type(text)}"
            )
        record_id = source.fallback_id
        if self.id_field:
            try:
                raw_id = _lookup(document, self.id_field)
            except RecordError:
                raw_id = None
            if isinstance(raw_id, bool) or not isinstance(raw_id, str | int | type(None)):
                raise RecordError("wrong_type", f"field {self.id_field!r} must be a string or integer")
            if raw_id is not None and str(raw_id):
                record_id = str(raw_id)
        override = document.get("profile")
        if override is not None:
            if not isinstance(override, str) or override not in self.known_profiles:
                raise RecordError(
                    "unknown_profile", f"profile {override!r} is not one of {sorted(self.known_profiles)}"
                )
            profile = override
        return _request(record_id, text, profile)


INPUT_FORMATS: Mapping[str, str] = {
    "json": "a JSON object; the text at STREAMNLP_TEXT_FIELD, the id at STREAMNLP_ID_FIELD",
    "text": "the whole value is the text (UTF-8); the id is topic:partition:offset",
}


def input_codec(
    fmt: InputFormat, *, text_field: str, id_field: str, known_profiles: Collection[str]
) -> InputCodec:
    """The codec of an input format name (see :data:`INPUT_FORMATS`)."""
    if fmt == "text":
        return TextInput()
    return JsonInput(text_field, id_field, frozenset(known_profiles))


def decode(codec: InputCodec, envelope: Envelope, profile: str, *, max_value_bytes: int) -> None:
    """Give ``envelope`` its request, or its failure: checks every format shares, then the codec's."""
    value = envelope.value
    try:
        if value is None:
            raise RecordError("null_value", "the message has no value (tombstone)")
        if len(value) > max_value_bytes:
            raise RecordError("value_too_large", f"{len(value)} bytes > limit of {max_value_bytes}")
        # Some producers write a byte-order mark; it is not part of the data.
        envelope.request = codec.decode(value.removeprefix(_UTF8_BOM), envelope.source, profile)
    except RecordError as exc:
        envelope.fail(exc)


def _lookup(document: Any, path: str) -> Any:
    """The value at dotted ``path`` in a JSON document, or a RecordError naming the missing part."""
    value = document
    walked: list[str] = []
    for part in path.split("."):
        if not isinstance(value, dict):  # the document itself is an object: `walked` is not empty
            where = ".".join(walked)
            raise RecordError(
                "wrong_type", f"{path!r}: expected an object at {where!r}, got {_json_type(value)}"
            )
        if part not in value:
            if not walked:
                raise RecordError("missing_field", f"field {path!r} is missing")
            where = ".".join(walked)
            raise RecordError("missing_field", f"field {path!r} is missing: {where!r} has no key {part!r}")
        value = value[part]
        walked.append(part)
    return value


def _json_type(value: Any) -> str:
    kinds = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return kinds.get(type(value), "null" if value is None else type(value).__name__)


def _source_json(source: Source) -> dict[str, Any]:
    return {
        "topic": source.topic,
        "partition": source.partition,
        "offset": source.offset,
        "timestamp_ms": source.timestamp_ms,
    }


def labels_json(labels: Labels) -> dict[str, dict[str, object]]:
    return {n: {"label": v.label, "score": round(v.score, 6)} for n, v in labels.heads.items()}


def encode_output(envelope: Envelope, timings_ms: Mapping[str, float]) -> bytes:
    """The labelled record of a labelled envelope (see ``schemas/output.schema.json``)."""
    request, labels, model = envelope.request, envelope.labels, envelope.model
    assert request is not None and labels is not None and model is not None
    return orjson.dumps(
        {
            "schema_version": SCHEMA_VERSION,
            "id": request.id,
            "source": _source_json(envelope.source),
            "profile": request.profile,
            "labels": labels_json(labels),
            "truncated": labels.truncated,
            "cached": envelope.cached,
            "model": {"name": model.name, "version": model.version},
            "timings_ms": {k: round(v, 3) for k, v in timings_ms.items()},
            "labelled_at_ms": int(time.time() * 1000),
        }
    )


def encode_dead_letter(envelope: Envelope) -> bytes:
    """The dead letter of a failed envelope: reason, detail and the original bytes (base64)."""
    failure, key, value = envelope.failure, envelope.key, envelope.value
    assert failure is not None
    return orjson.dumps(
        {
            "schema_version": SCHEMA_VERSION,
            "reason": failure.reason,
            "detail": failure.detail,
            "source": _source_json(envelope.source),
            "key_b64": None if key is None else base64.b64encode(key).decode(),
            "value_b64": None if value is None else base64.b64encode(value).decode(),
            "value_bytes": None if value is None else len(value),
            "failed_at_ms": int(time.time() * 1000),
        }
    )


def render_record(record: Mapping[str, Any], text: str) -> str:
    """The readable one-line form of an output record (``streamnlp tag --format text``, the demo):
    sentiment, the first intent head, then the text. Coloured only on a terminal (click strips it)."""
    labels = record["labels"]
    sentiment = labels.get("sentiment")
    intent = next((v for k, v in labels.items() if k != "sentiment"), None)
    parts = []
    if sentiment is not None:
        colour = {"negative": "red", "neutral": "yellow", "positive": "green"}.get(
            sentiment["label"], "white"
        )
        parts.append(click.style(f"{sentiment['label']:<8} {sentiment['score']:.2f}", fg=colour))
    if intent is not None:
        parts.append(click.style(f"{intent['label']:<24} {intent['score']:.2f}", fg="cyan"))
    parts.append(("(cached) " if record["cached"] else "") + " ".join(text.split()))
    return "  ".join(parts)


def render_line(envelope: Envelope) -> str:
    """:func:`render_record` of a labelled envelope."""
    assert envelope.request is not None and envelope.labels is not None
    record = {"labels": labels_json(envelope.labels), "cached": envelope.cached}
    return render_record(record, envelope.request.text)
