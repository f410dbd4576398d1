"""Credentials of the local services: generated once per state folder, kept in a 0600 file, never printed."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Credentials:
    kafka_username: str
    kafka_password: str
    redis_password: str

    @classmethod
    def load_or_create(cls, state_dir: Path) -> Credentials:
        path = state_dir.resolve() / "credentials.json"
        if path.exists():
            return cls(**json.loads(path.read_text()))
        creds = cls("streamnlp", secrets.token_urlsafe(18), secrets.token_urlsafe(18))
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(asdict(creds), handle)
        return creds
