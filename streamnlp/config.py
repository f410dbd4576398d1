"""Every setting of streamnlp, declared once with its environment name and what it is for.

All names share the ``STREAMNLP_`` prefix; ``streamnlp config`` prints them with their defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ._errors import ConfigError
from ._settings import Settings, setting

__all__ = ["DEFAULT_PROFILES", "ServiceSettings", "WorkerSettings"]


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


# Which model heads each profile asks for. `medical` has no intent data offline: it labels sentiment plus
# the general intents until a team adds its own head (`streamnlp model add-head`) and points the
# profile at it with STREAMNLP_PROFILE_HEADS.
DEFAULT_PROFILES: dict[str, tuple[str, ...]] = {
    "ecommerce": ("sentiment", "intent_ecommerce"),
    "banking": ("sentiment", "intent_banking"),
    "general": ("sentiment", "intent_general"),
    "medical": ("sentiment", "intent_general"),
    "sentiment": ("sentiment",),
}


@dataclass(frozen=True, slots=True)
class WorkerSettings(Settings):
    """The labelling worker: where it reads, what it writes, how it batches, caches and reports."""

    brokers: str = setting(
        "BROKERS", "127.0.0.1:19092", "Kafka bootstrap servers, comma-separated host:port."
    )
    kafka_security_protocol: str = setting(
        "KAFKA_SECURITY_PROTOCOL", "PLAINTEXT", "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."
    )
    kafka_sasl_mechanism: str = setting(
        "KAFKA_SASL_MECHANISM", "SCRAM-SHA-512", "SASL mechanism when the protocol is SASL_*."
    )
    kafka_sasl_username: str = setting("KAFKA_SASL_USERNAME", "", "SASL user name.")
    kafka_sasl_password: str = setting("KAFKA_SASL_PASSWORD", "", "SASL password (never printed).")
    kafka_ssl_cafile: Path | None = setting(
        "KAFKA_SSL_CAFILE", None, "CA bundle that signed the brokers' certificates (SSL protocols)."
    )
    group: str = setting(
        "GROUP", "streamnlp", "Consumer group (and Faust app id): replicas with one group share partitions."
    )
    inputs: tuple[str, ...] = setting(
        "INPUTS",
        ("chats=ecommerce",),
        "Input topics and their profiles, comma-separated topic=profile, e.g. chats=ecommerce,notes=medical.",
    )
    profile_heads: tuple[str, ...] = setting(
        "PROFILE_HEADS",
        (),
        "Profiles to add or redefine, comma-separated profile=head+head, e.g. medical=sentiment+intent_x.",
    )
    text_field: str = setting(
        "TEXT_FIELD",
        "text",
        "Dotted path of the text in a JSON value (e.g. message.body); empty: the whole value is UTF-8 text.",
    )
    id_field: str = setting(
        "ID_FIELD", "id", "Dotted path of the message id in a JSON value; missing: topic:partition:offset."
    )
    output_topic: str = setting(
        "OUTPUT_TOPIC",
        "streamnlp.labels",
        "Topic for labelled records; may use {topic} and {profile}, e.g. {topic}.labels.",
    )
    dlq_topic: str = setting(
        "DLQ_TOPIC", "streamnlp.dlq", "Dead-letter topic: records that cannot be labelled, with the reason."
    )
    topic_partitions: int = setting(
        "TOPIC_PARTITIONS", 4, "Partitions of topics the worker creates when they are missing."
    )
    topic_replication: int = setting(
        "TOPIC_REPLICATION", 1, "Replication factor of topics the worker creates when they are missing."
    )
    commit_interval: float = setting(
        "COMMIT_INTERVAL",
        0.2,
        "Seconds between offset commits: at most this much labelled work is repeated after a crash.",
    )
    processing_guarantee: Literal["at_least_once", "exactly_once"] = setting(
        "PROCESSING_GUARANTEE",
        "at_least_once",
        "at_least_once: a crash may repeat the batches in flight; exactly_once: outputs and input offsets "
        "commit in one Kafka transaction per input partition (readers must use read_committed).",
    )
    session_timeout: float = setting(
        "SESSION_TIMEOUT",
        10.0,
        "Seconds without heartbeat before the group gives a dead worker's partitions to the others.",
    )
    batch_max_size: int = setting("BATCH_MAX_SIZE", 32, "Most messages in one micro-batch.")
    batches_in_flight: int = setting(
        "BATCHES_IN_FLIGHT",
        2,
        "Micro-batches a worker works on at once: while one waits for the model or the brokers, the next "
        "is parsed and looked up. Above 1, a partition's outputs may be published out of input order. "
        "Exactly-once mode always runs 1.",
    )
    batch_max_wait: float = setting(
        "BATCH_MAX_WAIT", 0.005, "Seconds a micro-batch waits to fill before it runs anyway."
    )
    model_path: Path = setting("MODEL_PATH", Path("models/squeezebert-int8"), "Directory of the model.")
    onnx_threads: int = setting(
        "ONNX_THREADS", 1, "onnxruntime intra-op threads; one thread per worker process is the safe default."
    )
    redis_url: str = setting(
        "REDIS_URL",
        "redis://127.0.0.1:16379/0",
        "Redis for the label cache (rediss:// for TLS, redis://:PASSWORD@host with a password); empty: none.",
    )
    redis_ca_file: Path | None = setting(
        "REDIS_CA_FILE", None, "CA bundle that signed Redis's TLS certificate."
    )
    cache_ttl: int = setting("CACHE_TTL", 86400, "Seconds a cached label lives in Redis.")
    cache_lru_size: int = setting(
        "CACHE_LRU_SIZE", 10000, "Labels kept in the in-process LRU in front of Redis (0 disables it)."
    )
    cache_secret: str = setting(
        "CACHE_SECRET", "", "HMAC key of cache keys, so text cannot be recovered by guessing (never printed)."
    )
    max_value_bytes: int = setting(
        "MAX_VALUE_BYTES", 16 * 1024 * 1024, "Larger input values go to the dead-letter topic unparsed."
    )
    web_host: str = setting("WEB_HOST", "127.0.0.1", "Address of the metrics and health endpoints.")
    web_port: int = setting("WEB_PORT", 6066, "Port of /metrics, /health and /ready.")
    log_level: str = setting("LOG_LEVEL", "info", "debug, info, warning or error.")
    log_format: str = setting("LOG_FORMAT", "json", "json (one object per line) or text.")

    def profiles(self) -> dict[str, tuple[str, ...]]:
        """Every profile the worker knows: the built-in ones plus STREAMNLP_PROFILE_HEADS."""
        profiles = dict(DEFAULT_PROFILES)
        for item in self.profile_heads:
            name, sep, heads = item.partition("=")
            if not sep or not name.strip() or not heads.strip():
                raise ConfigError(f"STREAMNLP_PROFILE_HEADS: {item!r} is not profile=head+head")
            profiles[name.strip()] = tuple(h.strip() for h in heads.split("+") if h.strip())
        return profiles

    def topic_profiles(self) -> dict[str, str]:
        """Input topic -> profile, checked against the known profiles."""
        profiles = self.profiles()
        mapping: dict[str, str] = {}
        for item in self.inputs:
            topic, _, profile = item.partition("=")
            topic, profile = topic.strip(), (profile.strip() or "general")
            if not topic:
                raise ConfigError(f"STREAMNLP_INPUTS: {item!r} has no topic")
            if profile not in profiles:
                raise ConfigError(f"STREAMNLP_INPUTS: unknown profile {profile!r}; known: {sorted(profiles)}")
            mapping[topic] = profile
        if not mapping:
            raise ConfigError("STREAMNLP_INPUTS names no input topic")
        return mapping

    def output_topic_for(self, topic: str, profile: str) -> str:
        return self.output_topic.format(topic=topic, profile=profile)
