"""A local Redis from Debian's ``redis-server`` package, installed if missing."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from .._errors import ServiceError, ServiceNotRunning
from ..config import ServiceSettings
from ._process import ManagedProcess


def ensure_redis_server() -> str:
    """Path of ``redis-server``; installs Debian's package when it is missing and we are root."""
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise ServiceError("redis-server is not installed: run `sudo apt-get install -y redis-server`")
    print("installing redis-server from Debian's packages ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "redis-server"]):
        result = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if result.returncode != 0:
            raise ServiceError(f"{' '.join(cmd)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return "/usr/bin/redis-server"


class RedisServer:
    """One Redis on 127.0.0.1 that keeps nothing on disk: it is a cache, losing it loses no data."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.port = settings.redis_port
        self.root = (settings.state_dir / "redis").resolve()
        self.config = self.root / "redis.conf"
        self.process = ManagedProcess(
            name="redis", pid_file=self.root / "redis.pid", log_file=self.root / "redis.out",
            marker=str(self.config),
        )  # fmt: skip

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> bool:
        """Start Redis unless ours is running; False when it already was (a no-op)."""
        if self.process.is_alive():
            return False
        binary = ensure_redis_server()
        self.root.mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            f'bind 127.0.0.1\nport {self.port}\ndir {self.root}\nsave ""\nappendonly no\n'
            f"daemonize no\nprotected-mode yes\nlogfile {self.root / 'redis.log'}\n"
            # keep the config path in the process title: it is how `down` recognises our process
            'proc-title-template "{title} {listen-addr} {config-file}"\n'
        )
        argv = [binary, str(self.config)]
        proc = self.process.start(argv)
        self.wait_ready(proc)
        return True

    def stop(self) -> bool:
        return self.process.stop(timeout=15)

    def wait_ready(self, proc: subprocess.Popen[bytes] | None = None) -> None:
        import redis

        deadline = time.monotonic() + self.settings.start_timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise ServiceError("redis-server exited during start-up:\n" + self.process.log_tail())
            try:
                with redis.Redis.from_url(self.url, socket_timeout=1) as client:
                    client.ping()
                return
            except redis.RedisError as exc:
                last_error = exc
            time.sleep(0.1)
        raise ServiceError(f"Redis did not answer within {self.settings.start_timeout:.0f}s: {last_error}")

    def version(self) -> str | None:
        import redis

        try:
            with redis.Redis.from_url(self.url, socket_timeout=1) as client:
                return str(client.info("server")["redis_version"])
        except redis.RedisError:
            return None


def require_redis(url: str) -> None:
    """Raise :class:`ServiceNotRunning`, saying how to start one, unless Redis answers at ``url``."""
    import redis

    try:
        with redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2) as client:
            client.ping()
    except redis.RedisError as exc:
        raise ServiceNotRunning(
            f"no Redis answers at {url} ({exc}): start it with `streamnlp services up` "
            "(or run `make test`, which starts and stops it)"
        ) from exc
