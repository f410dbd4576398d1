"""The command line: `tag` labels without Kafka; help texts name the settings a newcomer needs."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson

from tests.schemas import validate_deadletter, validate_output
from tests.support import MODEL


def run(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "STREAMNLP_MODEL_PATH": str(MODEL)}
    return subprocess.run(
        [sys.executable, "-m", "streamnlp.cli", *args], input=stdin, env=env, capture_output=True, timeout=120
    )


def test_tag_labels_each_line_of_stdin() -> None:
    result = run("tag", "--profile", "banking", stdin=b"my card was declined\n\nwhat is my balance\n")
    assert result.returncode == 0, result.stderr
    records = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 2
    for record in records:
        validate_output(record)
        assert set(record["labels"]) == {"sentiment", "intent_banking"}


def test_tag_sends_bad_jsonl_lines_to_stderr_and_exits_2() -> None:
    result = run(
        "tag", "--jsonl", "--profile", "ecommerce", stdin=b'{"text": "refund please"}\n{"text": 5}\n'
    )
    assert result.returncode == 2
    assert len(result.stdout.splitlines()) == 1
    (dead,) = [orjson.loads(line) for line in result.stderr.splitlines() if line.startswith(b"{")]
    validate_deadletter(dead)
    assert dead["reason"] == "wrong_type"


def test_worker_help_lists_every_setting() -> None:
    result = run("worker", "--help")
    assert result.returncode == 0
    for name in ("STREAMNLP_BROKERS", "STREAMNLP_INPUTS", "STREAMNLP_BATCH_MAX_SIZE", "STREAMNLP_REDIS_URL"):
        assert name.encode() in result.stdout


def test_a_missing_model_is_one_clear_error() -> None:
    env_model = {"STREAMNLP_MODEL_PATH": "/nonexistent/model"}
    result = subprocess.run(
        [sys.executable, "-m", "streamnlp.cli", "tag"], input=b"hi\n", env={**os.environ, **env_model},
        capture_output=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert b"STREAMNLP_MODEL_PATH=/nonexistent/model" in result.stderr
    assert b"Traceback" not in result.stderr
