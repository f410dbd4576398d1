"""Score a model head on any ``text,label`` CSV, with the runtime only (no torch)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streamnlp.model.metrics import Report, score
from streamnlp.model.runtime import LabelModel, ModelError, length_sorted_batches


@dataclass(frozen=True)
class Evaluation:
    report: Report
    predictions: list[str]
    unknown_gold: list[str]  # gold labels the head cannot produce (always counted as errors)


def read_labelled_rows(path: Path) -> list[tuple[str, str]]:
    """``(text, label)`` rows of a CSV with ``text`` and ``label`` columns; rows with a blank text are
    dropped. The one reader of such files: evaluation, ``add-head`` and the training corpus."""
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"text", "label"} <= set(reader.fieldnames):
            raise ModelError(
                f"{path} needs a header with 'text' and 'label' columns, got {reader.fieldnames}"
            )
        rows = [(r["text"], r["label"].strip()) for r in reader if (r["text"] or "").strip()]
    if not rows:
        raise ModelError(f"{path} has no labelled rows")
    return rows


def read_labelled_csv(path: Path) -> tuple[list[str], list[str]]:
    """Texts and gold labels from a CSV with ``text`` and ``label`` columns."""
    rows = read_labelled_rows(path)
    return [t for t, _ in rows], [lab for _, lab in rows]


def predict_labels(
    model: LabelModel,
    texts: Sequence[str],
    head: str,
    *,
    restrict: Sequence[str] | None = None,
    batch_size: int = 64,
) -> list[str]:
    """Predicted labels in input order; batches are length-sorted so each pads little.

    ``restrict`` limits the choice to those labels (e.g. positive/negative for a binary sentiment set);
    without it the model's own decision rule applies, including any out-of-scope threshold.
    """
    labels = list(model.heads[head])
    keep = None if restrict is None else np.array([lab in set(restrict) for lab in labels])
    out: list[str] = [""] * len(texts)
    for rows in length_sorted_batches([len(t) for t in texts], batch_size):
        batch = [texts[i] for i in rows]
        if keep is None:
            for i, pred in zip(rows, model.predict(batch, [head]), strict=True):
                out[i] = pred.heads[head].label
        else:
            probs, _ = model.probabilities(batch, [head])
            for i, p in zip(rows, np.where(keep, probs[head], -1.0), strict=True):
                out[i] = labels[int(p.argmax())]
    return out


def evaluate_csv(
    model: LabelModel, path: Path, head: str, *, restrict_to_gold: bool = False, worst: int = 10
) -> Evaluation:
    """Accuracy, macro-F1, macro-recall, worst confusions (and oos metrics) of ``head`` on ``path``."""
    texts, gold = read_labelled_csv(path)
    if head not in model.heads:
        raise ModelError(f"unknown head {head!r}; this model has {list(model.heads)}")
    known = set(model.heads[head])
    restrict = sorted(set(gold) & known) if restrict_to_gold else None
    pred = predict_labels(model, texts, head, restrict=restrict)
    return Evaluation(score(gold, pred, worst=worst), pred, sorted(set(gold) - known))
