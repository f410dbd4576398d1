"""Selection scores from logits and the paired bootstrap behind ``streamnlp model compare``: numpy only,
on splits written here (no torch, no ``../shared``)."""

from __future__ import annotations

import numpy as np
import pytest

from streamnlp.model.build.corpus import SENTIMENT, Corpus, Selection
from streamnlp.model.build.selection import mean_groups, paired_bootstrap, selection_summary

INTENTS = ["a", "b", "c"]


def _logits(pred: list[int], classes: int = 3) -> np.ndarray:
    return np.eye(classes)[pred] * 5.0


def _corpus(n_big: int = 600, n_small: int = 20) -> Corpus:
    rng = np.random.default_rng(1)
    big = rng.integers(0, 3, n_big).tolist()
    small = rng.integers(0, 3, n_small).tolist()
    return Corpus(
        {"intent": INTENTS, "sentiment": SENTIMENT},
        {},
        {
            "big": Selection("big", "intent", [""] * n_big, big, True, "accuracy"),
            "small": Selection("small", "intent", [""] * n_small, small, True, "accuracy"),
            "plain": Selection("plain", "sentiment", [""] * 50, [1] * 50, False, "neutral_rate"),
        },
    )


def _wrong(gold: list[int], rows: int) -> list[int]:
    """``gold`` with its first ``rows`` predictions shifted to another class."""
    return [(g + 1) % 3 if i < rows else g for i, g in enumerate(gold)]


def test_identical_weights_differ_by_nothing_and_get_no_verdict() -> None:
    corpus = _corpus()
    logits = {n: _logits(_wrong(s.labels, 5)) for n, s in corpus.selections.items()}
    table = paired_bootstrap(corpus, logits, logits, samples=200)
    assert set(table) == {"big", "small", "plain", "out_of_source_mean", "in_source_mean", "score"}
    assert all(d.delta == 0 and d.low == 0 and d.high == 0 and d.verdict == "noise" for d in table.values())


def test_a_large_gain_is_higher_and_one_row_on_a_small_split_is_noise() -> None:
    corpus = _corpus()
    sel = corpus.selections
    reference = {
        "big": _logits(_wrong(sel["big"].labels, 120)),
        "small": _logits(_wrong(sel["small"].labels, 5)),
    }
    candidate = {
        "big": _logits(_wrong(sel["big"].labels, 30)),
        "small": _logits(_wrong(sel["small"].labels, 6)),
    }
    reference["plain"] = candidate["plain"] = _logits([1] * 50)
    table = paired_bootstrap(corpus, reference, candidate, groups={"mine": ["big", "small"]}, samples=500)
    assert table["big"].reference == pytest.approx(0.8) and table["big"].candidate == pytest.approx(0.95)
    assert table["big"].verdict == "higher" and table["big"].low > 0.1
    assert table["small"].delta == pytest.approx(-0.05) and table["small"].verdict == "noise"
    assert table["mine"].delta == pytest.approx((0.15 - 0.05) / 2)
    assert table["out_of_source_mean"].delta == pytest.approx(table["mine"].delta)
    assert table["in_source_mean"].delta == 0


def test_intervals_are_the_same_for_the_same_seed() -> None:
    corpus = _corpus()
    sel = corpus.selections
    ref = {n: _logits(_wrong(s.labels, 10)) for n, s in sel.items()}
    cand = {n: _logits(_wrong(s.labels, 3)) for n, s in sel.items()}
    assert paired_bootstrap(corpus, ref, cand, samples=200, seed=3) == paired_bootstrap(
        corpus, ref, cand, samples=200, seed=3
    )


def test_a_group_naming_an_unknown_split_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"earlier.*nope"):
        mean_groups(_corpus(), {"earlier": ["big", "nope"]})


def test_summary_scores_each_split_by_its_metric_and_averages_by_kind() -> None:
    corpus = _corpus()
    sel = corpus.selections
    logits = {
        "big": _logits(_wrong(sel["big"].labels, 60)),
        "small": _logits(sel["small"].labels),
        "plain": _logits([1] * 40 + [0] * 10),
    }
    summary = selection_summary(corpus, logits)
    assert summary["splits"] == {"big": 0.9, "small": 1.0, "plain": 0.8}
    assert summary["out_of_source_mean"] == 0.95 and summary["in_source_mean"] == 0.8
    assert summary["score"] == pytest.approx(0.9)
