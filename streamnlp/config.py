"""Every setting of streamnlp, declared once with its environment name and what it is for.

All names share the ``STREAMNLP_`` prefix; ``streamnlp config`` prints them with their defaults.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ._errors import ConfigError
from ._settings import Settings, setting
from .codecs import INPUT_FORMATS, InputCodec, InputFormat, input_codec
from .model.manifest import DEFAULT_MODEL_DIR, resolve_model_dir

__all__ = ["DEFAULT_PROFILE", "DEFAULT_PROFILES", "WorkerSettings"]


# Which model heads each profile asks for; STREAMNLP_PROFILE_HEADS redefines them or adds others.
DEFAULT_PROFILES: dict[str, tuple[str, ...]] = {
    "ecommerce": ("sentiment", "intent_ecommerce"),
    "banking": ("sentiment", "intent_banking"),
    "general": ("sentiment", "intent_general"),
    "assistant": ("sentiment", "intent_assistant"),
    "medical": ("sentiment", "medical_specialty"),
    "sentiment": ("sentiment",),
}
# The profile of an input topic named without one (``STREAMNLP_INPUTS=chats``) and of `streamnlp tag`.
DEFAULT_PROFILE = "general"


@dataclass(frozen=True, slots=True)
class WorkerSettings(Settings):
    """The labelling worker: where it reads, what it writes, how it batches, caches and reports."""

    brokers: str = setting(
        "BROKERS", "127.0.0.1:19092", "Kafka bootstrap servers, comma-separated host:port."
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = setting(
        "KAFKA_SECURITY_PROTOCOL", "PLAINTEXT", "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (any case)."
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
    input_format: InputFormat = setting(
        "INPUT_FORMAT",
        "json",
        "How input values are decoded: " + "; ".join(f"{k}: {v}" for k, v in INPUT_FORMATS.items()) + ".",
    )
    text_field: str = setting(
        "TEXT_FIELD",
        "text",
        "Dotted path of the text in a JSON value (input format json), e.g. message.body.",
    )
    id_field: str = setting(
        "ID_FIELD", "id", "Dotted path of the message id in a JSON value; missing: topic:partition:offset."
    )
    output_topic: str = setting(
        "OUTPUT_TOPIC",
        "streamnlp.labels",
        "Topic for labelled records; may use {topic} and {profile}, e.g. {topic}.labels.",
    )
    output_partition: Literal["input", "key"] = setting(
        "OUTPUT_PARTITION",
        "input",
        "input: each output and dead letter goes to the partition number its input came from when the "
        "destination topic has as many partitions as the input topic (co-partitioned whatever the input's "
        "partitioner), else by key; key: the producer's murmur2 partitioner on the input's key, which "
        "matches the input's partition only if the input was written with murmur2 too.",
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
    batch_max_size: int = setting(
        "BATCH_MAX_SIZE",
        32,
        "Most messages in one batch, and most texts in one model call. Batches are formed without a timer: "
        "each takes whatever has arrived when it may start (natural batching), so this bounds them only "
        "under heavy load.",
    )
    batches_in_flight: int = setting(
        "BATCHES_IN_FLIGHT",
        3,
        "Batches a worker works on at once: while one waits for the model or the brokers, the next are "
        "parsed and looked up, so a message reaches the model's queue without waiting for a slot (at half "
        "load, 6 pairs of workers: p99 214 ms with 3 against 389 ms with 2). Above 1, a partition's "
        "outputs may be published out of input order. Exactly-once mode always runs 1.",
    )
    producer_linger: float = setting(
        "PRODUCER_LINGER",
        0.001,
        "Seconds the producer holds outputs to send those of several small batches in one request; "
        "measured with `python -m bench sweep` (1 ms cut the producer's requests and the queueing they "
        "caused at moderate load; it adds at most that to a record's latency).",
    )
    model_path: Path = setting(
        "MODEL_PATH",
        DEFAULT_MODEL_DIR,
        "Directory of the model (or a symlink to it). A new version there is loaded without a restart.",
    )
    model_poll_interval: float = setting(
        "MODEL_POLL_INTERVAL",
        5.0,
        "Seconds between looks at STREAMNLP_MODEL_PATH's manifest for a new version (a rewritten manifest "
        "or a flipped symlink); 0: reload on SIGHUP only.",
    )
    onnx_threads: int = setting(
        "ONNX_THREADS", 1, "onnxruntime intra-op threads; one thread per worker process is the safe default."
    )
    model_process: bool = setting(
        "MODEL_PROCESS",
        True,
        "Run the model in a child process of the worker (true) rather than in one of its threads: inference "
        "then never waits for the interpreter lock the event loops hold (measured in bench/RESULTS.md, "
        "issue 13), and a crash inside the model costs a restart of the child, not of the worker.",
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
    data_dir: Path = setting(
        "DATA_DIR",
        Path(tempfile.gettempdir()) / "streamnlp",
        "Folder of the worker's own state (Faust's data directory, one subfolder per group); never the "
        "working directory, so a read-only root with a writable /tmp works.",
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
            topic, profile = topic.strip(), (profile.strip() or DEFAULT_PROFILE)
            if not topic:
                raise ConfigError(f"STREAMNLP_INPUTS: {item!r} has no topic")
            if profile not in profiles:
                raise ConfigError(f"STREAMNLP_INPUTS: unknown profile {profile!r}; known: {sorted(profiles)}")
            mapping[topic] = profile
        if not mapping:
            raise ConfigError("STREAMNLP_INPUTS names no input topic")
        return mapping

    def model_dir(self) -> Path:
        """STREAMNLP_MODEL_PATH as a directory to open: a relative path that is not there is looked up
        where the package is installed too (the wheel's ``streamnlp/models``, or the source tree of an
        editable install), so the shipped model is found from any folder."""
        return resolve_model_dir(self.model_path)

    def output_topic_for(self, topic: str, profile: str) -> str:
        """Where the labelled record of an input from ``topic`` labelled with ``profile`` goes."""
        return self.output_topic.format(topic=topic, profile=profile)

    def output_topics(self) -> list[str]:
        """Every topic the worker may publish to; the worker creates the missing ones at start.

        A record may choose its profile, so a ``{profile}`` template can name any profile's topic."""
        profiles = self.profiles() if "{profile}" in self.output_topic else None
        names = {
            self.output_topic_for(topic, profile)
            for topic, default in self.topic_profiles().items()
            for profile in (profiles or [default])
        }
        return [*sorted(names), self.dlq_topic]

    def input_codec(self) -> InputCodec:
        if self.input_format == "json" and not self.text_field.strip():
            raise ConfigError(
                "STREAMNLP_TEXT_FIELD is empty; for plain-text values set STREAMNLP_INPUT_FORMAT=text"
            )
        return input_codec(
            self.input_format,
            text_field=self.text_field,
            id_field=self.id_field,
            known_profiles=self.profiles(),
        )
