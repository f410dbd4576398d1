"""`streamnlp services` starts real services, is idempotent, and stops exactly what it started.

These run their own instances on other ports and folders, beside the ones the suite uses.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from streamnlp import ServiceNotRunning
from streamnlp.dev.services import KafkaCluster, RedisServer, require_kafka, require_redis
from streamnlp.dev.settings import ServiceSettings


def _cli(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "STREAMNLP_STATE_DIR": str(state_dir)}
    return subprocess.run(
        [sys.executable, "-m", "streamnlp.cli", "services", *args],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_redis_up_is_idempotent_and_down_stops_it(tmp_path: Path) -> None:
    settings = ServiceSettings.from_env(state_dir=tmp_path, redis_port=26379)
    redis = RedisServer(settings)
    first = _cli(tmp_path, "up", "--only", "redis", "--redis-port", "26379")
    assert first.returncode == 0, first.stderr
    pid = redis.process.pid()
    assert pid is not None and "started" in first.stdout
    require_redis(redis.url)

    again = _cli(tmp_path, "up", "--only", "redis", "--redis-port", "26379")
    assert again.returncode == 0 and "already running" in again.stdout
    assert redis.process.pid() == pid

    assert _cli(tmp_path, "status", "--only", "redis", "--redis-port", "26379").returncode == 0
    down = _cli(tmp_path, "down", "--only", "redis", "--redis-port", "26379")
    assert down.returncode == 0 and "stopped" in down.stdout
    assert not _alive(pid)
    assert _cli(tmp_path, "status", "--only", "redis", "--redis-port", "26379").returncode == 1
    with pytest.raises(ServiceNotRunning, match="streamnlp services up"):
        require_redis(redis.url)


def test_down_never_signals_a_process_it_did_not_start(tmp_path: Path) -> None:
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        settings = ServiceSettings.from_env(state_dir=tmp_path, redis_port=26380)
        redis = RedisServer(settings)
        redis.process.pid_file.parent.mkdir(parents=True)
        redis.process.pid_file.write_text(f"{stranger.pid}\n")  # a stale PID file naming someone else
        down = _cli(tmp_path, "down", "--only", "redis", "--redis-port", "26380")
        assert down.returncode == 0 and "was not running" in down.stdout
        assert stranger.poll() is None, "down killed a process that was not ours"
    finally:
        stranger.kill()
        stranger.wait()


def test_missing_kafka_is_an_error_that_says_how_to_start_it() -> None:
    with pytest.raises(ServiceNotRunning, match="streamnlp services up"):
        require_kafka("127.0.0.1:1")


def test_three_broker_cluster_survives_one_broker_and_takes_it_back(tmp_path: Path) -> None:
    settings = ServiceSettings.from_env(state_dir=tmp_path, kafka_port=29092, kafka_brokers=3)
    cluster = KafkaCluster(settings)
    try:
        up = _cli(tmp_path, "up", "--only", "kafka", "--brokers", "3", "--kafka-port", "29092")
        assert up.returncode == 0, up.stderr
        assert "Apache Kafka 4." in up.stdout
        assert require_kafka(cluster.bootstrap_servers) == {1, 2, 3}
        pids = [node.process.pid() for node in cluster.nodes]
        assert all(pids)

        cluster.nodes[1].process.signal(signal.SIGKILL)
        cluster.nodes[1].process.stop()
        assert cluster.running_nodes() == [1, 3]
        assert require_kafka("127.0.0.1:29092") <= {1, 2, 3}  # the rest still answers

        cluster.start_node(2)
        assert require_kafka(cluster.bootstrap_servers) == {1, 2, 3}
        pids = [node.process.pid() for node in cluster.nodes]
    finally:
        down = _cli(tmp_path, "down", "--only", "kafka", "--kafka-port", "29092")
    assert down.returncode == 0, down.stderr
    assert "stopped nodes [1, 2, 3]" in down.stdout
    assert not any(_alive(pid) for pid in pids if pid)
