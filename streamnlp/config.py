"""Every setting of streamnlp, declared once with its environment name and what it is for.

All names share the ``STREAMNLP_`` prefix; ``streamnlp config`` prints them with their defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ._settings import Settings, setting

__all__ = ["ServiceSettings"]


@dataclass(frozen=True, slots=True)
class ServiceSettings(Settings):
    """The local Kafka and Redis that ``streamnlp services`` runs for development, tests and the demo.

    The ports are not the usual 9092/6379, so they never collide with a Kafka or Redis already on the
    machine.
    """

    state_dir: Path = setting(
        "STATE_DIR", Path(".state"), "Where local services keep PID files, logs and data."
    )
    cache_dir: Path = setting(
        "CACHE_DIR",
        Path("~/.cache/streamnlp").expanduser(),
        "Where the Kafka jars resolved by Maven are kept between runs.",
    )
    kafka_port: int = setting(
        "KAFKA_PORT", 19092, "Client port of the first local broker; broker i listens on port + i."
    )
    kafka_brokers: int = setting(
        "KAFKA_BROKERS", 1, "How many local brokers to run (3 for the fault-tolerance tests)."
    )
    kafka_heap: str = setting("KAFKA_HEAP", "512m", "JVM heap of each local broker (-Xmx).")
    redis_port: int = setting("REDIS_PORT", 16379, "Port of the local Redis.")
    start_timeout: float = setting(
        "START_TIMEOUT", 180.0, "Seconds to wait for a local service to answer before giving up."
    )
