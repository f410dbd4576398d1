"""A local Redis from Debian's ``redis-server`` package, installed if missing."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from ..._errors import ServiceError, ServiceNotRunning
from ..settings import ServiceSettings
from ._credentials import Credentials
from ._debian import ensure_program
from ._process import ManagedProcess
from ._tls import ensure_tls


def ensure_redis_server() -> str:
    """Path of ``redis-server``; installs Debian's package when it is missing and we are root."""
    return ensure_program("redis-server", "redis-server")


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
    def secure(self) -> bool:
        return self.settings.redis_secure

    @property
    def ca_file(self) -> Path:
        return self.root / "tls" / "ca.crt"

    @property
    def url(self) -> str:
        """The URL clients use; with a password in it when secure (so never print it)."""
        if not self.secure:
            return f"redis://127.0.0.1:{self.port}/0"
        password = Credentials.load_or_create(self.settings.state_dir).redis_password
        return f"rediss://:{password}@127.0.0.1:{self.port}/0"

    @property
    def display_url(self) -> str:
        """The URL with its password masked, for printing."""
        return self.url.replace(
            f":{Credentials.load_or_create(self.settings.state_dir).redis_password}@", ":***@"
        )

    def client(self, **kwargs: object):  # type: ignore[no-untyped-def]
        import redis

        if self.secure:
            kwargs["ssl_ca_certs"] = str(self.ca_file)
        return redis.Redis.from_url(self.url, **kwargs)

    def start(self) -> bool:
        """Start Redis unless ours is running; False when it already was (a no-op)."""
        if self.process.is_alive():
            return False
        binary = ensure_redis_server()
        self.root.mkdir(parents=True, exist_ok=True)
        config = (
            f'bind 127.0.0.1\ndir {self.root}\nsave ""\nappendonly no\n'
            f"daemonize no\nprotected-mode yes\nlogfile {self.root / 'redis.log'}\n"
            # keep the config path in the process title: it is how `down` recognises our process
            'proc-title-template "{title} {listen-addr} {config-file}"\n'
        )
        if self.secure:
            tls = ensure_tls(self.root / "tls")
            password = Credentials.load_or_create(self.settings.state_dir).redis_password
            config += (
                f"port 0\ntls-port {self.port}\ntls-cert-file {tls.cert}\ntls-key-file {tls.key}\n"
                f"tls-ca-cert-file {tls.ca_cert}\ntls-auth-clients no\nrequirepass {password}\n"
            )
        else:
            config += f"port {self.port}\n"
        fd = os.open(self.config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(config)
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
                with self.client(socket_timeout=1) as client:
                    client.ping()
                return
            except redis.RedisError as exc:
                last_error = exc
            time.sleep(0.1)
        raise ServiceError(f"Redis did not answer within {self.settings.start_timeout:.0f}s: {last_error}")

    def version(self) -> str | None:
        import redis

        try:
            with self.client(socket_timeout=1) as client:
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
