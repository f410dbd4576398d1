"""Training-data splits for model v2: held-out phrasings really are unseen, and splits are reproducible.

These need neither torch nor ``../shared``: they run on rows written here.
"""

from __future__ import annotations

import itertools

from streamnlp.model.build.corpus import content_key, hold_out, split_by_phrasing, template_key

FRAMES = [
    "i want to {v} my {n}",
    "can you help me {v} my {n}, please?",
    "ask an agent how i can {v} my {n}",
    "i need help to {v} the {n}",
    "where can i {v} my {n}",
    "i have a problem, how do i {v} my {n}?",
]
SLOTS = {
    "check_invoices": (["view", "see", "check"], ["invoice", "bill", "bills"]),
    "track_order": (["track", "follow", "locate"], ["order", "package", "parcel"]),
}


def _rows() -> list[tuple[str, str]]:
    return [
        (frame.format(v=v, n=n), label)
        for label, (verbs, nouns) in SLOTS.items()
        for frame, v, n in itertools.product(FRAMES, verbs, nouns)
    ]


def test_template_key_keeps_the_frame_and_drops_the_content() -> None:
    assert template_key("I want to view my invoice") == template_key("i want to track my parcel")
    assert template_key("I want to view my invoice") != template_key("where can I view my invoice")
    assert content_key("I want to view my invoice") == "view invoice"


def test_no_held_out_row_shares_its_template_or_content_with_a_training_row_of_its_intent() -> None:
    train, held = split_by_phrasing(_rows(), 0.4)
    assert held and train
    seen_templates = {(label, template_key(t)) for t, label in train}
    seen_contents = {(label, content_key(t)) for t, label in train}
    for text, label in held:
        assert (label, template_key(text)) not in seen_templates
        assert (label, content_key(text)) not in seen_contents


def test_phrasing_split_is_the_same_in_every_session() -> None:
    rows = _rows()
    assert split_by_phrasing(rows, 0.4) == split_by_phrasing(list(rows), 0.4)
    assert split_by_phrasing(rows, 0.4, salt="other") != split_by_phrasing(rows, 0.4)


def test_stratified_hold_out_keeps_every_label_on_both_sides() -> None:
    rows = [(f"text {i}", "a" if i % 10 else "b") for i in range(200)]
    train, held = hold_out(rows, 40, seed=1, stratify=True)
    assert {lab for _, lab in held} == {"a", "b"} == {lab for _, lab in train}
    assert len(train) + len(held) == len(rows)
    assert not {t for t, _ in train} & {t for t, _ in held}
    assert hold_out(rows, 40, seed=1, stratify=True) == (train, held)
