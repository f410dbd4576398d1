"""streamnlp: real-time sentiment and intent labels for Kafka text streams, on CPU workers."""

from ._errors import ConfigError, ModelError, RecordError, ServiceError, ServiceNotRunning, StreamNLPError

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "ModelError",
    "RecordError",
    "ServiceError",
    "ServiceNotRunning",
    "StreamNLPError",
    "__version__",
]
