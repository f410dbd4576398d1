"""The ``streamnlp`` command line."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import click

from . import __version__
from ._cli import ErrorBoundary
from ._errors import ModelError
from ._settings import read_env_file
from .config import DEFAULT_PROFILE, WorkerSettings

if TYPE_CHECKING:
    from .dev.settings import ServiceSettings
    from .model.isolated import ProcessModel
    from .model.runtime import LabelModel
    from .pipeline import Pipeline


@click.group(cls=ErrorBoundary, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="streamnlp")
def main() -> None:
    """Sentiment and intent labels for Kafka text streams, on CPU workers.

    \b
    Quick start:
      streamnlp services up      start a local Kafka and Redis
      streamnlp services status  show what is running
      streamnlp services down    stop them again
    """


@main.group()
def services() -> None:
    """Run a local Apache Kafka (KRaft) and Redis for development, tests and the demo.

    Ports, folders and the broker count come from STREAMNLP_* variables (see `streamnlp config`) or
    the options below. Services run in the background; their PIDs, logs and data live under the
    state folder (STREAMNLP_STATE_DIR, default ./.state). Development only: a deployed worker never
    imports this code.
    """


def _settings(kafka_port: int | None, brokers: int | None, redis_port: int | None) -> ServiceSettings:
    from .dev.settings import ServiceSettings

    overrides = {
        name: value
        for name, value in (
            ("kafka_port", kafka_port),
            ("kafka_brokers", brokers),
            ("redis_port", redis_port),
        )
        if value is not None
    }
    return ServiceSettings.from_env(**overrides)


_service_options = [
    click.option("--kafka-port", type=int, help="Client port of the first broker [STREAMNLP_KAFKA_PORT]."),
    click.option("--brokers", type=click.IntRange(1, 9), help="Number of brokers [STREAMNLP_KAFKA_BROKERS]."),
    click.option("--redis-port", type=int, help="Redis port [STREAMNLP_REDIS_PORT]."),
    click.option("--only", type=click.Choice(["kafka", "redis"]), help="Act on one service instead of both."),
]


def _with_service_options(fn):  # type: ignore[no-untyped-def]
    for option in reversed(_service_options):
        fn = option(fn)
    return fn


@services.command("up")
@_with_service_options
def services_up(
    kafka_port: int | None, brokers: int | None, redis_port: int | None, only: str | None
) -> None:
    """Start the services (installing what is missing) and wait until they answer."""
    from .dev.services import KafkaCluster, RedisServer, kafka_version

    settings = _settings(kafka_port, brokers, redis_port)
    if only in (None, "redis"):
        redis = RedisServer(settings)
        began = time.monotonic()
        started = redis.start()
        state = f"started in {time.monotonic() - began:.1f}s" if started else "already running"
        click.echo(f"redis   {redis.display_url}  Redis {redis.version()}  {state}")
    if only in (None, "kafka"):
        kafka = KafkaCluster(settings)
        began = time.monotonic()
        started = kafka.start()
        state = f"started in {time.monotonic() - began:.1f}s" if started else "already running"
        version = kafka.version_from_log() or kafka_version()
        security = f"  SASL_SSL, CA {kafka.ca_file}" if kafka.secure else ""
        click.echo(f"kafka   {kafka.bootstrap_servers}  Apache Kafka {version} (KRaft){security}  {state}")
    if settings.kafka_security == "sasl_ssl" or settings.redis_secure:
        click.echo(f"credentials: {settings.state_dir.resolve() / 'credentials.json'} (mode 600)")


@services.command("down")
@_with_service_options
def services_down(
    kafka_port: int | None, brokers: int | None, redis_port: int | None, only: str | None
) -> None:
    """Stop the services this tool started (found by their PID files); nothing else is touched."""
    from .dev.services import KafkaCluster, RedisServer

    settings = _settings(kafka_port, brokers, redis_port)
    if only in (None, "kafka"):
        stopped = KafkaCluster(settings).stop()
        click.echo(f"kafka   {'stopped nodes ' + str(stopped) if stopped else 'was not running'}")
    if only in (None, "redis"):
        click.echo(f"redis   {'stopped' if RedisServer(settings).stop() else 'was not running'}")


@services.command("status")
@_with_service_options
def services_status(
    kafka_port: int | None, brokers: int | None, redis_port: int | None, only: str | None
) -> None:
    """Show which services are running; exits 1 when one of them is not."""
    from .dev.services import KafkaCluster, RedisServer

    settings = _settings(kafka_port, brokers, redis_port)
    healthy = True
    if only in (None, "kafka"):
        kafka = KafkaCluster(settings)
        for node in kafka.nodes:
            pid = node.process.pid()
            healthy &= pid is not None
            click.echo(f"kafka-{node.node_id} 127.0.0.1:{node.port}  {'pid ' + str(pid) if pid else 'down'}")
    if only in (None, "redis"):
        redis = RedisServer(settings)
        pid = redis.process.pid()
        healthy &= pid is not None
        click.echo(f"redis   127.0.0.1:{redis.port}  {'pid ' + str(pid) if pid else 'down'}")
    sys.exit(0 if healthy else 1)


@services.command("topic")
@click.argument("name")
@click.option("--partitions", type=click.IntRange(1), default=4, show_default=True, help="Partitions.")
@click.option("--kafka-port", type=int, help="Client port of the first broker [STREAMNLP_KAFKA_PORT].")
def services_topic(name: str, partitions: int, kafka_port: int | None) -> None:
    """Create topic NAME on the local Kafka with PARTITIONS partitions (nothing if it exists).

    Workers create missing topics with STREAMNLP_TOPIC_PARTITIONS partitions; create an input topic
    yourself to choose its partition count (the most replicas that can share it)."""
    import asyncio

    from .dev.services import KafkaCluster
    from .kafka import ensure_topics

    kafka = KafkaCluster(_settings(kafka_port, None, None))
    settings = WorkerSettings.from_env(brokers=kafka.bootstrap_servers)
    created = asyncio.run(ensure_topics(settings, [name], partitions=partitions))
    state = f"created with {partitions} partitions" if created else "already exists"
    click.echo(f"topic {name} on {kafka.bootstrap_servers}: {state}")


def _describe(settings: type[ServiceSettings] | type[WorkerSettings]) -> str:
    lines = []
    for env, default, doc in settings.describe():
        shown = ",".join(default) if isinstance(default, tuple) else ("" if default is None else default)
        lines.append(f"  {env}={shown}\n      {doc}")
    return "\n".join(lines)


@main.command("config")
def config_cmd() -> None:
    """List every STREAMNLP_* setting with its default and purpose."""
    from .dev.settings import ServiceSettings

    click.echo("Worker settings:\n" + _describe(WorkerSettings))
    click.echo("\nLocal services (streamnlp services):\n" + _describe(ServiceSettings))


def _worker_settings(config_file: Path | None, **overrides: object) -> WorkerSettings:
    environ = {**read_env_file(config_file), **os.environ} if config_file else dict(os.environ)
    return WorkerSettings.from_env(environ, **overrides)


def _load_model(settings: WorkerSettings, *, serving: bool = False) -> LabelModel | ProcessModel:
    """The model STREAMNLP_MODEL_PATH names, checked against every configured profile; for a worker
    (``serving``) in a process of its own when STREAMNLP_MODEL_PROCESS says so."""
    from .model.check import load_serving

    try:
        return load_serving(
            settings.model_dir(),
            settings.profiles(),
            threads=settings.onnx_threads,
            own_process=serving and settings.model_process,
        )
    except ModelError as exc:  # the one place that knows which setting named the directory
        raise ModelError(
            f"cannot load the model (STREAMNLP_MODEL_PATH={settings.model_path}): {exc}"
        ) from exc


@main.command(
    "worker",
    epilog="\b\nSettings (environment):\n" + _describe(WorkerSettings),
    context_settings={"max_content_width": 120},
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File of STREAMNLP_NAME=value lines; environment variables win over it.",
)
def worker_cmd(config_file: Path | None) -> None:
    """Run a labelling worker: consume STREAMNLP_INPUTS, publish labels, until stopped.

    Start more replicas with the same STREAMNLP_GROUP to share the partitions. SIGTERM or Ctrl-C stops
    the worker cleanly; SIGHUP reloads the model (as does a new version at STREAMNLP_MODEL_PATH).
    Missing topics are created with STREAMNLP_TOPIC_PARTITIONS partitions.
    Metrics, health and readiness: http://STREAMNLP_WEB_HOST:STREAMNLP_WEB_PORT/{metrics,health,ready}.
    """
    import logging
    import logging.config

    from .logs import logging_config
    from .pipeline import Pipeline

    settings = _worker_settings(config_file)
    logs = logging_config(settings.log_level, settings.log_format)
    logging.config.dictConfig(logs)  # from the first line on, as Faust configures it later
    model = _load_model(settings, serving=True)
    serve(settings, Pipeline.from_settings(settings, model), logs)


def serve(settings: WorkerSettings, pipeline: Pipeline, logs: dict[str, Any]) -> None:
    """Create the missing topics, then run the Faust app around ``pipeline`` until it is stopped.

    The worker command's body; the benchmarks' echo peer runs the same app with a constant labeller."""
    import asyncio
    import logging

    import faust

    from .kafka import ensure_topics, partition_counts
    from .workers import create_app

    topics = settings.topic_profiles()
    asyncio.run(ensure_topics(settings, [*topics, *settings.output_topics()]))
    partitions = asyncio.run(partition_counts(settings, [*topics, *settings.output_topics()]))
    model = pipeline.model
    logging.getLogger("streamnlp.worker").info(
        "streamnlp worker: model %s %s; inputs %s; group %s; brokers %s",
        model.name,
        model.version,
        topics,
        settings.group,
        settings.brokers,
    )
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # Faust creates only its own subfolder
    app = create_app(settings, pipeline, partitions=partitions)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    faust.Worker(
        app,
        loop=loop,
        loglevel=settings.log_level,
        logging_config=logs,
    ).execute_from_commandline()


@main.command("tag")
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option(
    "--profile", default=DEFAULT_PROFILE, show_default=True, help="Profile (which heads) to label with."
)
@click.option("--lines", "kind", flag_value="lines", default=True, help="Each line is a text (default).")
@click.option("--jsonl", "kind", flag_value="jsonl", help="Each line is a JSON object holding the text.")
@click.option("--csv", "kind", flag_value="csv", help="A CSV file with a header row; one text per row.")
@click.option(
    "--column",
    help="JSONL field (dotted path) or CSV column of the text [default: STREAMNLP_TEXT_FIELD, text].",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "text"]),
    default="json",
    show_default=True,
    help="json: one output record per line; text: one readable line per input (labels, then the text).",
)
@click.option("--cache/--no-cache", default=False, show_default=True, help="Use Redis (STREAMNLP_REDIS_URL).")
def tag_cmd(
    files: tuple[str, ...], profile: str, kind: str, column: str | None, fmt: str, cache: bool
) -> None:
    """Label texts from FILES (or stdin) without Kafka, through the worker's own pipeline.

    Prints one output per input on stdout; an input that cannot be labelled prints its dead letter on
    stderr and makes the exit code 2.

    \b
    Examples:
      echo "where is my parcel? it's a week late" | streamnlp tag --profile ecommerce --format text
      streamnlp tag --csv --column message tickets.csv
    """
    import asyncio

    from .codecs import render_line
    from .envelope import Envelope, Source
    from .pipeline import Pipeline

    names = files or ("-",)
    overrides: dict[str, object] = {"inputs": tuple(f"{name}={profile}" for name in names)}
    if kind == "lines":
        overrides["input_format"] = "text"
    else:
        overrides["input_format"] = "json"
        if column:
            overrides["text_field"] = column
    settings = WorkerSettings.from_env(**overrides)
    pipeline = Pipeline.from_settings(settings, _load_model(settings), use_redis=cache)

    async def run() -> int:
        failed = 0
        for name in names:
            with click.open_file(name, "rb") as stream:
                batch: list[Envelope] = []
                for number, value in _values(stream, kind):
                    batch.append(pipeline.envelope(Source(name, 0, number), None, value))
                    if len(batch) >= settings.batch_max_size:
                        failed += await emit(batch)
                        batch = []
                failed += await emit(batch)
        await pipeline.close()
        return failed

    async def emit(batch: list[Envelope]) -> int:
        failed = 0
        for envelope in await pipeline.process(batch):
            output = envelope.output
            assert output is not None
            failed += output.dead
            if fmt == "json":
                click.echo(output.value, err=output.dead)
            elif envelope.failure is not None:
                click.echo(f"{envelope.source.fallback_id}: {envelope.failure}", err=True)
            else:
                click.echo(render_line(envelope))
        return failed

    sys.exit(2 if asyncio.run(run()) else 0)


def _values(stream: BinaryIO, kind: str) -> Iterator[tuple[int, bytes]]:
    """(line or row number, value) of each non-blank input; a CSV row becomes a JSON object."""
    if kind != "csv":
        for number, line in enumerate(stream):
            value = line.rstrip(b"\r\n")
            if value.strip():
                yield number, value
        return
    import csv
    import io

    import orjson

    rows = csv.DictReader(io.TextIOWrapper(stream, encoding="utf-8", newline=""))
    for number, row in enumerate(rows, 1):
        yield number, orjson.dumps({k: v for k, v in row.items() if k is not None})


@main.command("demo")
@click.option("--rate", type=float, default=8.0, show_default=True, help="Chats produced per second.")
def demo_cmd(rate: float) -> None:
    """Start Kafka, Redis and a worker, stream sample e-commerce chats, print their labels as they arrive.

    Services that were not running are stopped again at the end.
    """
    from .dev.demo import run_demo

    run_demo(rate=rate)


@main.command("produce-samples")
@click.option("--topic", default="chats", show_default=True, help="Topic to write to.")
@click.option("--rate", type=float, default=5.0, show_default=True, help="Messages per second.")
@click.option("--forever", is_flag=True, help="Cycle through the samples until stopped.")
def produce_samples_cmd(topic: str, rate: float, forever: bool) -> None:
    """Write the sample e-commerce chats to TOPIC as JSON records (the compose demo producer)."""
    import asyncio

    from .dev.demo import produce_samples

    settings = WorkerSettings.from_env()
    sent = asyncio.run(produce_samples(settings, topic, rate=rate, forever=forever))
    click.echo(f"sent {sent} chats to {topic}", err=True)


def _register_model_commands() -> None:
    from .model.cli import model

    main.add_command(model)


_register_model_commands()

if __name__ == "__main__":
    main()
