"""Classification metrics over label strings (numpy only, so ``model eval`` needs no torch)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

OOS = "oos"


@dataclass(frozen=True)
class Report:
    """Scores for one labelled set; ``oos_*`` only where gold labels include ``oos``."""

    n: int
    accuracy: float
    macro_f1: float
    macro_recall: float
    confusions: list[tuple[str, str, int]]
    in_scope_accuracy: float | None = None
    oos_recall: float | None = None

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "n": self.n,
            "accuracy": round(self.accuracy, 4),
            "macro_f1": round(self.macro_f1, 4),
            "macro_recall": round(self.macro_recall, 4),
        }
        if self.oos_recall is not None:
            out["in_scope_accuracy"] = round(self.in_scope_accuracy or 0.0, 4)
            out["oos_recall"] = round(self.oos_recall, 4)
        return out


def score(gold: Sequence[str], pred: Sequence[str], worst: int = 10) -> Report:
    """Accuracy, macro-F1 and macro-recall over gold classes, and the most frequent confusions."""
    if len(gold) != len(pred) or not gold:
        raise ValueError("gold and pred must be non-empty and equally long")
    g, p = np.asarray(gold, dtype=object), np.asarray(pred, dtype=object)
    hit = g == p
    f1s, recalls = [], []
    for label in sorted(set(gold)):
        tp = float(np.sum(hit & (g == label)))
        n_gold, n_pred = float(np.sum(g == label)), float(np.sum(p == label))
        recall = tp / n_gold
        precision = tp / n_pred if n_pred else 0.0
        recalls.append(recall)
        f1s.append(2 * precision * recall / (precision + recall) if tp else 0.0)
    confusions = Counter((a, b) for a, b in zip(gold, pred, strict=True) if a != b).most_common(worst)
    report = Report(
        n=len(gold),
        accuracy=float(hit.mean()),
        macro_f1=float(np.mean(f1s)),
        macro_recall=float(np.mean(recalls)),
        confusions=[(a, b, n) for (a, b), n in confusions],
    )
    if OOS in set(gold):
        in_scope = g != OOS
        return replace(
            report,
            in_scope_accuracy=float(hit[in_scope].mean()) if in_scope.any() else 0.0,
            oos_recall=float(hit[~in_scope].mean()),
        )
    return report
