"""Kafka connection settings shared by the admin client, the Faust app and the tools."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from .config import WorkerSettings

log = logging.getLogger(__name__)

# Large enough for the dead-letter copy of any value the worker accepts (base64 grows it by a third).
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


def ssl_context(settings: WorkerSettings) -> ssl.SSLContext | None:
    if settings.kafka_security_protocol not in ("SSL", "SASL_SSL"):
        return None
    cafile = str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
    return ssl.create_default_context(cafile=cafile)


def client_kwargs(settings: WorkerSettings) -> dict[str, Any]:
    """Keyword arguments for any aiokafka client: servers and security."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": settings.brokers,
        "security_protocol": settings.kafka_security_protocol,
    }
    context = ssl_context(settings)
    if context is not None:
        kwargs["ssl_context"] = context
    if settings.kafka_security_protocol.startswith("SASL"):
        kwargs |= {
            "sasl_mechanism": settings.kafka_sasl_mechanism,
            "sasl_plain_username": settings.kafka_sasl_username,
            "sasl_plain_password": settings.kafka_sasl_password,
        }
    return kwargs


async def partition_counts(settings: WorkerSettings, names: Iterable[str]) -> dict[str, int]:
    """Topic -> number of partitions, for the topics in ``names`` that exist."""
    admin = AIOKafkaAdminClient(**client_kwargs(settings))
    await admin.start()
    try:
        described = await admin.describe_topics(sorted(set(names)))
    finally:
        await admin.close()
    return {t["topic"]: len(t["partitions"]) for t in described if t["partitions"] and not t["error_code"]}


async def ensure_topics(
    settings: WorkerSettings,
    names: Iterable[str],
    *,
    partitions: int | None = None,
    configs: Mapping[str, str] | None = None,
) -> list[str]:
    """Create the topics in ``names`` that do not exist yet; the names created. ``configs``: topic
    settings to create them with (the benchmarks time outputs by ``message.timestamp.type``)."""
    admin = AIOKafkaAdminClient(**client_kwargs(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = sorted(set(names) - existing)
        created = []
        for name in missing:
            topic = NewTopic(
                name,
                num_partitions=partitions or settings.topic_partitions,
                replication_factor=settings.topic_replication,
                topic_configs={"max.message.bytes": str(MAX_MESSAGE_BYTES), **(configs or {})},
            )
            try:
                await admin.create_topics([topic])
                created.append(name)
                log.info("created topic %s", name)
            except TopicAlreadyExistsError:  # another replica created it first
                pass
        return created
    finally:
        await admin.close()
