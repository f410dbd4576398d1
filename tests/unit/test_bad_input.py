"""A corpus of bad and odd records: each is labelled or dead-lettered with its reason, never a crash."""

from __future__ import annotations

import orjson
import pytest

from streamnlp.envelope import Source
from tests.schemas import validate_deadletter, validate_output
from tests.unit.test_pipeline import pipeline_for, run

LABELLED = "labelled"

CORPUS: list[tuple[str, bytes | None, str]] = [
    ("plain", orjson.dumps({"text": "where is my order"}), LABELLED),
    ("binary", bytes(range(256)), "invalid_utf8"),
    ("invalid utf-8 inside json", b'{"text": "\xc3\x28"}', "invalid_utf8"),
    ("overlong utf-8", b'{"text": "\xc0\xaf"}', "invalid_utf8"),
    ("utf-8 bom before json", b"\xef\xbb\xbf" + orjson.dumps({"text": "refund please"}), LABELLED),
    ("utf-16 json", '{"text": "hello"}'.encode("utf-16"), "invalid_utf8"),
    ("control characters", orjson.dumps({"text": "my\x00 order\x07 is\x1b late"}), LABELLED),
    ("only control characters", orjson.dumps({"text": "\x00\x01\x02"}), LABELLED),
    ("right-to-left text", orjson.dumps({"text": "أين طلبي؟ لم يصل بعد"}), LABELLED),
    ("mixed direction marks", orjson.dumps({"text": "order \u202e123\u202c late"}), LABELLED),
    ("emoji only", orjson.dumps({"text": "😡😡📦❌"}), LABELLED),
    ("zero-width spaces only", orjson.dumps({"text": "\u200b\u200b"}), LABELLED),
    ("whitespace only", orjson.dumps({"text": " \t\n "}), "empty_text"),
    ("empty string", orjson.dumps({"text": ""}), "empty_text"),
    ("empty value", b"", "invalid_json"),
    ("tombstone", None, "null_value"),
    ("json null", b"null", "wrong_type"),
    ("json number", b"42", "wrong_type"),
    ("json string", b'"just text"', "wrong_type"),
    ("json array", orjson.dumps([{"text": "a"}]), "wrong_type"),
    ("text is a number", orjson.dumps({"text": 12345}), "wrong_type"),
    ("text is a numeric string", orjson.dumps({"text": "12345"}), LABELLED),
    ("text is null", orjson.dumps({"text": None}), "wrong_type"),
    ("text is an object", orjson.dumps({"text": {"body": "x"}}), "wrong_type"),
    ("text is a boolean", orjson.dumps({"text": True}), "wrong_type"),
    ("missing text", orjson.dumps({"id": "1", "message": "hi"}), "missing_field"),
    ("id is a float", orjson.dumps({"text": "hi", "id": 1.5}), "wrong_type"),
    ("id is empty", orjson.dumps({"text": "hi", "id": ""}), LABELLED),
    ("unknown profile", orjson.dumps({"text": "hi", "profile": "horoscope"}), "unknown_profile"),
    ("profile is not a string", orjson.dumps({"text": "hi", "profile": ["banking"]}), "unknown_profile"),
    ("deeply nested json", b'{"a":' * 2000 + b"1" + b"}" * 2000, "invalid_json"),
    (
        "huge json with many fields",
        orjson.dumps({f"f{i}": i for i in range(50000)} | {"text": "hi"}),
        LABELLED,
    ),
    ("duplicate keys", b'{"text": "first", "text": "second"}', LABELLED),
    ("trailing garbage", orjson.dumps({"text": "hi"}) + b" trailing", "invalid_json"),
    ("nan literal", b'{"text": "hi", "score": NaN}', "invalid_json"),
    ("one megabyte text", orjson.dumps({"text": "late parcel " * 90000}), LABELLED),
    ("ten megabyte value", orjson.dumps({"text": "x" * (10 * 1024 * 1024)}), LABELLED),
    ("over the size limit", orjson.dumps({"text": "y" * (17 * 1024 * 1024)}), "value_too_large"),
    ("a single very long word", orjson.dumps({"text": "a" * 5000}), LABELLED),
]


def test_the_corpus_has_at_least_25_kinds() -> None:
    assert len({name for name, _, _ in CORPUS}) >= 25


@pytest.mark.parametrize(("name", "value", "expected"), CORPUS, ids=[c[0] for c in CORPUS])
async def test_each_odd_record_is_labelled_or_dead_lettered_with_its_reason(
    model, name: str, value: bytes | None, expected: str
) -> None:
    result = await run(pipeline_for(model), [value])
    assert len(result.outputs) + len(result.dead_letters) == 1, "a record was dropped or doubled"
    if expected == LABELLED:
        (publish,) = result.outputs
        validate_output(orjson.loads(publish.value))
    else:
        (publish,) = result.dead_letters
        record = orjson.loads(publish.value)
        validate_deadletter(record)
        assert record["reason"] == expected


async def test_an_empty_key_is_kept_as_it_was(model) -> None:
    pipeline = pipeline_for(model)
    (envelope,) = await pipeline.process([pipeline.envelope(Source("chats", 0, 1), b"", b'{"text": "hi"}')])
    assert envelope.key == b"" and envelope.output is not None and not envelope.output.dead
