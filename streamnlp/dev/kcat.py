"""kcat, Debian's command-line Kafka client: a reader and writer the project did not write, so what the
tests count does not rest on the project's own clients alone (and kcat's default partitioner is
librdkafka's CRC32-based one, not the murmur2 of the Java and aiokafka clients)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

from .._errors import ServiceError
from .services._debian import ensure_program


@dataclass(frozen=True, slots=True)
class Record:
    partition: int
    offset: int
    key: bytes
    value: bytes


def ensure_kcat() -> str:
    """Path of ``kcat``; installs Debian's package when it is missing and we are root."""
    return ensure_program("kcat", "kcat")


def consume(
    bootstrap: str, topic: str, *, read_committed: bool = False, timeout: float = 120
) -> list[Record]:
    """Every record of ``topic`` from the beginning to the end as it is now (values without newlines)."""
    command = [ensure_kcat(), "-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e", "-q"]
    command += ["-f", "%p\t%o\t%k\t%s\n"]
    if read_committed:
        command += ["-X", "isolation.level=read_committed"]
    result = subprocess.run(command, capture_output=True, timeout=timeout, check=False)
    _check(result)
    records = []
    for line in result.stdout.splitlines():
        partition, offset, key, value = line.split(b"\t", 3)
        records.append(Record(int(partition), int(offset), key, value))
    return records


def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]], timeout: float = 120) -> None:
    """Write (key, value) records with kcat's default partitioner (keys and values without tabs or
    newlines), acknowledged by all in-sync replicas."""
    command = [ensure_kcat(), "-P", "-b", bootstrap, "-t", topic, "-K", "\t", "-X", "acks=all"]
    lines = b"".join(key + b"\t" + value + b"\n" for key, value in records)
    result = subprocess.run(command, input=lines, capture_output=True, timeout=timeout, check=False)
    _check(result)


def _check(result: subprocess.CompletedProcess[bytes]) -> None:
    if result.returncode != 0:
        detail = result.stderr.decode(errors="replace")[-2000:]
        raise ServiceError(f"kcat failed ({result.returncode}): {detail}")
