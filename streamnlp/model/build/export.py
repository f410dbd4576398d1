"""ONNX export (dynamic batch and sequence axes) and int8 quantization.

Grouped layers are already per-group MatMuls in the torch graph, so no grouped Conv (ConvInteger, slow)
ever reaches the quantizer. Quantization is static (activation scales calibrated once on training
texts): dynamic quantization computes one activation scale per batch tensor, so a text's label would
depend on which other texts share its batch (measured: 98.8% sentiment agreement batch-32 vs batch-1),
which a streaming labeler with a cache cannot have.
"""

from __future__ import annotations

import csv
import logging
import random
from collections.abc import Sequence
from pathlib import Path

import torch

from streamnlp.model.build.config import BuildConfig
from streamnlp.model.build.network import ExportWrapper, MultiHeadClassifier

log = logging.getLogger(__name__)
OPSET = 17


def export_onnx(model: MultiHeadClassifier, heads: list[str], path: Path) -> None:
    """fp32 ONNX with inputs ``input_ids``/``attention_mask`` and one logits output per head."""
    model.eval()
    wrapper = ExportWrapper(model, heads)
    ids = torch.ones(2, 16, dtype=torch.long)
    mask = torch.ones(2, 16, dtype=torch.long)
    axes = {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"}}
    axes.update({h: {0: "batch"} for h in heads})
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        wrapper,
        (ids, mask),
        str(path),
        input_names=["input_ids", "attention_mask"],
        output_names=heads,
        dynamic_axes=axes,
        opset_version=OPSET,
        do_constant_folding=True,
        dynamo=False,
    )


def calibration_texts(data_dir: Path, seed: int, per_file: int = 100) -> list[str]:
    """``per_file`` texts from each training CSV under ``data_dir`` (never the eval splits)."""
    rng = random.Random(seed)
    texts: list[str] = []
    for path in sorted(data_dir.glob("*/train.csv")):
        with path.open(newline="", encoding="utf-8") as handle:
            rows = [row["text"] for row in csv.DictReader(handle) if row["text"].strip()]
        texts += rng.sample(rows, min(per_file, len(rows)))
    if not texts:
        raise FileNotFoundError(f"no */train.csv under {data_dir} to calibrate int8 activations on")
    return texts


def export_all(
    cfg: BuildConfig,
    teacher: MultiHeadClassifier,
    student: MultiHeadClassifier,
    heads: list[str],
    calibration: Sequence[str] | None = None,
) -> None:
    """Student and teacher, each as fp32 and static int8, under ``cfg.work_dir``."""
    from streamnlp.model.build.static_quant import quantize_static_int8

    texts = list(calibration) if calibration is not None else calibration_texts(cfg.data_dir, cfg.seed)
    for name, model in (("student", student), ("teacher", teacher)):
        fp32 = cfg.work_dir / f"{name}_fp32.onnx"
        export_onnx(model, heads, fp32)
        quantize_static_int8(
            fp32, cfg.work_dir / f"{name}_int8.onnx", texts, cfg.work_dir / "tokenizer.json", cfg.max_length
        )
        log.info("exported %s", name)
