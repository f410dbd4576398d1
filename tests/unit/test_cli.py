"""The command line: `tag` labels without Kafka; help texts name the settings a newcomer needs."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson

from tests.schemas import validate_deadletter, validate_output
from tests.support import MODEL, ROOT


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


def test_tag_prints_one_readable_line_per_text_in_text_format() -> None:
    result = run("tag", "--profile", "ecommerce", "--format", "text", stdin=b"where is my parcel\nthanks!\n")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().splitlines()
    assert len(lines) == 2
    assert lines[0].endswith("where is my parcel") and lines[1].endswith("thanks!")
    assert lines[0].split()[0] in {"negative", "neutral", "positive"}
    assert b"\x1b[" not in result.stdout, "colour codes on a pipe"


def test_tag_reads_the_text_from_a_named_csv_column(tmp_path) -> None:
    table = tmp_path / "tickets.csv"
    table.write_text('id,message\nt1,"my card was declined, why?"\nt2,what is my balance\n')
    result = run("tag", "--csv", "--column", "message", "--profile", "banking", str(table))
    assert result.returncode == 0, result.stderr
    records = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert [r["id"] for r in records] == ["t1", "t2"]
    for record in records:
        validate_output(record)


def test_tag_reads_a_nested_jsonl_field_named_by_column() -> None:
    lines = b'{"msg": {"body": "refund please"}}\n{"msg": {"body": "where is it"}}\n'
    result = run("tag", "--jsonl", "--column", "msg.body", stdin=lines)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 2


def test_model_check_accepts_the_shipped_model_and_refuses_a_missing_head() -> None:
    ok = run("model", "check", str(MODEL))
    assert ok.returncode == 0, ok.stderr
    assert b"ok:" in ok.stdout
    refused = run("model", "check", str(MODEL), "--profile-heads", "notes=sentiment+intent_clinic")
    assert refused.returncode == 1
    assert b"intent_clinic" in refused.stderr and b"Traceback" not in refused.stderr


def test_a_deployed_worker_imports_no_development_code() -> None:
    code = (
        "import sys, streamnlp.cli, streamnlp.workers.app, streamnlp.pipeline;"
        "print(sorted(m for m in sys.modules if m.startswith('streamnlp.dev')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120, check=True)
    assert result.stdout.strip() == b"[]"


def test_bench_help_lists_the_benchmarks_instead_of_failing() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--help"], cwd=ROOT, capture_output=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    for name in (b"e2e", b"cache", b"scaling", b"guarantee", b"sweep", b"model"):
        assert name in result.stdout


def test_tag_finds_the_shipped_model_from_any_working_directory(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "STREAMNLP_MODEL_PATH"}
    result = subprocess.run(
        [sys.executable, "-m", "streamnlp.cli", "tag"], input=b"hi\n", env=env, cwd=tmp_path,
        capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    validate_output(orjson.loads(result.stdout))
    assert list(tmp_path.iterdir()) == [], "tag wrote into the working directory"


def test_only_the_streamnlp_package_is_installed_and_every_subpackage_is_listed() -> None:
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = set(config["packages"])
    assert all(p == "streamnlp" or p.startswith("streamnlp.") for p in packages), (
        "a generic top-level package"
    )
    assert config["package-dir"] == {"streamnlp.workers": "workers", "streamnlp.models": "models"}
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts) for init in (ROOT / "streamnlp").rglob("__init__.py")
    }
    assert on_disk | {"streamnlp.workers", "streamnlp.models"} == packages, (
        "a package missing from pyproject.toml's list"
    )


def test_the_wheel_carries_the_shipped_model_and_an_installed_worker_finds_it(tmp_path) -> None:
    """A wheel installed away from the source tree labels text with no STREAMNLP_MODEL_PATH."""
    import zipfile

    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(ROOT)],
        capture_output=True, timeout=300, check=True,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("streamnlp-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"streamnlp/models/squeezebert-int8/{p.name}" for p in MODEL.iterdir() if p.is_file()}
    assert shipped <= names, sorted(shipped - names)
    assert not any(n.startswith(("models/", "workers/", "tests/")) for n in names), "a top-level package"
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)  # a wheel is installed by unpacking it
    env = {k: v for k, v in os.environ.items() if k != "STREAMNLP_MODEL_PATH"} | {"PYTHONPATH": str(target)}
    code = (
        "import streamnlp, sys; from streamnlp.config import WorkerSettings;"
        "assert streamnlp.__file__.startswith(sys.argv[1]), streamnlp.__file__;"
        "from streamnlp.model.runtime import LabelModel;"
        "d = WorkerSettings.from_env().model_dir(); print(d, LabelModel.load(d).version);"
        "sys.exit(not str(d).startswith(sys.argv[1]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(target)],
        env=env, cwd=tmp_path, capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, (result.stdout, result.stderr)


def test_model_commands_find_the_shipped_model_from_any_working_directory(tmp_path) -> None:
    csv = tmp_path / "notes.csv"
    csv.write_text("text,label\nthank you so much,positive\nwhere is my parcel,neutral\n")
    for args in (["model", "info"], ["model", "eval", "--data", str(csv), "--head", "sentiment"]):
        result = subprocess.run(
            [sys.executable, "-m", "streamnlp.cli", *args], cwd=tmp_path,
            capture_output=True, timeout=120, check=False,
        )  # fmt: skip
        assert result.returncode == 0, (args, result.stderr)
    missing = subprocess.run(
        [sys.executable, "-m", "streamnlp.cli", "model", "info", "--model", "no/such/model"], cwd=tmp_path,
        capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert missing.returncode == 2 and b"no/such/model" in missing.stderr
