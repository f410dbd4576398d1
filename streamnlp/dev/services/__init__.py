"""Local Kafka and Redis for development, tests and the demo (``streamnlp services up|down|status``)."""

from __future__ import annotations

from ._credentials import Credentials
from ._kafka import KafkaCluster, describe_brokers, kafka_version, require_kafka
from ._process import ManagedProcess
from ._redis import RedisServer, require_redis

__all__ = [
    "Credentials",
    "KafkaCluster",
    "ManagedProcess",
    "RedisServer",
    "describe_brokers",
    "kafka_version",
    "require_kafka",
    "require_redis",
]
