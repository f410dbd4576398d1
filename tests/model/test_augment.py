"""Recombined and contrast-framed review sentences: new text built only from training rows, the same in
every session."""

from __future__ import annotations

import re

import pytest

from streamnlp.model.build.augment import (
    CONTRAST_FRAMES,
    MAX_SWAPS,
    NEGATION_FRAMES,
    POOL_MIN_COUNT,
    contrast,
    recombine,
    swap_content,
)

SENTENCES = [
    "the acting is wooden and the plot goes nowhere fast",
    "a warm and funny film with a big heart",
    "the script is sharp but the pacing drags in the middle",
]
PHRASES = ["the acting is wooden", "a big heart", "goes nowhere fast", "sharp and witty", "a cold heart"]


def test_recombined_sentences_swap_a_phrase_for_another_of_the_same_length() -> None:
    out = recombine(SENTENCES, PHRASES, 20, seed=1)
    assert out and len(set(out)) == len(out)
    assert not set(out) & set(SENTENCES)
    # a swap keeps the length: each new sentence is a training sentence with at most two spans changed
    for text in out:
        assert any(
            len(text.split()) == len(s.split())
            and sum(a != b for a, b in zip(text.split(), s.split(), strict=True)) <= 2 * 8
            for s in SENTENCES
        )
    assert "a warm and funny film with a cold heart" in out


def test_recombination_is_the_same_for_the_same_seed_whatever_the_phrase_order() -> None:
    assert recombine(SENTENCES, PHRASES, 10, seed=3) == recombine(SENTENCES, PHRASES[::-1], 10, seed=3)
    assert recombine(SENTENCES, PHRASES, 10, seed=3) != recombine(SENTENCES, PHRASES, 10, seed=4)


def test_sentences_without_a_known_phrase_give_nothing_rather_than_copies() -> None:
    assert recombine(["nothing in the pool here at all"], PHRASES, 5, seed=0) == []


LABELLED = [
    ("a warm and funny film", "positive"),
    ("sharp and witty", "positive"),
    ("the acting is wooden", "negative"),
    ("goes nowhere fast ,", "negative"),
    ("'s a mess", "negative"),
    ("bad", "negative"),
]


def _frame_pattern(frame: str) -> re.Pattern[str]:
    return re.compile(re.escape(frame).replace(r"\{a\}", "(?P<a>.+)").replace(r"\{b\}", "(?P<b>.+)") + "$")


def test_contrast_sentences_fill_a_frame_with_training_phrases_only() -> None:
    out = contrast(LABELLED, 200, seed=2)
    assert out and len(set(out)) == len(out)
    usable = {"a warm and funny film", "sharp and witty", "the acting is wooden", "goes nowhere fast"}
    polarity = {t.strip(" ,"): lab for t, lab in LABELLED}
    kinds = set()
    for text in out:
        fills = [
            m.groupdict()
            for frame in CONTRAST_FRAMES + NEGATION_FRAMES
            if (m := _frame_pattern(frame).match(text)) and set(m.groupdict().values()) <= usable
        ]
        assert fills, text  # a frame around phrases of the pool: no clitic tails, one-word rows or commas
        kinds |= {
            "negation"
            if len(f) == 1
            else ("same" if len(set(map(polarity.get, f.values()))) == 1 else "opposite")
            for f in fills
        }
    assert kinds == {"negation", "same", "opposite"}


def test_contrast_is_the_same_for_the_same_seed_whatever_the_row_order() -> None:
    assert contrast(LABELLED, 30, seed=5) == contrast(LABELLED[::-1], 30, seed=5)
    assert contrast(LABELLED, 30, seed=5) != contrast(LABELLED, 30, seed=6)


def test_contrast_refuses_phrases_of_one_polarity() -> None:
    with pytest.raises(ValueError, match="two polarities"):
        contrast([("a warm and funny film", "positive")], 5, seed=0)


REQUESTS = [
    f"i want to {verb} my {noun} please"
    for verb in ("track", "cancel", "change", "check", "view")
    for noun in ("order", "refund", "invoice", "delivery", "account")
]
REQUEST_FUNCTION_WORDS = frozenset("i want to my please".split())


def test_mixed_requests_swap_one_or_two_content_words_for_common_ones() -> None:
    """Each mixed request is a training request with 1..MAX_SWAPS content words replaced by words of
    other rows; function words stay, and a word of fewer than POOL_MIN_COUNT rows (a typo such as
    "tikket") is never swapped in."""
    rows = [*REQUESTS, "i want to view my tikket please"]
    common = {w for r in REQUESTS for w in r.split()} - REQUEST_FUNCTION_WORDS
    assert all(sum(w in r.split() for r in rows) >= POOL_MIN_COUNT for w in common)
    out = swap_content(rows, REQUEST_FUNCTION_WORDS, 40, seed=2)
    assert len(set(out)) == 40 and not set(out) & set(rows)
    for text in out:
        words = text.split()
        changes = [[w for w, b in zip(words, r.split(), strict=True) if w != b] for r in rows]
        # the row it was made from changed in 1..MAX_SWAPS places, each now a common word
        assert any(1 <= len(c) <= MAX_SWAPS and set(c) <= common for c in changes)
        assert words[:3] == ["i", "want", "to"] and words[4] == "my" and words[-1] == "please"


def test_mixed_requests_are_the_same_for_the_same_seed_whatever_the_row_order() -> None:
    first = swap_content(REQUESTS, REQUEST_FUNCTION_WORDS, 10, seed=5)
    assert first == swap_content(REQUESTS[::-1], REQUEST_FUNCTION_WORDS, 10, seed=5)
    assert first != swap_content(REQUESTS, REQUEST_FUNCTION_WORDS, 10, seed=6)
