"""The ``streamnlp`` command line."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click

from . import __version__
from ._errors import ConfigError, StreamNLPError
from ._settings import read_env_file
from .config import ServiceSettings, WorkerSettings


class _Group(click.Group):
    """Turns our own errors into one clear line and exit code 1 instead of a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except StreamNLPError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
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
    state folder (STREAMNLP_STATE_DIR, default ./.state).
    """


def _settings(kafka_port: int | None, brokers: int | None, redis_port: int | None) -> ServiceSettings:
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
    from .services import KafkaCluster, RedisServer, kafka_version

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
    from .services import KafkaCluster, RedisServer

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
    from .services import KafkaCluster, RedisServer

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


def _describe(settings: type[ServiceSettings] | type[WorkerSettings]) -> str:
    lines = []
    for env, default, doc in settings.describe():
        shown = ",".join(default) if isinstance(default, tuple) else ("" if default is None else default)
        lines.append(f"  {env}={shown}\n      {doc}")
    return "\n".join(lines)


@main.command("config")
def config_cmd() -> None:
    """List every STREAMNLP_* setting with its default and purpose."""
    click.echo("Worker settings:\n" + _describe(WorkerSettings))
    click.echo("\nLocal services (streamnlp services):\n" + _describe(ServiceSettings))


def _worker_settings(config_file: Path | None, **overrides: object) -> WorkerSettings:
    environ = {**read_env_file(config_file), **os.environ} if config_file else dict(os.environ)
    return WorkerSettings.from_env(environ, **overrides)


def _load_model(settings: WorkerSettings):  # type: ignore[no-untyped-def]
    from .model.runtime import LabelModel, ModelError

    try:
        return LabelModel.load(settings.model_path, threads=settings.onnx_threads)
    except ModelError as exc:
        raise ConfigError(
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
    the worker cleanly. Missing topics are created with STREAMNLP_TOPIC_PARTITIONS partitions.
    Metrics, health and readiness: http://STREAMNLP_WEB_HOST:STREAMNLP_WEB_PORT/{metrics,health,ready}.
    """
    import asyncio

    import faust

    from workers import create_app

    from .kafka import ensure_topics
    from .logs import logging_config
    from .pipeline import Pipeline

    settings = _worker_settings(config_file)
    topics = settings.topic_profiles()
    model = _load_model(settings)
    pipeline = Pipeline.from_settings(settings, model)
    # A record may choose its profile, so a {profile} template can name any profile's topic.
    profiles = settings.profiles() if "{profile}" in settings.output_topic else None
    outputs = {
        settings.output_topic_for(topic, profile)
        for topic, default in topics.items()
        for profile in (profiles or [default])
    }
    asyncio.run(ensure_topics(settings, [*topics, *outputs, settings.dlq_topic]))
    click.echo(
        f"streamnlp worker: model {model.name} {model.version}; inputs {topics}; "
        f"group {settings.group}; brokers {settings.brokers}",
        err=True,
    )
    app = create_app(settings, pipeline)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    faust.Worker(
        app,
        loop=loop,
        loglevel=settings.log_level,
        logging_config=logging_config(settings.log_level, settings.log_format),
    ).execute_from_commandline()


@main.command("tag")
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--profile", default="general", show_default=True, help="Profile (which heads) to label with.")
@click.option(
    "--jsonl/--lines",
    default=False,
    help="Inputs are JSON objects (text in STREAMNLP_TEXT_FIELD) or plain text lines (default).",
)
@click.option("--cache/--no-cache", default=False, show_default=True, help="Use Redis (STREAMNLP_REDIS_URL).")
def tag_cmd(files: tuple[str, ...], profile: str, jsonl: bool, cache: bool) -> None:
    """Label lines of text from FILES (or stdin) without Kafka, through the worker's own pipeline.

    Prints one output record (JSON) per input line on stdout; a line that cannot be labelled prints its
    dead-letter record on stderr and makes the exit code 2.

    \b
    Example:
      echo "where is my parcel? it's a week late" | streamnlp tag --profile ecommerce
    """
    import asyncio

    from .pipeline import Pipeline
    from .records import Incoming, Source

    overrides: dict[str, object] = {"inputs": tuple(f"{name}={profile}" for name in files or ("-",))}
    if not jsonl:
        overrides["text_field"] = ""
    settings = WorkerSettings.from_env(**overrides)
    pipeline = Pipeline.from_settings(settings, _load_model(settings), use_redis=cache)

    async def run() -> int:
        failed = 0
        for name in files or ("-",):
            with click.open_file(name, "rb") as stream:
                batch: list[Incoming] = []
                for number, line in enumerate(stream):
                    value = line.rstrip(b"\r\n")
                    if not value.strip():
                        continue
                    batch.append(Incoming(Source(name, 0, number), None, value))
                    if len(batch) >= settings.batch_max_size:
                        failed += await emit(batch)
                        batch = []
                failed += await emit(batch)
        await pipeline.close()
        return failed

    async def emit(batch: list[Incoming]) -> int:
        if not batch:
            return 0
        result = await pipeline.process(batch)
        for publish in result.outputs:
            click.echo(publish.value)
        for publish in result.dead_letters:
            click.echo(publish.value, err=True)
        return len(result.dead_letters)

    sys.exit(2 if asyncio.run(run()) else 0)


@main.command("demo")
@click.option("--rate", type=float, default=8.0, show_default=True, help="Chats produced per second.")
def demo_cmd(rate: float) -> None:
    """Start Kafka, Redis and a worker, stream sample e-commerce chats, print their labels as they arrive.

    Services that were not running are stopped again at the end.
    """
    from .demo import run_demo

    run_demo(rate=rate)


@main.command("produce-samples")
@click.option("--topic", default="chats", show_default=True, help="Topic to write to.")
@click.option("--rate", type=float, default=5.0, show_default=True, help="Messages per second.")
@click.option("--forever", is_flag=True, help="Cycle through the samples until stopped.")
def produce_samples_cmd(topic: str, rate: float, forever: bool) -> None:
    """Write the sample e-commerce chats to TOPIC as JSON records (the compose demo producer)."""
    import asyncio

    from .demo import produce_samples

    settings = WorkerSettings.from_env()
    sent = asyncio.run(produce_samples(settings, topic, rate=rate, forever=forever))
    click.echo(f"sent {sent} chats to {topic}", err=True)


def _register_model_commands() -> None:
    from .model.cli import model

    main.add_command(model)


_register_model_commands()

if __name__ == "__main__":
    main()
