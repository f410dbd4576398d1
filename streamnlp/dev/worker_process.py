"""A ``streamnlp worker`` child process, watched over its HTTP port the way an orchestrator would.

One home for what the demo, the integration tests and the benchmarks all do: pick a free port, start
the worker, wait for ``/ready``, read ``/metrics``, stop it with SIGTERM (and SIGKILL if it hangs).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

import orjson

from .._errors import ServiceError

WORKER_COMMAND = (sys.executable, "-m", "streamnlp.cli", "worker")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class WorkerProcess:
    """One worker subprocess with its own web port; its output goes to ``log``."""

    def __init__(self, env: Mapping[str, str], log: Path, *, command: Sequence[str] = WORKER_COMMAND) -> None:
        self.port = free_port()
        self.env = {**os.environ, **env, "STREAMNLP_WEB_PORT": str(self.port), "PYTHONUNBUFFERED": "1"}
        self.log = log
        self.command = list(command)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120) -> WorkerProcess:
        """Start the process and wait until ``/ready`` says so; a worker that exits first is an error."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.command, env=self.env, stdout=out, stderr=out)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServiceError(f"worker exited with {self.proc.returncode}:\n{self.log_tail()}")
            if self.ready():
                return self
            time.sleep(0.3)
        raise ServiceError(f"worker not ready within {timeout:.0f}s:\n{self.log_tail()}")

    def ready(self) -> bool:
        try:
            return bool(self.readiness()[1].get("ready"))
        except OSError:  # not listening yet
            return False

    def readiness(self) -> tuple[int, dict]:
        """``/ready``'s status and body, as a Kubernetes readiness probe sees them (503 while the worker
        joins its group, rebalances or stops)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/ready", timeout=1) as response:
                return response.status, orjson.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, orjson.loads(error.read())

    def metrics(self) -> dict[str, float]:
        """Sample name (with labels) -> value, from ``/metrics``."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as response:
            text = response.read().decode()
        samples = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                samples[name] = float(value)
        return samples

    def metric(self, name: str) -> float:
        """The sum of a metric over all its label sets."""
        return sum(v for k, v in self.metrics().items() if k == name or k.startswith(name + "{"))

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 60) -> None:
        """SIGTERM (the worker drains and commits), then SIGKILL if it has not exited in ``timeout``."""
        if self.proc is None or not self.alive():
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def log_tail(self, lines: int = 40) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
