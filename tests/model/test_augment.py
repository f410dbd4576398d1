"""Recombined review sentences: new text built only from training rows, the same in every session."""

from __future__ import annotations

from streamnlp.model.build.augment import recombine

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
