"""Real worker processes (`streamnlp worker`) against the real Kafka and Redis, and their outputs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from streamnlp import ServiceError
from streamnlp.dev import kcat
from streamnlp.dev.streams import Stream
from streamnlp.dev.worker_process import WorkerProcess
from tests.support import MODEL

__all__ = ["Stream"]


@pytest.fixture
def stream(kafka_bootstrap: str) -> Stream:
    return Stream(kafka_bootstrap, model=MODEL)


@pytest.fixture
def start_worker(tmp_path: Path, redis_url: str) -> Iterator:
    """Starts workers for one test and stops them (SIGTERM) at its end."""
    workers: list[WorkerProcess] = []

    def start(env: dict[str, str]) -> WorkerProcess:
        env = {"STREAMNLP_REDIS_URL": redis_url, "STREAMNLP_DATA_DIR": str(tmp_path / "data"), **env}
        worker = WorkerProcess(env, tmp_path / f"worker-{len(workers)}.log")
        workers.append(worker)
        return worker.start()

    yield start
    for worker in workers:
        worker.stop()


@pytest.fixture(scope="session")
def kcat_ready() -> str:
    """kcat, a Kafka client the project did not write (installed from Debian's packages when missing);
    a missing kcat fails the test."""
    try:
        return kcat.ensure_kcat()
    except ServiceError as exc:
        pytest.fail(str(exc), pytrace=False)
