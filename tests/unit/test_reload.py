"""Hot reload without Kafka: which model labels a message, and what a refused version changes (nothing)."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import shutil
from pathlib import Path

import orjson

from streamnlp.config import DEFAULT_PROFILES
from streamnlp.envelope import Source
from streamnlp.metrics import Metrics
from streamnlp.model.check import load_checked
from streamnlp.model.manifest import MANIFEST, MODEL_FILE
from streamnlp.model.runtime import LabelModel
from streamnlp.reload import ModelSlot, Reloader
from tests.support import MODEL
from tests.unit.test_pipeline import pipeline_for


def version_of(model: LabelModel, directory: Path, version: str) -> Path:
    """A copy of the shipped model that calls itself ``version`` (the manifest's hashes still hold)."""
    shutil.copytree(MODEL, directory)
    manifest = orjson.loads((directory / MANIFEST).read_bytes())
    manifest["version"] = version
    (directory / MANIFEST).write_bytes(orjson.dumps(manifest))
    return directory


def flip(link: Path, target: Path) -> None:
    """Point ``link`` at ``target`` atomically, as a Kubernetes volume update does."""
    tmp = link.with_name(link.name + ".new")
    tmp.symlink_to(target)
    os.replace(tmp, link)


def gauge(metrics: Metrics, model: LabelModel, version: str) -> float | None:
    return metrics.registry.get_sample_value(
        "streamnlp_model_loaded", {"name": model.name, "version": version}
    )


def test_a_message_consumed_before_a_swap_keeps_the_old_model_until_it_is_labelled(model) -> None:
    slot = ModelSlot(model)
    old = slot.stamp()
    newer = object()
    slot.install(newer)  # type: ignore[arg-type]
    assert slot.model(old) is model, "a consumed message lost its model"
    assert slot.model(slot.stamp()) is newer
    slot.release(old)
    assert slot.model(old) is newer, "the old model outlived its last message"


async def test_the_pipeline_labels_each_message_with_the_model_of_its_generation(model, tmp_path) -> None:
    pipeline = pipeline_for(model)
    before = pipeline.envelope(Source("chats", 0, 1), None, b'{"text": "where is my parcel"}')
    v2 = LabelModel.load(version_of(model, tmp_path / "v2", "2.0.0"))
    pipeline.slot.install(v2)
    after = pipeline.envelope(Source("chats", 0, 2), None, b'{"text": "where is my parcel"}')
    await pipeline.process([before, after])
    versions = [orjson.loads(e.output.value)["model"]["version"] for e in (before, after)]  # type: ignore[union-attr]
    assert versions == [model.version, "2.0.0"]
    assert not after.cached, "a label of the old version was served for the new one"


async def test_a_flipped_symlink_is_loaded_and_a_corrupt_version_is_refused_once(
    model, tmp_path, caplog
) -> None:
    v1 = version_of(model, tmp_path / "v1", "1.0.0")
    v2 = version_of(model, tmp_path / "v2", "2.0.0")
    corrupt = version_of(model, tmp_path / "v3", "3.0.0")
    with (corrupt / MODEL_FILE).open("r+b") as handle:
        handle.seek(4096)
        handle.write(b"\0" * 64)
    current = tmp_path / "current"
    current.symlink_to(v1)
    metrics = Metrics()
    slot = ModelSlot(LabelModel.load(current), metrics)
    load = functools.partial(load_checked, profiles=DEFAULT_PROFILES)
    reloader = Reloader(slot, current, load, metrics)

    assert not await reloader.poll()
    flip(current, v2)
    assert await reloader.poll()
    assert slot.current.version == "2.0.0"
    assert gauge(metrics, model, "2.0.0") == 1 and gauge(metrics, model, "1.0.0") is None

    flip(current, corrupt)
    with caplog.at_level(logging.ERROR, logger="streamnlp.reload"):
        assert not await reloader.poll()
        assert not await reloader.poll()  # the same refused directory: neither logged nor counted again
    assert slot.current.version == "2.0.0"
    refusals = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 1 and "sha256" in refusals[0].getMessage()
    assert metrics.registry.get_sample_value("streamnlp_model_reload_failures_total") == 1


async def test_a_version_lacking_a_profiles_head_is_refused(model, tmp_path) -> None:
    current = tmp_path / "current"
    current.symlink_to(version_of(model, tmp_path / "v1", "1.0.0"))
    metrics = Metrics()
    slot = ModelSlot(LabelModel.load(current), metrics)
    needs = {**DEFAULT_PROFILES, "notes": ("sentiment", "intent_clinic")}
    reloader = Reloader(slot, current, functools.partial(load_checked, profiles=needs), metrics)
    flip(current, version_of(model, tmp_path / "v2", "2.0.0"))
    assert not await reloader.reload(forced=True)
    assert slot.current.version == "1.0.0"
    assert metrics.registry.get_sample_value("streamnlp_model_reload_failures_total") == 1


async def test_loading_a_model_does_not_block_the_event_loop(model, tmp_path) -> None:
    current = tmp_path / "current"
    current.symlink_to(version_of(model, tmp_path / "v1", "1.0.0"))
    metrics = Metrics()
    reloader = Reloader(ModelSlot(model, metrics), current, load_checked_all, metrics)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    ticker = asyncio.create_task(tick())
    try:
        assert await reloader.reload(forced=True)
    finally:
        ticker.cancel()
    assert ticks >= 5, f"the loop ran {ticks} times while the model loaded"


def load_checked_all(path: Path) -> LabelModel:
    return load_checked(path, DEFAULT_PROFILES)


class Closable:
    """A model stand-in that records being closed (as a model in its own process stops its process)."""

    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_a_replaced_model_is_closed_once_its_last_message_is_labelled_and_the_current_one_at_close() -> None:
    first, second = Closable(), Closable()
    slot = ModelSlot(first)  # type: ignore[arg-type]
    held = slot.stamp()
    slot.install(second)  # type: ignore[arg-type]
    assert not first.closed, "closed while a consumed message still needed it"
    slot.release(held)
    assert first.closed and not second.closed
    slot.close()
    assert second.closed
