"""Whole-text heads: the exported graph computes what the build fitted, and the runtime feeds it the
whole text, so a long note is labelled from all of it."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from streamnlp.model.build.bag import BagHead, export_bag_onnx
from streamnlp.model.manifest import MANIFEST, WHOLE_TEXT_FILE, file_hashes, read_json, write_json
from streamnlp.model.runtime import LabelModel, ModelError
from tests.model._shipped import SHIPPED


def _random_head(vocab: int = 200, slots: int = 40, labels: int = 5, seed: int = 3) -> BagHead:
    rng = np.random.default_rng(seed)
    remap = np.zeros(vocab, dtype=np.int64)
    seen = rng.choice(np.arange(10, vocab), size=slots - 1, replace=False)
    remap[seen] = np.arange(1, slots)
    idf = rng.uniform(1.0, 4.0, slots).astype(np.float32)
    idf[0] = 0.0
    return BagHead(
        "topic",
        [f"l{i}" for i in range(labels)],
        remap,
        idf,
        rng.normal(size=(slots, labels)).astype(np.float32),
        rng.normal(size=labels).astype(np.float32),
    )


def test_exported_graph_gives_the_logits_of_its_numpy_definition(tmp_path: Path) -> None:
    head = _random_head()
    export_bag_onnx([head], tmp_path / "bag.onnx")
    rng = np.random.default_rng(7)
    rows = [list(rng.integers(0, 200, size=n)) for n in (1, 5, 37, 120)]  # repeats and unseen ids too
    width = max(map(len, rows))
    ids = np.zeros((len(rows), width), dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, r in enumerate(rows):
        ids[i, : len(r)], mask[i, : len(r)] = r, 1
    ids[0, 1:] = 150  # padding positions hold real ids: the mask alone must keep them out
    session = ort.InferenceSession(str(tmp_path / "bag.onnx"), providers=["CPUExecutionProvider"])
    (got,) = session.run(["topic"], {"bag_ids": ids, "bag_mask": mask})
    np.testing.assert_allclose(got, head.logits(rows), rtol=1e-5, atol=1e-5)


def test_counts_not_order_decide_a_whole_text_label() -> None:
    head = _random_head()
    ids = [12, 40, 40, 77, 150, 199]
    np.testing.assert_allclose(head.logits([ids]), head.logits([ids[::-1]]), rtol=1e-6)


def test_a_manifest_naming_whole_text_heads_without_their_file_is_a_model_error(tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(SHIPPED, model_dir)
    (model_dir / WHOLE_TEXT_FILE).unlink(missing_ok=True)
    manifest = read_json(model_dir / MANIFEST)
    manifest["whole_text"] = {"heads": ["medical_specialty"], "max_tokens": 8192}
    manifest["files"] = file_hashes(model_dir)
    write_json(model_dir / MANIFEST, manifest)
    with pytest.raises(ModelError, match="whole-text"):
        LabelModel.load(model_dir)
