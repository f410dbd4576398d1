"""Prometheus metrics of one worker, in a registry of its own (served on /metrics).

Label values have bounded cardinality: topics and profiles come from the settings, heads and labels
from the loaded models' fixed label sets, reasons from the codecs' fixed codes.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.messages_in = Counter("streamnlp_messages_in", "Messages consumed.", ["topic"], registry=r)
        self.labelled = Counter(
            "streamnlp_labelled", "Records labelled and published.", ["profile"], registry=r
        )
        self.labels = Counter(
            "streamnlp_labels",
            "Labels published, by input topic, head and label: what the stream is about.",
            ["topic", "head", "label"],
            registry=r,
        )
        self.abandoned = Counter(
            "streamnlp_abandoned",
            "Records consumed but not published because their partition went on without them (a rebalance "
            "or this worker stopping); the partition's owner reads them again.",
            registry=r,
        )
        self.rebalance_pause_seconds = Histogram(
            "streamnlp_rebalance_pause_seconds",
            "How long each rebalance kept this replica from labelling: from the revocation of its partitions "
            "(batches in flight are finished and committed first) to its flow resuming.",
            buckets=(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
            registry=r,
        )
        self.dead_letters = Counter(
            "streamnlp_dead_letters", "Records sent to the dead-letter topic.", ["reason"], registry=r
        )
        self.truncated = Counter("streamnlp_truncated", "Texts cut to the model's window.", registry=r)
        self.cache_hits = Counter(
            "streamnlp_cache_hits", "Labels from the cache (or shared with a batch in flight).", registry=r
        )
        self.cache_misses = Counter("streamnlp_cache_misses", "Labels not in the cache.", registry=r)
        self.cache_errors = Counter("streamnlp_cache_errors", "Failed Redis round trips.", registry=r)
        self.model_texts = Counter("streamnlp_model_texts", "Texts sent through the model.", registry=r)
        self.batch_size = Histogram(
            "streamnlp_batch_size",
            "Messages per batch (whatever had arrived when it started).",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.inference_seconds = Histogram(
            "streamnlp_inference_seconds", "Time of each model call.", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.model_batch_size = Histogram(
            "streamnlp_model_batch_size",
            "Texts per model call: whatever was queued when the model came free (natural batching).",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.end_to_end_seconds = Histogram(
            "streamnlp_end_to_end_seconds",
            "From the input's Kafka timestamp to its output being acknowledged.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.consumer_lag = Gauge(
            "streamnlp_consumer_lag",
            "Messages behind the end of the partition.",
            ["topic", "partition"],
            registry=r,
        )

        self.model_loaded = Gauge(
            "streamnlp_model_loaded",
            "1 for the model version that labels newly consumed messages.",
            ["name", "version"],
            registry=r,
        )
        self.model_reloads = Counter(
            "streamnlp_model_reloads", "New model versions loaded without a restart.", registry=r
        )
        self.model_reload_failures = Counter(
            "streamnlp_model_reload_failures",
            "Model versions refused at reload (the previous one kept serving).",
            registry=r,
        )
        self.partition_assignments = Counter(
            "streamnlp_partition_assignments",
            "Rebalances that assigned this worker its partitions (1 for a worker that never rebalanced).",
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
