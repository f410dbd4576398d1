"""Input codecs turn any bytes into a request or a RecordError with a stable reason, never a crash;
the output codec writes records that match their schemas."""

from __future__ import annotations

import json
from types import SimpleNamespace

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamnlp import RecordError
from streamnlp.cache import decode_labels, encode_labels
from streamnlp.codecs import JsonInput, TextInput, decode, encode_dead_letter, encode_output
from streamnlp.config import DEFAULT_PROFILES
from streamnlp.envelope import Envelope, Request, Source
from streamnlp.model.labels import Label, Labels
from tests.schemas import SCHEMAS, validate_deadletter, validate_input, validate_output

SOURCE = Source("chats", 2, 41, 1700000000000)
REASONS = set(json.loads((SCHEMAS / "deadletter.schema.json").read_text())["properties"]["reason"]["enum"])


def parse(
    value: bytes | None,
    *,
    fmt: str = "json",
    text_field: str = "text",
    id_field: str = "id",
    profile: str = "ecommerce",
    max_value_bytes: int = 16 << 20,
) -> Request:
    codec = TextInput() if fmt == "text" else JsonInput(text_field, id_field, frozenset(DEFAULT_PROFILES))
    envelope = Envelope(SOURCE, b"key", value)
    decode(codec, envelope, profile, max_value_bytes=max_value_bytes)
    if envelope.failure is not None:
        raise envelope.failure
    assert envelope.request is not None
    return envelope.request


def test_a_json_object_with_text_and_id_becomes_a_request() -> None:
    request = parse(orjson.dumps({"id": 7, "text": "where is my parcel"}))
    assert (request.id, request.text, request.profile) == ("7", "where is my parcel", "ecommerce")
    validate_input({"id": 7, "text": "where is my parcel"})


def test_a_record_without_id_is_named_by_its_position() -> None:
    assert parse(orjson.dumps({"text": "hello"})).id == "chats:2:41"


def test_a_nested_text_field_is_found_by_its_dotted_path() -> None:
    value = orjson.dumps({"message": {"body": "refund please", "meta": {"uid": "u1"}}})
    request = parse(value, text_field="message.body", id_field="message.meta.uid")
    assert (request.text, request.id) == ("refund please", "u1")


def test_with_the_text_format_the_whole_value_is_the_text() -> None:
    assert parse("naïve café text".encode(), fmt="text").text == "naïve café text"


def test_a_nested_path_through_a_non_object_names_the_member_that_should_be_one() -> None:
    with pytest.raises(RecordError, match="expected an object at 'message', got string"):
        parse(orjson.dumps({"message": "where is my parcel"}), text_field="message.body")


def test_a_missing_nested_field_names_the_object_and_the_key_it_lacks() -> None:
    with pytest.raises(RecordError, match=r"'message\.body' is missing: 'message' has no key 'body'"):
        parse(orjson.dumps({"message": {"text": "where is my parcel"}}), text_field="message.body")
    with pytest.raises(RecordError, match=r"field 'text' is missing$"):
        parse(orjson.dumps({"body": "where is my parcel"}))


def test_a_record_may_choose_a_known_profile() -> None:
    assert parse(orjson.dumps({"text": "card declined", "profile": "banking"})).profile == "banking"


@pytest.mark.parametrize(
    ("value", "kwargs", "reason"),
    [
        (None, {}, "null_value"),
        (b"{not json", {}, "invalid_json"),
        (b'{"text": "caf\xe9"}', {}, "invalid_utf8"),
        (b"\xff\xfe binary", {"fmt": "text"}, "invalid_utf8"),
        (orjson.dumps({"body": "x"}), {}, "missing_field"),
        (orjson.dumps({"text": ""}), {}, "empty_text"),
        (orjson.dumps({"text": " \n\t "}), {}, "empty_text"),
        (orjson.dumps({"text": 3}), {}, "wrong_type"),
        (orjson.dumps({"text": None}), {}, "wrong_type"),
        (orjson.dumps({"text": ["a"]}), {}, "wrong_type"),
        (orjson.dumps("just a string"), {}, "wrong_type"),
        (orjson.dumps({"text": "x", "id": {"a": 1}}), {}, "wrong_type"),
        (orjson.dumps({"text": "x", "id": True}), {}, "wrong_type"),
        (orjson.dumps({"message": "flat"}), {"text_field": "message.body"}, "wrong_type"),
        (orjson.dumps({"text": "x", "profile": "astrology"}), {}, "unknown_profile"),
        (orjson.dumps({"text": "x", "profile": 5}), {}, "unknown_profile"),
        (b'{"text": "' + b"a" * 2000 + b'"}', {"max_value_bytes": 1000}, "value_too_large"),
    ],
)
def test_bad_records_fail_with_their_reason(value: bytes | None, kwargs: dict, reason: str) -> None:
    with pytest.raises(RecordError) as info:
        parse(value, **kwargs)
    assert info.value.reason == reason
    assert reason in REASONS, "the dead-letter schema does not list this reason"


@given(st.binary(max_size=300))
def test_any_bytes_parse_or_fail_with_a_known_reason(value: bytes) -> None:
    try:
        request = parse(value)
    except RecordError as exc:
        assert exc.reason in REASONS
    else:
        assert request.text.strip()


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
        max_leaves=10,
    )
)
def test_any_json_document_parses_or_fails_with_a_known_reason(document: object) -> None:
    for value in (
        json.dumps(document),
        json.dumps({"text": document}),
        json.dumps({"text": "ok", "id": document}),
    ):
        try:
            parse(value.encode())
        except RecordError as exc:
            assert exc.reason in REASONS


def test_output_and_dead_letter_records_match_their_schemas() -> None:
    labels = Labels(
        {"sentiment": Label("negative", 0.91), "intent_ecommerce": Label("track_order", 0.5)}, False
    )
    model = SimpleNamespace(name="m", version="1")
    labelled = Envelope(
        SOURCE, None, b"{}", model=model, request=Request("7", "hi", "ecommerce"), labels=labels
    )
    document = orjson.loads(encode_output(labelled, {"inference": 1.5}))
    validate_output(document)
    assert document["model"] == {"name": "m", "version": "1"} and document["id"] == "7"
    failed = Envelope(SOURCE, None, b"\x00\xff", failure=RecordError("invalid_json", "value is not JSON"))
    document = orjson.loads(encode_dead_letter(failed))
    validate_deadletter(document)
    assert document["value_b64"] == "AP8=" and document["value_bytes"] == 2


def test_labels_survive_the_cache_round_trip() -> None:
    labels = Labels({"sentiment": Label("positive", 0.75)}, True)
    assert decode_labels(encode_labels(labels)) == labels
