"""Checkpoint and threshold selection on the held-out parts of ``shared/data`` (never on eval sets)."""

from __future__ import annotations

import numpy as np

from streamnlp.model.build.data import Corpus
from streamnlp.model.build.network import MultiHeadClassifier
from streamnlp.model.build.train import Encode, predict_logits
from streamnlp.model.metrics import OOS, score


def selection_metrics(model: MultiHeadClassifier, corpus: Corpus, encode: Encode) -> dict[str, float]:
    """Per-source selection metrics and their mean (``score``), the number checkpoints are chosen by."""
    out: dict[str, float] = {}
    for name, split in corpus.select.items():
        labels = corpus.heads[split.head]
        pred = predict_logits(model, split.texts, split.head, encode).argmax(-1)
        report = score([labels[i] for i in split.labels], [labels[i] for i in pred])
        if report.oos_recall is not None:
            out[f"{name}_in_scope_acc"] = report.in_scope_accuracy or 0.0
            out[f"{name}_oos_recall"] = report.oos_recall
        elif name == "tweeteval_sentiment":
            out[f"{name}_macro_recall"] = report.macro_recall
        else:
            out[f"{name}_acc"] = report.accuracy
    out["score"] = float(np.mean(list(out.values())))
    return out


def oos_threshold(
    probs: np.ndarray, gold: list[str], labels: list[str], max_in_scope_drop: float = 0.01
) -> float:
    """Smallest-risk max-probability threshold below which a query is called ``oos``.

    Picks the threshold that maximises (in-scope accuracy + oos recall) / 2 among thresholds that cost at
    most ``max_in_scope_drop`` in-scope accuracy versus no threshold.
    """
    oos = labels.index(OOS)
    g = np.array([labels.index(x) for x in gold])
    pred = probs.argmax(-1)
    top = probs.max(-1)
    in_scope = g != oos
    base = float((pred[in_scope] == g[in_scope]).mean())
    best, best_value = 0.0, -1.0
    for tau in np.arange(0.0, 0.96, 0.01):
        p = np.where(top < tau, oos, pred)
        acc = float((p[in_scope] == g[in_scope]).mean())
        recall = float((p[~in_scope] == oos).mean())
        if base - acc <= max_in_scope_drop and (acc + recall) / 2 > best_value:
            best, best_value = float(tau), (acc + recall) / 2
    return round(best, 2)
