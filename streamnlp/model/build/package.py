"""Assemble a model directory (model, tokenizer, labels, manifest with sha256) from build artefacts."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from streamnlp.model.manifest import (
    LABELS_FILE,
    MANIFEST,
    MODEL_FILE,
    TOKENIZER_FILE,
    WHOLE_TEXT_FILE,
    file_hashes,
    write_json,
)

if TYPE_CHECKING:  # the build config imports torch; add-head writes model dirs without it
    from streamnlp.model.build.config import BuildConfig


def write_model_dir(
    out_dir: Path,
    *,
    onnx_path: Path,
    tokenizer_path: Path,
    heads: Mapping[str, list[str]],
    name: str,
    version: str,
    max_length: int,
    thresholds: Mapping[str, Mapping[str, object]],
    extra: Mapping[str, object] | None = None,
    whole_text: tuple[Path, Mapping[str, object]] | None = None,
) -> None:
    """Write ``out_dir`` so that ``LabelModel.load`` accepts it; existing model files are replaced.

    ``whole_text``: the whole-text heads' ONNX file and their manifest entry (``heads``, ``max_tokens``).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / WHOLE_TEXT_FILE).unlink(missing_ok=True)
    if whole_text is not None:
        shutil.copyfile(whole_text[0], out_dir / WHOLE_TEXT_FILE)
    if onnx_path.resolve() != (out_dir / MODEL_FILE).resolve():
        shutil.copyfile(onnx_path, out_dir / MODEL_FILE)
    if tokenizer_path.resolve() != (out_dir / TOKENIZER_FILE).resolve():
        shutil.copyfile(tokenizer_path, out_dir / TOKENIZER_FILE)
    write_json(out_dir / LABELS_FILE, dict(heads))
    manifest: dict[str, object] = {
        "name": name,
        "version": version,
        "max_length": max_length,
        "heads": dict(heads),
        "thresholds": dict(thresholds),
        "inputs": ["input_ids", "attention_mask"],
        "created": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        **(extra or {}),
    }
    if whole_text is not None:
        manifest["whole_text"] = dict(whole_text[1])
    manifest["files"] = file_hashes(out_dir)
    write_json(out_dir / MANIFEST, manifest)


def package(
    cfg: BuildConfig,
    onnx_path: Path,
    out_dir: Path,
    heads: Mapping[str, list[str]],
    thresholds: Mapping[str, Mapping[str, object]],
) -> None:
    """A model directory for one of the pipeline's ONNX files."""
    arch = "squeezebert" if "student" in onnx_path.name else "bert"
    precision = "int8" if "int8" in onnx_path.name else "fp32"
    write_model_dir(
        out_dir,
        onnx_path=onnx_path,
        tokenizer_path=cfg.work_dir / "tokenizer.json",
        heads=heads,
        name=f"streamnlp-{arch}-{precision}",
        version=cfg.version,
        max_length=cfg.max_length,
        thresholds=thresholds,
        extra={
            "architecture": arch,
            "precision": precision,
            "base_model": "sentence-transformers/all-MiniLM-L6-v2",
        },
    )
