"""Settings of the local services that only development, the tests and the demo run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .._settings import Settings, setting

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
    kafka_security: str = setting(
        "KAFKA_SECURITY",
        "plaintext",
        "plaintext, or sasl_ssl: clients must use TLS and SCRAM-SHA-512 (credentials in the state folder).",
    )
    redis_port: int = setting("REDIS_PORT", 16379, "Port of the local Redis.")
    redis_secure: bool = setting(
        "REDIS_SECURE",
        False,
        "Run the local Redis with a password and TLS only (credentials in the state folder).",
    )
    start_timeout: float = setting(
        "START_TIMEOUT", 180.0, "Seconds to wait for a local service to answer before giving up."
    )
