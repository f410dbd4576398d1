"""Cache keys are keyed hashes of normalised text; the LRU bounds memory; a dead Redis is survived."""

from __future__ import annotations

import asyncio
import re

from streamnlp.cache import LRU, LabelCache, cache_key, normalise
from streamnlp.model.labels import Label, Labels

LABELS = Labels({"sentiment": Label("neutral", 0.5)}, False)


def test_a_key_never_contains_the_text() -> None:
    key = cache_key(b"secret", "v1", "medical", "patient reports chest pain")
    assert re.fullmatch(r"snlp:1:[0-9a-f]{64}", key)
    assert "chest" not in key


def test_keys_depend_on_secret_model_version_and_profile() -> None:
    base = cache_key(b"s", "v1", "medical", "text")
    assert cache_key(b"other", "v1", "medical", "text") != base
    assert cache_key(b"s", "v2", "medical", "text") != base
    assert cache_key(b"s", "v1", "general", "text") != base


def test_texts_differing_only_in_whitespace_or_unicode_form_share_a_key() -> None:
    assert normalise("  where   is\tmy\norder ") == "where is my order"
    assert cache_key(b"", "v", "p", "cafe\u0301 latte") == cache_key(b"", "v", "p", "caf\u00e9  latte")


def test_the_lru_evicts_the_least_recently_used() -> None:
    lru = LRU(2)
    lru.put("a", LABELS)
    lru.put("b", LABELS)
    assert lru.get("a") is not None
    lru.put("c", LABELS)
    assert (lru.get("a"), lru.get("b"), lru.get("c")) == (LABELS, None, LABELS)
    assert len(lru) == 2


async def test_an_unreachable_redis_is_counted_backed_off_and_labels_still_flow() -> None:
    errors: list[int] = []
    now = [0.0]
    cache = LabelCache(
        "redis://127.0.0.1:1/0",
        ttl=60,
        lru_size=10,
        on_redis_error=lambda: errors.append(1),
        clock=lambda: now[0],
    )
    assert await cache.get_many(["k1"]) == [None]
    assert errors == [1] and not cache.redis_available
    await cache.put_many([("k1", LABELS)])  # during the backoff: LRU only, no new attempt
    assert errors == [1]
    assert await cache.get_many(["k1"]) == [LABELS]
    now[0] = 3600.0
    assert cache.redis_available
    await cache.get_many(["k2"])
    assert errors == [1, 1]
    await cache.close()


async def test_round_trips_failing_together_lengthen_the_backoff_by_one_step() -> None:
    now = [0.0]
    cache = LabelCache("redis://127.0.0.1:1/0", ttl=60, lru_size=10, clock=lambda: now[0])
    await asyncio.gather(cache.get_many(["a"]), cache.get_many(["b"]), cache.put_many([("c", LABELS)]))
    assert cache.stats.redis_errors == 3  # every failed round trip is counted
    now[0] = 1.0  # the first step of the backoff (0.5 s x 2), not the third (4 s)
    assert cache.redis_available
    await cache.close()


async def test_labels_round_trip_through_the_real_redis(redis_url: str) -> None:
    writer = LabelCache(redis_url, ttl=60, lru_size=0, secret="t")
    key = writer.key("v-test", "general", "a text only this test uses 51f1")
    await writer.put_many([(key, LABELS)])
    reader = LabelCache(redis_url, ttl=60, lru_size=0, secret="t")
    assert await reader.get_many([key, key + "0"]) == [LABELS, None]
    assert reader.stats.hits_redis == 1 and reader.stats.misses == 1
    await writer.close()
    await reader.close()
