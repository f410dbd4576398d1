"""The one exception tree of streamnlp.

Every error the library raises on purpose derives from :class:`StreamNLPError` and says whether
trying again later can succeed (``retriable``), the way Kafka client errors do:

    StreamNLPError
    ├── ConfigError            a setting is missing or malformed (not retriable: fix the config)
    ├── ServiceError           a local service (Kafka, Redis) could not be installed, started or reached
    │   └── ServiceNotRunning  a service a caller needs is not up; the message says how to start it
    ├── RecordError            one input record cannot be labelled; it goes to the dead-letter topic
    └── ModelError             a model directory is missing, corrupt, lacks a head a profile needs, or
                               failed on a batch (onnxruntime's and tokenizers' errors become this)

Errors from other libraries are mapped into this tree once, where they enter: Redis errors in
``cache``, onnxruntime and tokenizers errors in ``model.runtime``, Kafka errors stay Faust's (it owns the
consumer and producer). The command line turns any ``StreamNLPError`` into one line on stderr, exit code
1, or 75 (EX_TEMPFAIL) when ``retriable`` says trying again later may work.
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


class RecordError(StreamNLPError):
    """One input record cannot be labelled (not retriable: the same bytes fail the same way).

    ``reason`` is a short stable code (``invalid_json``, ``missing_field``, ...) for the dead-letter
    record and the metrics; the message says what exactly is wrong, without quoting the text.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class ModelError(StreamNLPError):
    """A model directory is missing, incomplete or corrupt, lacks a head a profile needs, or the model
    failed on a batch. Not retriable: the same directory or text fails the same way."""
