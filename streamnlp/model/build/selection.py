"""Selection scores from a model's logits on the held-out splits: each split's one number, the means the
build chooses by, and (``streamnlp model compare``) which differences between two sets of weights are more
than resampling noise.

Why the last: versions are chosen by rules such as "no out-of-source split lower", and a difference of
one or two rows on a 135-row written split, or of 0.04 macro-F1 points on SMS/LiveJournal, decides them.
A paired bootstrap (each split's rows drawn with repeats, the same draw for both sets of weights) gives
an interval for each split's difference and for the means over groups of splits, so a rule can be
written before scoring as "not lower beyond the interval" rather than on the last digit.

Pure numpy on each split's logits; computing the logits is ``finetune``'s (torch).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from streamnlp.model.build.corpus import BINARY_COLUMNS, SENTIMENT, Corpus, Selection
from streamnlp.model.metrics import OOS, score


def selection_value(sel: Selection, labels: Sequence[str], logits: np.ndarray) -> float:
    """The one number a selection split contributes (its ``metric``) from the head's logits."""
    if sel.metric == "binary_accuracy":
        pred = np.asarray(BINARY_COLUMNS)[logits[:, BINARY_COLUMNS].argmax(-1)]
        return float((pred == np.asarray(sel.labels)).mean())
    pred = logits.argmax(-1)
    if sel.metric in ("neutral_rate", "negative_rate"):
        return float((pred == SENTIMENT.index(sel.metric.removesuffix("_rate"))).mean())
    report = score([labels[i] for i in sel.labels], [labels[i] for i in pred])
    if sel.metric == "in_scope_accuracy":
        return float(report.in_scope_accuracy or 0.0) if OOS in labels else report.accuracy
    return float(getattr(report, sel.metric))


def selection_summary(corpus: Corpus, logits: Mapping[str, np.ndarray]) -> dict[str, object]:
    """Every selection split's metric from its logits, the in-source and out-of-source means, and
    ``score``: the mean of all splits, the number checkpoints are chosen by."""
    values = {
        name: round(selection_value(sel, corpus.heads[sel.head], logits[name]), 4)
        for name, sel in corpus.selections.items()
    }
    means = {
        k: round(float(np.mean([values[n] for n in members])), 4) for k, members in _means(corpus).items()
    }
    return {"splits": values, **means}


def _means(corpus: Corpus) -> dict[str, list[str]]:
    """The splits behind each of the build's means (``out_of_source_mean``, ``in_source_mean``, ``score``)."""
    names = list(corpus.selections)
    return {
        "out_of_source_mean": [n for n in names if corpus.selections[n].out_of_source],
        "in_source_mean": [n for n in names if not corpus.selections[n].out_of_source],
        "score": names,
    }


@dataclass(frozen=True)
class Difference:
    """A candidate's value against the reference's on one split (or a mean of splits), and the central
    interval of the resampled difference."""

    reference: float
    candidate: float
    low: float
    high: float

    @property
    def delta(self) -> float:
        return self.candidate - self.reference

    @property
    def verdict(self) -> str:
        """``higher`` or ``lower`` when the whole interval lies on that side of zero, else ``noise``."""
        if self.low > 0:
            return "higher"
        if self.high < 0:
            return "lower"
        return "noise"


def mean_groups(corpus: Corpus, groups: Mapping[str, Sequence[str]] | None = None) -> dict[str, list[str]]:
    """The splits behind each mean: the build's three, then ``groups`` (``ValueError`` naming a split
    that is not a selection split, before anything is scored)."""
    names = list(corpus.selections)
    means = _means(corpus) | {k: list(v) for k, v in (groups or {}).items()}
    for group, members in means.items():
        unknown = sorted(set(members) - set(names))
        if unknown or not members:
            raise ValueError(f"group {group!r}: no selection split {', '.join(unknown) or '(empty)'}")
    return means


def paired_bootstrap(
    corpus: Corpus,
    reference: Mapping[str, np.ndarray],
    candidate: Mapping[str, np.ndarray],
    *,
    groups: Mapping[str, Sequence[str]] | None = None,
    samples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, Difference]:
    """Per split (and per mean: ``out_of_source_mean``, ``in_source_mean``, ``score`` and each of
    ``groups``), the two values on all rows (rounded as ``selection_summary`` rounds them, so the means
    match what ``train`` and ``soup`` print) and the ``level`` interval of the candidate-minus-reference
    difference over ``samples`` paired resamples. ``reference``/``candidate`` map split -> head logits."""
    names = list(corpus.selections)
    means = mean_groups(corpus, groups)
    rng = np.random.default_rng(seed)
    splits = [selection_summary(corpus, logits)["splits"] for logits in (reference, candidate)]
    full = np.array([[values[n] for n in names] for values in splits])  # type: ignore[index]
    drawn = np.empty((samples, len(names)))
    for j, name in enumerate(names):
        sel = corpus.selections[name]
        labels = corpus.heads[sel.head]
        gold = np.asarray(sel.labels)
        for r in range(samples):
            idx = rng.integers(0, len(gold), len(gold))
            part = replace(sel, texts=[], labels=gold[idx].tolist())
            drawn[r, j] = selection_value(part, labels, candidate[name][idx]) - selection_value(
                part, labels, reference[name][idx]
            )
    tail = (1 - level) / 2 * 100
    out: dict[str, Difference] = {}
    columns = {name: [j] for j, name in enumerate(names)} | {
        group: [names.index(n) for n in members] for group, members in means.items()
    }
    for key, cols in columns.items():
        diffs = drawn[:, cols].mean(axis=1)
        low, high = np.percentile(diffs, [tail, 100 - tail])
        out[key] = Difference(
            float(full[0, cols].mean()), float(full[1, cols].mean()), float(low), float(high)
        )
    return out


def parse_group(spec: str) -> tuple[str, list[str]]:
    """``NAME=SPLIT,SPLIT,...`` (``--group``)."""
    name, sep, members = spec.partition("=")
    if not sep or not name or not members:
        raise ValueError(f"--group {spec!r}: expected NAME=SPLIT,SPLIT,...")
    return name, [m.strip() for m in members.split(",") if m.strip()]


def format_table(differences: Mapping[str, Difference], level: float = 0.95) -> str:
    """Reference, candidate, difference and interval in points, one row per split or mean."""
    width = max(len(k) for k in differences)
    head = f"{'split':<{width}}  reference  candidate  difference  {level:.0%} interval      verdict"
    rows = [head]
    for key, d in differences.items():
        rows.append(
            f"{key:<{width}}  {100 * d.reference:9.2f}  {100 * d.candidate:9.2f}  {100 * d.delta:+10.2f}"
            f"  [{100 * d.low:+6.2f}, {100 * d.high:+6.2f}]  {d.verdict}"
        )
    return "\n".join(rows)
