"""Metrics behave as defined, including the out-of-scope split."""

from __future__ import annotations

import pytest

from streamnlp.model.metrics import score


def test_perfect_and_half() -> None:
    assert score(["a", "b"], ["a", "b"]).accuracy == 1.0
    report = score(["a", "a", "b", "b"], ["a", "b", "b", "b"])
    assert report.accuracy == 0.75
    assert report.macro_recall == pytest.approx((0.5 + 1.0) / 2)
    assert report.macro_f1 == pytest.approx((2 / 3 + 0.8) / 2)
    assert report.confusions == [("a", "b", 1)]


def test_oos_metrics() -> None:
    report = score(["x", "y", "oos", "oos"], ["x", "oos", "oos", "y"])
    assert report.in_scope_accuracy == 0.5
    assert report.oos_recall == 0.5


def test_mismatched_lengths_rejected() -> None:
    with pytest.raises(ValueError):
        score(["a"], [])
