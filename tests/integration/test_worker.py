"""The worker labels real Kafka streams: complete, schema-valid, equal to the model, cached, shared.

Acceptance of the streaming worker, each against real `streamnlp worker` processes, the real broker
and the real Redis.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import re
import uuid
from collections import Counter

import orjson
import pytest
import redis

from streamnlp.dev.services import RedisServer
from streamnlp.dev.settings import ServiceSettings
from streamnlp.model.runtime import LabelModel
from tests.integration.conftest import Stream
from tests.schemas import validate_deadletter, validate_output

OPENINGS = ["hi,", "hello,", "excuse me,", "quick question:", "urgent:", "sorry to bother you,", "hey team,"]
ASKS = [
    "where is my order {n}",
    "I want to cancel order {n}",
    "how do I get a refund for order {n}",
    "the parcel {n} arrived damaged",
    "can I change the delivery address for order {n}",
    "my payment for order {n} failed twice",
    "I love the jacket from order {n}, thanks",
    "nobody answered about invoice {n}, this is awful",
    "please send the invoice for purchase {n}",
    "is there a newsletter I can join, account {n}",
]


def chats(count: int, seed: int = 0) -> list[str]:
    """``count`` distinct customer-chat texts."""
    combos = itertools.product(OPENINGS, ASKS, range(seed, seed + count))
    texts = [f"{opening} {ask.format(n=n)}" for opening, ask, n in combos]
    return texts[:: max(1, len(texts) // count)][:count]


def as_values(texts: list[str], prefix: str) -> list[tuple[bytes, bytes]]:
    return [
        (f"{prefix}-{i}".encode(), orjson.dumps({"id": f"{prefix}-{i}", "text": text}))
        for i, text in enumerate(texts)
    ]


async def test_five_thousand_messages_give_one_valid_output_each_equal_to_the_model(
    stream: Stream, start_worker, model: LabelModel
) -> None:
    texts = chats(5000)
    assert len(set(texts)) == 5000
    worker = start_worker(stream.env(STREAMNLP_CACHE_SECRET=uuid.uuid4().hex))
    await stream.produce(as_values(texts, "m"))
    outputs, dead = await stream.collect(5000)

    assert dead == []
    ids = Counter(o["id"] for o in outputs)
    assert set(ids) == {f"m-{i}" for i in range(5000)}
    assert max(ids.values()) == 1, "an input was labelled twice without a crash"
    for output in outputs:
        validate_output(output)
        assert output["source"]["topic"] == stream.input
        assert output["profile"] == "ecommerce"
        assert set(output["labels"]) == {"sentiment", "intent_ecommerce"}
    assert {o["source"]["partition"] for o in outputs} == {0, 1, 2, 3}

    direct = model.predict(texts, ["sentiment", "intent_ecommerce"])
    by_id = {o["id"]: o for o in outputs}
    for i, prediction in enumerate(direct):
        labels = by_id[f"m-{i}"]["labels"]
        for head, result in prediction.heads.items():
            assert labels[head]["label"] == result.label, (i, head)
            assert labels[head]["score"] == pytest.approx(result.score, abs=1e-4)
    assert worker.metric("streamnlp_model_texts_total") == 5000
    assert worker.alive()


async def test_identical_replay_is_served_from_cache_without_calling_the_model(
    stream: Stream, start_worker
) -> None:
    secret = uuid.uuid4().hex
    texts = chats(2000, seed=7)
    worker = start_worker(stream.env(STREAMNLP_CACHE_SECRET=secret))
    await stream.produce(as_values(texts, "first"))
    await stream.collect(2000)
    called = worker.metric("streamnlp_model_texts_total")
    assert called == 2000

    await stream.produce(as_values(texts, "replay"))
    outputs, _ = await stream.collect(4000)
    replay = [o for o in outputs if o["id"].startswith("replay-")]
    assert len(replay) == 2000
    assert sum(o["cached"] for o in replay) / len(replay) >= 0.99
    assert worker.metric("streamnlp_model_texts_total") == called, "the model was called for a repeat"
    hits = worker.metric("streamnlp_cache_hits_total")
    assert hits / 2000 >= 0.99

    # A fresh worker with no in-process LRU finds the same labels in Redis.
    worker.stop()
    fresh = start_worker(stream.env(STREAMNLP_CACHE_SECRET=secret, STREAMNLP_CACHE_LRU_SIZE="0"))
    await stream.produce(as_values(texts[:500], "again"))
    outputs, _ = await stream.collect(4500)
    again = [o for o in outputs if o["id"].startswith("again-")]
    assert len(again) == 500 and all(o["cached"] for o in again)
    assert fresh.metric("streamnlp_model_texts_total") == 0


async def test_two_workers_in_one_group_share_the_partitions_and_label_everything(
    stream: Stream, start_worker
) -> None:
    env = stream.env(STREAMNLP_CACHE_SECRET=uuid.uuid4().hex)
    first = start_worker(env)
    second = start_worker(env)
    await asyncio.sleep(3)  # let the group settle on both members
    texts = chats(3000, seed=11)
    await stream.produce(as_values(texts, "s"))
    outputs, dead = await stream.collect(3000)
    assert not dead
    assert {o["id"] for o in outputs} == {f"s-{i}" for i in range(3000)}
    consumed = [w.metric("streamnlp_messages_in_total") for w in (first, second)]
    assert all(n > 0 for n in consumed), f"one worker consumed nothing: {consumed}"
    assert sum(consumed) >= 3000


async def test_redis_outage_mid_stream_loses_nothing_and_caching_resumes(
    stream: Stream, start_worker, tmp_path
) -> None:
    settings = ServiceSettings.from_env(state_dir=tmp_path / "redis-outage", redis_port=26391)
    own_redis = RedisServer(settings)
    own_redis.start()
    try:
        worker = start_worker(stream.env(STREAMNLP_REDIS_URL=own_redis.url, STREAMNLP_CACHE_LRU_SIZE="0"))
        texts = chats(3000, seed=23)
        await stream.produce(as_values(texts[:1000], "a"))
        await stream.collect(1000)
        assert redis.Redis.from_url(own_redis.url).dbsize() > 0

        own_redis.stop()
        await stream.produce(as_values(texts[1000:2000], "b"))
        await stream.collect(2000)
        assert worker.metric("streamnlp_cache_errors_total") >= 1
        assert worker.alive()

        own_redis.start()  # an empty Redis: it keeps nothing on disk
        await asyncio.sleep(1.0)  # past the first reconnect backoff
        await stream.produce(as_values(texts[2000:], "c"))
        outputs, dead = await stream.collect(3000)
        assert not dead
        assert {o["id"] for o in outputs} == {
            f"{p}-{i}" for p, n in (("a", 1000), ("b", 1000), ("c", 1000)) for i in range(n)
        }
        # The worker tries Redis again when its backoff ends (at most 30 s after the last failure), and
        # the stream above may be labelled sooner than that: keep new texts coming until it has.
        client = redis.Redis.from_url(own_redis.url)
        fresh = chats(400, seed=24)
        for round_ in range(40):
            if keys := client.keys("*"):
                break
            await stream.produce(as_values(fresh[round_ * 10 : round_ * 10 + 10], f"d{round_}"))
            await stream.collect(3000 + 10 * (round_ + 1))
            await asyncio.sleep(1.0)
        assert keys, "caching did not resume after Redis came back"
        assert all(re.fullmatch(rb"snlp:1:[0-9a-f]{64}", k) for k in keys), "a cache key is not a hash"
    finally:
        own_redis.stop()


async def test_bad_records_go_to_the_dead_letter_topic_and_the_worker_keeps_running(
    stream: Stream, start_worker
) -> None:
    worker = start_worker(stream.env(STREAMNLP_CACHE_SECRET=uuid.uuid4().hex))
    huge = "my order never arrived and " * 40000  # about 1 MB of text
    bad: list[tuple[bytes | None, bytes | None]] = [
        (b"k-json", b"this is not json {"),
        (b"k-utf8", b'{"text": "caf\xe9 \xff"}'),
        (b"k-missing", orjson.dumps({"id": "x1", "body": "no text field"})),
        (b"k-empty", orjson.dumps({"id": "x2", "text": "   "})),
        (b"k-type", orjson.dumps({"id": "x3", "text": 42})),
        (b"k-array", orjson.dumps(["text", "in", "a", "list"])),
        (b"k-profile", orjson.dumps({"id": "x4", "text": "hi", "profile": "nonexistent"})),
        (b"k-null", None),
    ]
    good = [
        (b"k-huge", orjson.dumps({"id": "huge", "text": huge})),
        (b"k-ok", orjson.dumps({"id": "ok", "text": "where is my order?"})),
    ]
    await stream.produce(bad + good)
    outputs, dead = await stream.collect(len(bad) + len(good))

    reasons = {d["key_b64"] and base64.b64decode(d["key_b64"]).decode(): d["reason"] for d in dead}
    assert reasons == {
        "k-json": "invalid_json",
        "k-utf8": "invalid_utf8",
        "k-missing": "missing_field",
        "k-empty": "empty_text",
        "k-type": "wrong_type",
        "k-array": "wrong_type",
        "k-profile": "unknown_profile",
        "k-null": "null_value",
    }
    originals = dict(bad)
    for record in dead:
        validate_deadletter(record)
        key = base64.b64decode(record["key_b64"])
        value = originals[key]
        assert record["value_b64"] == (None if value is None else base64.b64encode(value).decode())
        assert record["source"]["topic"] == stream.input
    by_id = {o["id"]: o for o in outputs}
    assert set(by_id) == {"huge", "ok"}
    assert by_id["huge"]["truncated"] is True and by_id["ok"]["truncated"] is False
    for output in outputs:
        validate_output(output)
    assert worker.alive()
    assert worker.metric("streamnlp_dead_letters_total") == len(bad)
    log = worker.log.read_text().splitlines()
    records = [orjson.loads(line) for line in log if line.strip()]  # every line, the first too, is JSON
    dead_lines = [r["msg"] for r in records if r["msg"].startswith("dead letter")]
    assert {line.split()[2] for line in dead_lines} == {f"({reason}):" for reason in reasons.values()}
    assert not any("my order never arrived" in line or "no text field" in line for line in log)
