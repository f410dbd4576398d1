"""Fixtures for the real Kafka and Redis that `streamnlp services up` runs.

A missing service fails the test with a message that says how to start it; it is never a skip.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import redis.asyncio as aioredis
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streamnlp import ServiceNotRunning
from streamnlp.dev.services import KafkaCluster, RedisServer, require_kafka, require_redis
from streamnlp.dev.settings import ServiceSettings
from streamnlp.model.runtime import LabelModel
from tests.support import MODEL


@pytest.fixture(scope="session")
def model() -> LabelModel:
    """The shipped model, loaded once."""
    return LabelModel.load(MODEL)


@pytest.fixture(scope="session")
def service_settings() -> ServiceSettings:
    return ServiceSettings.from_env()


def _running(address: str, require: Callable[[str], object]) -> str:
    """``address`` once ``require`` finds its service answering; else the test fails, saying how to start
    the service."""
    try:
        require(address)
    except ServiceNotRunning as exc:
        pytest.fail(str(exc), pytrace=False)
    return address


@pytest.fixture(scope="session")
def kafka_bootstrap(service_settings: ServiceSettings) -> str:
    """Bootstrap servers of the running local Kafka."""
    return _running(KafkaCluster(service_settings).bootstrap_servers, require_kafka)


@pytest.fixture(scope="session")
def redis_url(service_settings: ServiceSettings) -> str:
    """URL of the running local Redis."""
    return _running(RedisServer(service_settings).url, require_redis)


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


NewTopicFactory = Callable[..., Awaitable[str]]


@pytest.fixture
async def new_topic(kafka_bootstrap: str) -> AsyncIterator[NewTopicFactory]:
    """Creates uniquely named topics for one test and deletes them afterwards."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    created: list[str] = []

    async def create(partitions: int = 4, prefix: str = "test") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        await admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
        created.append(name)
        return name

    try:
        yield create
    finally:
        if created:
            await admin.delete_topics(created)
        await admin.close()
