"""The one exception tree of streamnlp.

Every error the library raises on purpose derives from :class:`StreamNLPError` and says whether
trying again later can succeed (``retriable``), the way Kafka client errors do:

    StreamNLPError
    ├── ConfigError            a setting is missing or malformed (not retriable: fix the config)
    └── ServiceError           a local service (Kafka, Redis) could not be installed, started or reached
        └── ServiceNotRunning  a service a caller needs is not up; the message says how to start it
"""

from __future__ import annotations


class StreamNLPError(Exception):
    """Base class of every error streamnlp raises on purpose."""

    retriable: bool = False


class ConfigError(StreamNLPError):
    """A setting is missing or malformed."""


class ServiceError(StreamNLPError):
    """A local service could not be installed, started, stopped or reached."""


class ServiceNotRunning(ServiceError):
    """A service that a caller needs is not answering; starting it may fix that."""

    retriable = True
