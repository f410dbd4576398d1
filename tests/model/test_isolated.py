"""The model in a process of its own (STREAMNLP_MODEL_PROCESS): same labels, and a dead child costs a
restart, not the worker; a dead worker leaves no child behind."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from streamnlp._errors import ModelError
from streamnlp.model.isolated import ProcessModel
from streamnlp.model.runtime import LabelModel
from tests.model._shipped import SHIPPED

PROFILES = {"default": ("sentiment", "intent_ecommerce"), "medical": ("sentiment", "medical_specialty")}
TEXTS = ["where is my order?", "thanks, that was quick", "my card was charged twice and nobody answers"]


@pytest.fixture(scope="module")
def remote() -> Iterator[ProcessModel]:
    model = ProcessModel.load(SHIPPED, PROFILES)
    yield model
    model.close()


def _gone(pid: int, within: float = 15.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        # a child of this process lingers as a zombie until reaped: that counts as gone
        if Path(f"/proc/{pid}/stat").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
            return True
        time.sleep(0.1)
    return False


def test_labels_and_limits_are_those_of_the_model_in_process(
    remote: ProcessModel, shipped: LabelModel
) -> None:
    assert (remote.name, remote.version, dict(remote.heads)) == (
        shipped.name,
        shipped.version,
        dict(shipped.heads),
    )
    for heads in (["sentiment", "intent_ecommerce"], ["sentiment", "medical_specialty"]):
        assert remote.predict(TEXTS, heads) == shipped.predict(TEXTS, heads)
        assert remote.tokens_read(heads) == shipped.tokens_read(heads)
    assert remote.pid != os.getpid()


def test_a_killed_model_process_is_started_again_and_the_call_answers(remote: ProcessModel) -> None:
    before = remote.pid
    assert before is not None
    os.kill(before, signal.SIGKILL)
    assert _gone(before)
    labels = remote.predict(TEXTS[:1], ["sentiment"])
    assert labels[0].heads["sentiment"].label == "neutral"
    assert remote.pid not in (None, before)


def test_a_model_process_dying_while_it_is_restarted_is_a_model_error_and_the_next_call_restarts_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = ProcessModel.load(SHIPPED, PROFILES)
    try:
        first = model.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        assert _gone(first)
        false = shutil.which("false")
        assert false is not None
        with monkeypatch.context() as patch:
            patch.setattr(sys, "executable", false)  # the restart's child exits at once, before loading
            with pytest.raises(ModelError, match="died while loading"):
                model.predict(TEXTS[:1], ["sentiment"])
        left = [c for c in psutil.Process().children() if c.status() == psutil.STATUS_ZOMBIE]
        assert not left, "the restart that died was never waited for"
        # the labeller's contract holds on: the next call starts a working child and answers
        assert model.predict(TEXTS[:1], ["sentiment"])[0].heads["sentiment"].label == "neutral"
        assert model.pid not in (None, first)
    finally:
        model.close()


def test_the_childs_failures_come_back_as_model_errors(remote: ProcessModel, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="unknown heads"):
        remote.predict(TEXTS, ["no_such_head"])
    with pytest.raises(ModelError, match="manifest"):
        ProcessModel.load(tmp_path, PROFILES)
    assert remote.predict(TEXTS[:1], ["sentiment"])  # the child survived the bad request


def test_a_closed_model_stops_its_process_and_refuses_calls() -> None:
    model = ProcessModel.load(SHIPPED, PROFILES)
    pid = model.pid
    assert pid is not None
    model.close()
    assert _gone(pid)
    with pytest.raises(ModelError, match="closed"):
        model.predict(TEXTS, ["sentiment"])


def test_the_model_process_exits_when_its_worker_is_killed() -> None:
    worker = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from streamnlp.model.isolated import ProcessModel\n"
            f"m = ProcessModel.load({str(SHIPPED)!r}, {{'default': ('sentiment',)}})\n"
            "print(m.pid, flush=True)\n"
            "time.sleep(120)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert worker.stdout is not None
        child = int(worker.stdout.readline())
        os.kill(worker.pid, signal.SIGKILL)  # no clean-up runs
        worker.wait()
        assert _gone(child), "the model process outlived its worker"
    finally:
        worker.kill()
        worker.wait()


# What `streamnlp worker` builds before it runs the app (cli.worker_cmd, cli.serve), then one call.
_WORKER = """
import json, sys
from streamnlp.cli import _load_model
from streamnlp.config import WorkerSettings
from streamnlp.pipeline import Pipeline
from streamnlp.workers import create_app

settings = WorkerSettings.from_env({
    "STREAMNLP_MODEL_PATH": sys.argv[1],
    "STREAMNLP_MODEL_PROCESS": sys.argv[2],
    "STREAMNLP_INPUTS": "chats=ecommerce,notes=medical",
})
model = _load_model(settings, serving=True)
create_app(settings, Pipeline.from_settings(settings, model, use_redis=False), partitions={})
model.predict(["where is my order?"], ["sentiment", "medical_specialty"])
imported = sorted(m for m in ("onnxruntime", "tokenizers") if m in sys.modules)
print(json.dumps([type(model).__name__, imported]))
getattr(model, "close", lambda: None)()  # a model in this process has nothing to stop
"""


@pytest.mark.parametrize(
    ("process", "expected"),
    [("true", ["ProcessModel", []]), ("false", ["LabelModel", ["onnxruntime", "tokenizers"]])],
)
def test_a_worker_whose_model_runs_in_a_process_of_its_own_never_imports_onnxruntime(
    process: str, expected: list[object]
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _WORKER, str(SHIPPED), process], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout) == expected  # thread mode: the model, and its imports, are here
