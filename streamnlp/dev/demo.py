"""The README demo: local services, one worker, sample chats in, labels printed as they arrive."""

from __future__ import annotations

import asyncio
import time
import uuid
from importlib import resources
from pathlib import Path

import click
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from .._errors import ServiceError
from ..codecs import render_record
from ..config import WorkerSettings
from ..kafka import client_kwargs, ensure_topics
from .services import KafkaCluster, RedisServer
from .settings import ServiceSettings
from .worker_process import WorkerProcess


def sample_chats() -> list[str]:
    text = (resources.files("streamnlp.dev") / "demo_chats.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


async def _stream(settings: WorkerSettings, topic: str, output: str, chats: list[str], rate: float) -> int:
    producer = AIOKafkaProducer(**client_kwargs(settings), acks="all")
    consumer = AIOKafkaConsumer(output, **client_kwargs(settings), auto_offset_reset="earliest")
    await producer.start()
    await consumer.start()
    run = uuid.uuid4().hex[:6]
    texts = {f"{run}-{i}": chat for i, chat in enumerate(chats)}
    seen: set[str] = set()

    async def produce() -> None:
        for record_id, chat in texts.items():
            await producer.send_and_wait(
                topic, key=record_id.encode(), value=orjson.dumps({"id": record_id, "text": chat})
            )
            await asyncio.sleep(1 / rate)

    try:
        sender = asyncio.create_task(produce())
        deadline = time.monotonic() + 60 + len(texts) / rate
        while len(seen) < len(texts) and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for message in records:
                    record = orjson.loads(message.value)
                    if record["id"] in texts and record["id"] not in seen:
                        seen.add(record["id"])
                        click.echo(render_record(record, texts[record["id"]]))
        await sender
    finally:
        await producer.stop()
        await consumer.stop()
    return len(seen)


async def produce_samples(settings: WorkerSettings, topic: str, *, rate: float, forever: bool) -> int:
    """Send the sample chats to ``topic`` at ``rate`` per second (cycling when ``forever``)."""
    await ensure_topics(settings, [topic])
    producer = AIOKafkaProducer(**client_kwargs(settings), acks="all")
    await producer.start()
    sent = 0
    try:
        while True:
            for chat in sample_chats():
                record_id = uuid.uuid4().hex
                await producer.send_and_wait(
                    topic, key=record_id.encode(), value=orjson.dumps({"id": record_id, "text": chat})
                )
                sent += 1
                await asyncio.sleep(1 / rate)
            if not forever:
                return sent
    finally:
        await producer.stop()


def run_demo(rate: float = 8.0, repeat: bool = True) -> None:
    """Start what is missing, label the sample chats (twice: the second pass comes from the cache)."""
    services = ServiceSettings.from_env()
    redis, kafka = RedisServer(services), KafkaCluster(services)
    click.echo("starting local Redis and Kafka (first run resolves the Kafka jars with Maven) ...")
    started = [s for s in (redis, kafka) if s.start()]
    topic, output = "demo.chats", "demo.labels"
    env = {
        "STREAMNLP_BROKERS": kafka.bootstrap_servers,
        "STREAMNLP_REDIS_URL": redis.url,
        "STREAMNLP_INPUTS": f"{topic}=ecommerce",
        "STREAMNLP_OUTPUT_TOPIC": output,
        "STREAMNLP_DLQ_TOPIC": "demo.dlq",
        "STREAMNLP_GROUP": "streamnlp-demo",
    }
    worker = WorkerProcess(env, Path(services.state_dir) / "demo-worker.log")
    settings = WorkerSettings.from_env(worker.env)
    click.echo(f"starting a worker (log: {worker.log}, metrics: http://127.0.0.1:{worker.port}/metrics) ...")
    try:
        try:
            worker.start()
        except ServiceError as exc:
            raise click.ClickException(str(exc)) from None
        chats = sample_chats()
        for attempt in range(2 if repeat else 1):
            click.echo(
                click.style(
                    f"\n--- streaming {len(chats)} chats to {topic!r}" + (" again" if attempt else ""),
                    bold=True,
                )
            )
            got = asyncio.run(_stream(settings, topic, output, chats, rate))
            if not worker.alive():
                raise click.ClickException(f"the worker exited; see {worker.log}")
            if got < len(chats):
                raise click.ClickException(
                    f"only {got} of {len(chats)} chats came back labelled; see {worker.log}"
                )
        click.echo(f"\nall {len(chats)} chats labelled, twice (the second pass from the cache).")
    finally:
        worker.stop(timeout=30)
        for service in started:
            service.stop()
        if started:
            click.echo("stopped the services the demo started.")
