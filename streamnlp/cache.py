"""The label cache: an in-process LRU in front of Redis, keyed by a keyed hash, never by text.

A key is ``snlp:1:`` + HMAC-SHA256(secret, model version, profile, normalised text), so a medical note
cannot be read back from Redis, nor found by hashing guesses without the secret. Redis is an
optimisation: when it fails, labelling goes on uncached, the failure is logged once and counted, and
Redis is tried again after an exponential backoff.

The model version is part of every key, so a hot-reloaded model never serves its predecessor's labels.
Changing what a cached value holds (:func:`encode_labels`) means a new ``KEY_PREFIX`` version.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import orjson
import redis.asyncio as aioredis
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError

from .model.labels import Label, Labels

log = logging.getLogger(__name__)

KEY_PREFIX = "snlp:1:"


def encode_labels(labels: Labels) -> bytes:
    """The cached form of labels: compact JSON, ``{"h": {head: [label, score]}, "t": truncated}``."""
    return orjson.dumps(
        {"h": {n: [v.label, v.score] for n, v in labels.heads.items()}, "t": labels.truncated}
    )


def decode_labels(raw: bytes) -> Labels:
    data = orjson.loads(raw)
    return Labels({n: Label(v[0], float(v[1])) for n, v in data["h"].items()}, bool(data["t"]))


def normalise(text: str) -> str:
    """The form of a text that decides its cache key: Unicode NFC, whitespace runs collapsed.

    Both changes leave the model's tokens as they are, so texts that differ only there share a label.
    """
    return " ".join(unicodedata.normalize("NFC", text).split())


def cache_key(secret: bytes, model_version: str, profile: str, text: str) -> str:
    message = b"\0".join((model_version.encode(), profile.encode(), normalise(text).encode()))
    return KEY_PREFIX + hmac.new(secret, message, hashlib.sha256).hexdigest()


class LRU:
    """A small least-recently-used map of cache key to labels."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[str, Labels] = OrderedDict()

    def get(self, key: str) -> Labels | None:
        labels = self._items.get(key)
        if labels is not None:
            self._items.move_to_end(key)
        return labels

    def put(self, key: str, labels: Labels) -> None:
        if self.size <= 0:
            return
        self._items[key] = labels
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


@dataclass(slots=True)
class CacheStats:
    hits_lru: int = 0
    hits_redis: int = 0
    misses: int = 0
    redis_errors: int = 0


class LabelCache:
    """Looks up and stores labels for whole batches: one Redis round trip each way."""

    def __init__(
        self,
        redis_url: str | None,
        *,
        ttl: int,
        lru_size: int,
        secret: str = "",
        ca_file: str | None = None,
        backoff: ExponentialBackoff | None = None,
        on_redis_error: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._secret = secret.encode()
        tls = {"ssl_ca_certs": ca_file} if ca_file else {}
        self._redis = (
            aioredis.Redis.from_url(redis_url, socket_timeout=1.0, socket_connect_timeout=1.0, **tls)
            if redis_url
            else None
        )
        self.ttl = ttl
        self.lru = LRU(lru_size)
        self.stats = CacheStats()
        self._backoff = backoff or ExponentialBackoff(cap=30.0, base=0.5)
        self._failures = 0
        self._retry_at = 0.0
        self._on_redis_error = on_redis_error
        self._clock = clock

    def key(self, model_version: str, profile: str, text: str) -> str:
        return cache_key(self._secret, model_version, profile, text)

    @property
    def redis_available(self) -> bool:
        """False while Redis is in its backoff after a failure."""
        return self._redis is not None and self._clock() >= self._retry_at

    def _redis_failed(self, exc: Exception) -> None:
        self.stats.redis_errors += 1
        if self._on_redis_error is not None:
            self._on_redis_error()
        if self._clock() < self._retry_at:
            # Another round trip started with this one and already failed (a lookup and a background
            # write, or two batches): one outage is one step of the backoff, however many calls it hit.
            return
        self._failures += 1
        self._retry_at = self._clock() + self._backoff.compute(self._failures)
        if self._failures == 1:
            log.warning("redis unavailable, labelling uncached until it returns: %s", exc)

    def _redis_ok(self) -> None:
        if self._failures:
            log.warning("redis is back after %d failed attempts; caching resumes", self._failures)
        self._failures = 0

    async def get_many(self, keys: Sequence[str]) -> list[Labels | None]:
        found: list[Labels | None] = [self.lru.get(k) for k in keys]
        self.stats.hits_lru += sum(1 for f in found if f is not None)
        missing = [i for i, f in enumerate(found) if f is None]
        if missing and self._redis is not None and self.redis_available:
            try:
                raw = await self._redis.mget([keys[i] for i in missing])
            except (RedisError, OSError) as exc:
                self._redis_failed(exc)
            else:
                self._redis_ok()
                for i, value in zip(missing, raw, strict=True):
                    if value is not None:
                        labels = decode_labels(value)
                        found[i] = labels
                        self.lru.put(keys[i], labels)
                        self.stats.hits_redis += 1
        self.stats.misses += sum(1 for f in found if f is None)
        return found

    async def put_many(self, items: Sequence[tuple[str, Labels]]) -> None:
        for key, labels in items:
            self.lru.put(key, labels)
        if not items or self._redis is None or not self.redis_available:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key, labels in items:
                    pipe.set(key, encode_labels(labels), ex=self.ttl)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            self._redis_failed(exc)
        else:
            self._redis_ok()

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
