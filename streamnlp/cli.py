"""The ``streamnlp`` command line."""

from __future__ import annotations

import sys
import time

import click

from . import __version__
from ._errors import StreamNLPError
from .config import ServiceSettings


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
        click.echo(f"redis   {redis.url}  Redis {redis.version()}  {state}")
    if only in (None, "kafka"):
        kafka = KafkaCluster(settings)
        began = time.monotonic()
        started = kafka.start()
        state = f"started in {time.monotonic() - began:.1f}s" if started else "already running"
        version = kafka.version_from_log() or kafka_version()
        click.echo(f"kafka   {kafka.bootstrap_servers}  Apache Kafka {version} (KRaft)  {state}")


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


@main.command("config")
def config_cmd() -> None:
    """List every STREAMNLP_* setting with its default and purpose."""
    for env, default, doc in ServiceSettings.describe():
        click.echo(f"{env}={default}\n    {doc}")


if __name__ == "__main__":
    main()
