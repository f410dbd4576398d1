"""Kafka over TLS with SASL/SCRAM and Redis with a password over TLS, configured and used for real."""

from __future__ import annotations

import asyncio
import re
import ssl
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import redis
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from streamnlp import ServiceNotRunning
from streamnlp.dev.services import Credentials, KafkaCluster, RedisServer, require_kafka
from streamnlp.dev.settings import ServiceSettings
from tests.integration.conftest import Stream
from tests.integration.test_worker import as_values, chats
from tests.support import MODEL


@dataclass
class Secure:
    kafka: KafkaCluster
    redis: RedisServer
    credentials: Credentials


@pytest.fixture
async def secure(tmp_path) -> AsyncIterator[Secure]:
    settings = ServiceSettings.from_env(
        state_dir=tmp_path / "secure", kafka_port=29300, redis_port=26400,
        kafka_security="sasl_ssl", redis_secure=True,
    )  # fmt: skip
    kafka, cache = KafkaCluster(settings), RedisServer(settings)
    await asyncio.to_thread(cache.start)
    await asyncio.to_thread(kafka.start)
    try:
        yield Secure(kafka, cache, Credentials.load_or_create(settings.state_dir))
    finally:
        await asyncio.to_thread(kafka.stop)
        await asyncio.to_thread(cache.stop)


def security_env(secure: Secure, password: str | None = None) -> dict[str, str]:
    return {
        "STREAMNLP_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "STREAMNLP_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "STREAMNLP_KAFKA_SASL_USERNAME": secure.credentials.kafka_username,
        "STREAMNLP_KAFKA_SASL_PASSWORD": password or secure.credentials.kafka_password,
        "STREAMNLP_KAFKA_SSL_CAFILE": str(secure.kafka.ca_file),
    }


async def test_the_worker_labels_through_sasl_ssl_kafka_and_password_tls_redis(
    secure: Secure, start_worker
) -> None:
    stream = Stream(secure.kafka.bootstrap_servers, security=security_env(secure), model=MODEL)
    texts = chats(300, seed=404)
    await stream.produce(as_values(texts, "sec"))
    worker = start_worker(
        stream.env(STREAMNLP_REDIS_URL=secure.redis.url, STREAMNLP_REDIS_CA_FILE=str(secure.redis.ca_file),
                   STREAMNLP_CACHE_SECRET=uuid.uuid4().hex)
    )  # fmt: skip
    outputs, dead = await stream.collect(300)
    assert not dead and {o["id"] for o in outputs} == {f"sec-{i}" for i in range(300)}
    assert worker.metric("streamnlp_cache_errors_total") == 0
    with secure.redis.client() as client:
        keys = client.keys("*")
    assert len(keys) == 300 and all(re.fullmatch(rb"snlp:1:[0-9a-f]{64}", k) for k in keys)

    worker.stop()
    log = worker.log.read_text(errors="replace")
    assert secure.credentials.kafka_password not in log
    assert secure.credentials.redis_password not in log
    assert not any(text in log for text in texts), "a message text reached the log"


async def test_the_secured_listener_refuses_plaintext_and_wrong_passwords(secure: Secure) -> None:
    port = secure.kafka.nodes[0].port
    with pytest.raises(ServiceNotRunning):  # a plaintext client gets no metadata from the TLS port
        await asyncio.to_thread(require_kafka, f"127.0.0.1:{port}")

    producer = AIOKafkaProducer(
        bootstrap_servers=f"127.0.0.1:{port}", security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
        sasl_plain_username=secure.credentials.kafka_username, sasl_plain_password="wrong-password",
        ssl_context=ssl.create_default_context(cafile=str(secure.kafka.ca_file)), request_timeout_ms=5000,
    )  # fmt: skip
    with pytest.raises(KafkaError):
        await producer.start()
    await producer.stop()


def test_redis_refuses_clients_without_tls_or_password(secure: Secure) -> None:
    port = secure.redis.port
    with pytest.raises(redis.ConnectionError):
        redis.Redis(host="127.0.0.1", port=port, socket_timeout=2).ping()  # no TLS
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(
            host="127.0.0.1", port=port, ssl=True, ssl_ca_certs=str(secure.redis.ca_file), socket_timeout=2
        ).ping()  # TLS, no password
    with secure.redis.client(socket_timeout=2) as client:
        assert client.ping()
