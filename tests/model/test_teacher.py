"""Teacher soft labels: cross-fitted (no row scored by a regression that saw it) and tied to their rows.

These need neither torch, the teacher nor ``../shared``: they run on features and rows made here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from streamnlp.model.build.corpus import Corpus, Selection, Source
from streamnlp.model.build.teacher import attach_soft_labels, cross_fit, sentiment_corpus, text_keys


def test_cross_fitted_labels_do_not_memorise_rows() -> None:
    """Random features with random labels: a regression scoring its own training rows fits them well
    above chance; scored out of fold, as soft labels are, the rows are back at chance."""
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(400, 64)).astype(np.float32)
    labels = rng.integers(0, 4, size=400)
    probs = cross_fit(feats, labels, 4, folds=4)
    assert probs.shape == (400, 4)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    assert (probs.argmax(1) == labels).mean() < 0.4  # chance is 0.25


def test_cross_fitted_labels_follow_a_learnable_signal() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, size=300)
    feats = rng.normal(size=(300, 16)).astype(np.float32)
    feats[np.arange(300), labels] += 3.0
    probs = cross_fit(feats, labels, 3, folds=3)
    assert (probs.argmax(1) == labels).mean() > 0.9


def _corpus(texts: list[str]) -> Corpus:
    source = Source("banking77", "intent_banking", list(texts), [0, 1, 0], per_epoch=3)
    return Corpus({"intent_banking": ["a", "b"]}, {"banking77": source}, {})


def test_stored_soft_labels_attach_to_the_rows_they_were_made_for(tmp_path: Path) -> None:
    texts = ["where is my card", "top up failed", "change my pin"]
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]], dtype=np.float16)
    np.savez_compressed(tmp_path / "banking77.npz", keys=text_keys(texts), probs=probs)
    corpus = _corpus(texts)
    assert attach_soft_labels(corpus, tmp_path) == ["banking77"]
    soft = corpus.sources["banking77"].soft
    assert soft is not None
    np.testing.assert_allclose(soft, probs.astype(np.float32))


def test_soft_labels_for_changed_rows_are_refused(tmp_path: Path) -> None:
    made_for = ["where is my card", "top up failed", "change my pin"]
    np.savez_compressed(
        tmp_path / "banking77.npz", keys=text_keys(made_for), probs=np.zeros((3, 2), np.float16)
    )
    with pytest.raises(ValueError, match="do not match"):
        attach_soft_labels(_corpus(["where is my card", "change my pin", "top up failed"]), tmp_path)


def test_the_tuned_teacher_learns_and_is_chosen_on_sentiment_only() -> None:
    """The fine-tuned teacher labels sentiment; its corpus keeps every sentiment source (so that it
    labels those its own recipe draws no rows from, which a student run may draw) and the sentiment
    selection splits (the student's held-out splits), nothing else."""
    sentiment = ["negative", "neutral", "positive"]
    corpus = Corpus(
        {"sentiment": sentiment, "intent_banking": ["a", "b"]},
        {
            "semeval": Source("semeval", "sentiment", ["bad day"], [0], per_epoch=5),
            "sst2_sentences": Source("sst2_sentences", "sentiment", ["a fine film"], [1], per_epoch=0),
            "banking77": Source("banking77", "intent_banking", ["top up"], [0], per_epoch=5),
        },
        {
            "sms": Selection("sms", "sentiment", ["ok"], [1], True, "macro_f1"),
            "banking77": Selection("banking77", "intent_banking", ["pin"], [1], False, "accuracy"),
        },
    )
    tuned = sentiment_corpus(corpus)
    assert tuned.heads == {"sentiment": sentiment}
    assert list(tuned.sources) == ["semeval", "sst2_sentences"]
    assert list(tuned.selections) == ["sms"]


def test_a_source_without_labels_of_its_own_takes_the_teachers(tmp_path: Path) -> None:
    texts = ["a fine , fine film", "a dull , dull film"]
    probs = np.array([[0.2, 0.8], [0.9, 0.1]], dtype=np.float16)
    np.savez_compressed(tmp_path / "sst2_augmented.npz", keys=text_keys(texts), probs=probs)
    source = Source("sst2_augmented", "sentiment", texts, per_epoch=2, binary=True, teacher_labelled=True)
    corpus = Corpus({"sentiment": ["negative", "neutral", "positive"]}, {"sst2_augmented": source}, {})
    attach_soft_labels(corpus, tmp_path)
    assert source.labels == [1, 0]  # indices into BINARY: positive, negative


def test_the_teacher_labels_its_unlabelled_sources_without_training_on_them() -> None:
    unlabelled = Source("sst2_augmented", "sentiment", ["a fine film"], per_epoch=0, teacher_labelled=True)
    corpus = Corpus({"sentiment": ["negative", "neutral", "positive"]}, {"sst2_augmented": unlabelled}, {})
    assert list(sentiment_corpus(corpus).sources) == ["sst2_augmented"]
