"""The echo peer: the worker's own Faust app, settings and batching, with the model and the cache
replaced by a constant label.

Everything a labelled record goes through is there (consume, batch, decode, encode, publish with acks=all,
commit), nothing of labelling is: its latency at a given rate is the transport floor that no labeller can
beat on the same machine. ``python -m bench.echo`` runs one, configured by the same STREAMNLP_* variables
as ``streamnlp worker``; ``bench e2e`` measures it at the same offered rates as the real worker.
"""

from __future__ import annotations

import logging.config
from collections.abc import Mapping, Sequence

from streamnlp.cache import LabelCache
from streamnlp.cli import serve
from streamnlp.config import WorkerSettings
from streamnlp.labeller import Job, Labeller, Outcome
from streamnlp.logs import logging_config
from streamnlp.metrics import Metrics
from streamnlp.model.labels import Label, Labels
from streamnlp.pipeline import Pipeline
from streamnlp.reload import ModelSlot


class ConstantModel:
    """Answers every text of every head with the head's first label; never called by the echo labeller,
    there so that the slot, the health page and the output record name a model."""

    name = "echo"
    version = "constant"

    def __init__(self, profiles: Mapping[str, Sequence[str]]) -> None:
        self.heads = {head: ("echo",) for heads in profiles.values() for head in heads}

    def tokens_read(self, heads: Sequence[str]) -> int:
        return 128

    def predict(self, texts: Sequence[str], heads: Sequence[str] | None = None) -> Sequence[Labels]:
        labels = Labels({head: Label("echo", 1.0) for head in heads or self.heads}, False)
        return [labels] * len(texts)


class EchoLabeller(Labeller):
    """A constant label for every job, at once: no cache lookup, no inference thread."""

    async def label(self, jobs: Sequence[Job]) -> tuple[list[Outcome], float]:
        constant = {
            p: Labels({h: Label("echo", 1.0) for h in heads}, False) for p, heads in self.profiles.items()
        }
        return [Outcome(constant[job.profile], True) for job in jobs], 0.0


def pipeline(settings: WorkerSettings) -> Pipeline:
    """The worker's pipeline with the echo labeller."""
    profiles = settings.profiles()
    metrics = Metrics()
    cache = LabelCache(None, ttl=settings.cache_ttl, lru_size=0)
    return Pipeline(
        settings.input_codec(),
        EchoLabeller(cache, profiles, metrics),
        ModelSlot(ConstantModel(profiles), metrics),
        topic_profiles=settings.topic_profiles(),
        output_topic=settings.output_topic_for,
        dlq_topic=settings.dlq_topic,
        max_value_bytes=settings.max_value_bytes,
        metrics=metrics,
    )


def main() -> None:
    settings = WorkerSettings.from_env()
    logs = logging_config(settings.log_level, settings.log_format)
    logging.config.dictConfig(logs)
    serve(settings, pipeline(settings), logs)


if __name__ == "__main__":
    main()
