"""A running worker takes a new model version without a restart or a rebalance, and refuses a bad one.

Real `streamnlp worker` processes, the real broker and Redis. The new version is the one
`streamnlp model add-head` writes; the worker's STREAMNLP_MODEL_PATH is a symlink that the test flips,
as a Kubernetes volume update does.
"""

from __future__ import annotations

import asyncio
import csv
import itertools
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from streamnlp.dev.worker_process import WorkerProcess
from streamnlp.model.manifest import MANIFEST, MODEL_FILE
from tests.integration.conftest import Stream
from tests.integration.test_worker import as_values, chats
from tests.support import MODEL

HEAD = "intent_reload_test"
TOTAL = 3000


@dataclass(frozen=True)
class Versions:
    old: Path
    new: Path  # old + HEAD, written by `streamnlp model add-head`
    corrupt: Path  # new with a damaged model.onnx
    old_version: str
    new_version: str


def _version(path: Path) -> str:
    return str(orjson.loads((path / MANIFEST).read_bytes())["version"])


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> Versions:
    root = tmp_path_factory.mktemp("models")
    old = root / "old"
    shutil.copytree(MODEL, old)
    data = root / "head.csv"
    with data.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for n in range(30):
            writer.writerow([f"where is my parcel number {n}, it is late", "delivery"])
            writer.writerow([f"I was charged twice for order {n}", "billing"])
    new = root / "new"
    subprocess.run(
        [sys.executable, "-m", "streamnlp.cli", "model", "add-head", "--name", HEAD, "--data", str(data),
         "--model", str(old), "--out", str(new)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    corrupt = root / "corrupt"
    shutil.copytree(new, corrupt)
    with (corrupt / MODEL_FILE).open("r+b") as handle:
        handle.seek(4096)
        handle.write(b"\0" * 64)
    assert _version(new) != _version(old)
    return Versions(old, new, corrupt, _version(old), _version(new))


def flip(link: Path, target: Path) -> None:
    tmp = link.with_name(f"{link.name}.{uuid.uuid4().hex[:6]}")
    tmp.symlink_to(target)
    os.replace(tmp, link)


async def _until(worker: WorkerProcess, metric: str, at_least: float, within: float = 120) -> None:
    async with asyncio.timeout(within):
        while worker.metric(metric) < at_least:  # noqa: ASYNC110 (polling a process)
            await asyncio.sleep(0.05)


async def _stream_with_a_swap(
    stream: Stream, worker: WorkerProcess, link: Path, target: Path, *, swap_after: int
) -> None:
    """Produce TOTAL messages in steady chunks; flip ``link`` to ``target`` once ``swap_after`` are
    labelled, while messages keep coming."""
    values = as_values(chats(TOTAL, seed=515), "h")
    chunk = 100
    flipped = False
    for start in range(0, TOTAL, chunk):
        await stream.produce(values[start : start + chunk])
        if not flipped and worker.metric("streamnlp_labelled_total") >= swap_after:
            flip(link, target)
            flipped = True
        await asyncio.sleep(0.15)
    assert flipped, "the stream ended before the swap point"


def _switch_points(outputs: list[dict], order: list[str]) -> dict[int, int]:
    """Per input partition, how many times the model version changes along the offsets (asserting it
    only moves forward in ``order``)."""
    by_partition: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for output in outputs:
        by_partition[output["source"]["partition"]].append(
            (output["source"]["offset"], output["model"]["version"])
        )
    switches = {}
    for partition, rows in by_partition.items():
        sequence = [order.index(version) for _, version in sorted(rows)]
        assert sequence == sorted(sequence), f"partition {partition}: a version moved backwards"
        switches[partition] = sum(1 for a, b in itertools.pairwise(sequence) if a != b)
    return switches


async def _swap_mid_stream(
    stream: Stream, start_worker, versions: Versions, tmp_path: Path, **env: str
) -> None:
    link = tmp_path / "model"
    link.symlink_to(versions.old)
    worker = start_worker(
        stream.env(
            STREAMNLP_MODEL_PATH=str(link),
            STREAMNLP_MODEL_POLL_INTERVAL="0.3",
            STREAMNLP_CACHE_SECRET=uuid.uuid4().hex,
            **env,
        )
    )
    pid = worker.proc.pid
    await stream.produce(as_values(chats(20, seed=1), "warm"))
    await _until(worker, "streamnlp_labelled_total", 20)
    assignments = worker.metric("streamnlp_partition_assignments_total")
    await _stream_with_a_swap(stream, worker, link, versions.new, swap_after=20 + TOTAL // 3)
    outputs, dead = await stream.collect(TOTAL + 20, within=180)
    outputs = [o for o in outputs if o["id"].startswith("h-")]

    assert not dead
    ids = Counter(o["id"] for o in outputs)
    assert set(ids) == {f"h-{i}" for i in range(TOTAL)}, f"lost {TOTAL - len(ids)} messages"
    duplicates = sum(n - 1 for n in ids.values())
    assert duplicates == 0, f"{duplicates} duplicates"
    seen = Counter(o["model"]["version"] for o in outputs)
    assert set(seen) == {versions.old_version, versions.new_version}, seen
    switches = _switch_points(outputs, [versions.old_version, versions.new_version])
    assert all(n <= 1 for n in switches.values()) and sum(switches.values()) >= 1, switches
    assert worker.proc.pid == pid and worker.alive(), "the worker restarted"
    assert worker.metric("streamnlp_partition_assignments_total") == assignments, "the group rebalanced"
    assert worker.metric("streamnlp_model_reloads_total") == 1
    assert worker.metric("streamnlp_model_reload_failures_total") == 0
    samples = worker.metrics()
    assert any(
        f'version="{versions.new_version}"' in k for k in samples if k.startswith("streamnlp_model_loaded")
    )
    assert not any(
        f'version="{versions.old_version}"' in k for k in samples if k.startswith("streamnlp_model_loaded")
    )
    print(f"reload: versions {dict(seen)}, switch points per partition {switches}")


async def test_a_model_written_by_add_head_replaces_the_old_one_mid_stream_without_loss_or_restart(
    stream: Stream, start_worker, versions: Versions, tmp_path: Path
) -> None:
    await _swap_mid_stream(stream, start_worker, versions, tmp_path)


async def test_the_same_swap_in_exactly_once_mode_duplicates_nothing(
    stream: Stream, start_worker, versions: Versions, tmp_path: Path
) -> None:
    await _swap_mid_stream(
        stream, start_worker, versions, tmp_path, STREAMNLP_PROCESSING_GUARANTEE="exactly_once"
    )


async def test_a_corrupt_or_incompatible_model_is_refused_and_the_stream_goes_on(
    stream: Stream, start_worker, versions: Versions, tmp_path: Path
) -> None:
    """The worker serves the new version with a profile that needs its new head; a corrupt copy and the
    old version (which lacks that head) are dropped in mid-stream and each is refused (SIGHUP here)."""
    link = tmp_path / "model"
    link.symlink_to(versions.new)
    env = stream.env(
        STREAMNLP_MODEL_PATH=str(link),
        STREAMNLP_MODEL_POLL_INTERVAL="0",
        STREAMNLP_PROFILE_HEADS=f"triage=sentiment+{HEAD}",
        STREAMNLP_INPUTS=f"{stream.input}=triage",
        STREAMNLP_CACHE_SECRET=uuid.uuid4().hex,
    )
    worker = start_worker(env)
    values = as_values(chats(1500, seed=616), "c")
    await stream.produce(values[:500])
    await _until(worker, "streamnlp_labelled_total", 200)
    for bad, refusals in ((versions.corrupt, 1), (versions.old, 2)):
        flip(link, bad)
        worker.proc.send_signal(signal.SIGHUP)
        await _until(worker, "streamnlp_model_reload_failures_total", refusals, within=60)
        assert worker.ready(), "/ready went false on a refused model"
        await stream.produce(values[refusals * 500 : (refusals + 1) * 500])
    outputs, dead = await stream.collect(1500, within=180)
    assert not dead
    assert {o["id"] for o in outputs} == {f"c-{i}" for i in range(1500)}
    assert {o["model"]["version"] for o in outputs} == {versions.new_version}
    assert all(set(o["labels"]) == {"sentiment", HEAD} for o in outputs)
    assert worker.metric("streamnlp_model_reloads_total") == 0
    log = worker.log.read_text()
    assert log.count("refused the model") == 2, "each refusal is logged once"
    assert "sha256" in log and HEAD in log
