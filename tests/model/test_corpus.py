"""Training-data splits for model v2: held-out phrasings really are unseen, and splits are reproducible.

These need neither torch nor ``../shared``: they run on rows written here.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from streamnlp.model.build.corpus import (
    SENTENCE_WORDS,
    content_key,
    health_mentions,
    hold_out,
    note_passages,
    reports_trouble,
    split_by_phrasing,
    split_sentences,
    template_key,
)

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


NOTE = (
    "CHIEF COMPLAINT: , Right knee pain.,HISTORY OF PRESENT ILLNESS: , The patient is a 54-year-old male who"
    " twisted his knee while playing tennis three weeks ago. He reports swelling and pain on stairs.  ,"
    "PHYSICAL EXAMINATION: , " + " ".join(f"finding{i}" for i in range(50)) + ". Gait is normal."
)


def test_note_passages_are_whole_sentences_in_order_within_the_limit() -> None:
    passages = note_passages(NOTE, words=20)
    assert all(0 < len(p.split()) <= 20 for p in passages)
    assert passages[0].startswith("CHIEF COMPLAINT:")  # the note's opening, which the runtime reads first
    assert passages[1] == (
        "The patient is a 54-year-old male who twisted his knee while playing tennis three weeks ago."
    )
    # a sentence longer than a passage keeps its first words; the next sentence starts a new passage
    assert passages[-2].split() == [f"finding{i}" for i in range(20)]
    assert passages[-1] == "Gait is normal."
    assert note_passages(NOTE, words=20) == passages


def test_held_out_sentences_are_long_and_never_trained_on() -> None:
    phrases = [(f"good {i}", "positive") for i in range(50)]
    sentences = [
        (f"it is not the film it wants to be, and scene {i} shows why", "negative") for i in range(40)
    ]
    train, trained_sentences, held = split_sentences(phrases + sentences, 10, seed=13)
    assert len(held) == 10 and all(len(t.split()) >= SENTENCE_WORDS for t, _ in held)
    assert not set(held) & set(train) and not set(held) & set(trained_sentences)
    assert set(trained_sentences) == set(sentences) - set(held)
    assert set(phrases) <= set(train)


def test_per_epoch_option_refuses_an_unknown_source_and_names_the_known_ones() -> None:
    from click.testing import CliRunner

    from streamnlp.model.build.run import cli

    result = CliRunner().invoke(cli, ["train", "--per-epoch", "reviews=100"])
    assert result.exit_code == 2
    assert "sst2_sentences" in result.output and "banking77" in result.output


def test_model_card_names_what_each_run_changed() -> None:
    from streamnlp.model.build.card import recipe_text

    recipe = {"lr": 1e-4, "seed": 19, "per_epoch": {"sst2_sentences": 8000}, "train_word_table": True}
    assert recipe_text(recipe) == "lr 0.0001, seed 19, sst2_sentences 8,000 rows/epoch, word table trained"
    assert recipe_text({}) == "-"
    soft = {"soft_labels": "training-state/teacher", "soft_weight": 0.8}
    assert recipe_text(soft) == "teacher soft labels (weight 0.8)"
    assert recipe_text({"soft_labels": "training-state/teacher"}) == "teacher soft labels"


def test_train_refuses_a_soft_weight_without_soft_labels() -> None:
    from click.testing import CliRunner

    from streamnlp.model.build.run import cli

    result = CliRunner().invoke(cli, ["train", "--soft-weight", "0.8"])
    assert result.exit_code == 2
    assert "--soft-labels" in result.output


def test_earlier_runs_are_read_in_run_order_from_a_folder_of_numbered_progress_files(tmp_path) -> None:
    from streamnlp.model.build.run import _progress_files

    runs = tmp_path / "runs"
    runs.mkdir()
    for n in (10, 2, 1):
        (runs / f"{n}.json").write_text("{}")
    state = tmp_path / "state"
    state.mkdir()
    (state / "progress.json").write_text("{}")
    files = _progress_files((runs, state))
    assert [f.name for f in files] == ["1.json", "2.json", "10.json", "progress.json"]


def test_model_card_shows_the_teacher_behind_the_soft_labels_and_only_then() -> None:
    from streamnlp.model.build.card import _teacher_rows

    assert _teacher_rows({}) == []
    teacher = {
        "teacher": "all-mpnet-base-v2, top 3 layers and a sentiment head fine-tuned",
        "progress": {
            "samples": 52512,
            "train_seconds": 1800.0,
            "history": [{"epoch": 0, "splits": {"sms_livejournal": 0.7312}, "score": 0.7312}],
        },
        "eval": {
            "sst2_dev.csv": {"accuracy": 0.6, "macro_f1": 0.7, "macro_recall": 0.6, "binary_accuracy": 0.91}
        },
        "agreement_with_labels": {"semeval": 0.8},
    }
    text = "\n".join(_teacher_rows({"teacher": teacher}))
    assert "52,512 training samples, 0.50 h" in text
    assert "| 0 | 73.12 | 73.12 |" in text
    assert "| sst2_dev | 60.00 | 70.00 | 60.00 | 91.00 |" in text
    assert "semeval 80.00" in text
    assert "sst2_augmented" not in text
    student = {"recipe": {"per_epoch": {"sst2_augmented": 15000}}}
    text = "\n".join(_teacher_rows({"teacher": teacher, "progress": student}))
    assert "`sst2_augmented` (15,000 rows per epoch)" in text
    assert "sst2_contrast" not in text
    earlier = {"recipe": {"per_epoch": {"sst2_contrast": 12000}}}  # named when any run behind it drew it
    text = "\n".join(_teacher_rows({"teacher": teacher, "progress": student, "earlier": [earlier]}))
    assert "`sst2_contrast` (12,000 rows per epoch)" in text


def test_training_uses_bf16_only_where_the_cpu_has_it_and_a_resumed_run_keeps_its_choice(
    tmp_path: Path,
) -> None:
    from streamnlp.model.build.run import _bf16_choice, cpu_has_bf16

    avx2 = tmp_path / "avx2"
    avx2.write_text("flags\t\t: fpu sse2 avx avx2 fma\n")
    bf16 = tmp_path / "bf16"
    bf16.write_text("flags\t\t: fpu avx2 avx512f avx512_bf16\n")
    assert not cpu_has_bf16(avx2) and cpu_has_bf16(bf16)
    assert not cpu_has_bf16(tmp_path / "missing")

    state = tmp_path / "state"
    state.mkdir()
    (state / "progress.json").write_text('{"recipe": {"bf16": true}}')
    assert _bf16_choice(None, state) is True  # whatever this machine has
    assert _bf16_choice(False, state) is False  # an explicit choice wins (and the recipe check then refuses)
    (state / "progress.json").write_text('{"recipe": {"epochs": 1}}')
    assert _bf16_choice(None, state) is False  # recorded before runs had the option: it trained in fp32
    fresh = tmp_path / "fresh"
    assert _bf16_choice(None, fresh) is cpu_has_bf16()  # a new run: what this machine computes itself


def test_health_mentions_keep_rows_naming_a_symptom_or_treatment_whatever_their_label() -> None:
    rows = [
        ("two weeks on these meds and my migraines are gone!", "positive"),
        ("the side effects were awful", "negative"),
        ("Doctor's appointment at 3", "neutral"),
        ("painting the fence today", "neutral"),  # a word that only starts like one
        ("best concert ever", "positive"),
    ]
    assert health_mentions(rows) == rows[:3]


def test_written_ecommerce_requests_cover_every_intent_evenly_in_words_of_their_own() -> None:
    """The out-of-source splits written for the e-commerce head: every one of Bitext's 27 intents, five
    requests each, none repeated within or across the two splits and the report-only probe, none phrased
    on one of Bitext's templates (sampled in ``FRAMES``' style: "i want to ..., what can i do?" and its
    kin are how Bitext's rows open and close)."""
    from collections import Counter

    from streamnlp.model.build.corpus import WRITTEN_DIR, WRITTEN_SPLITS
    from streamnlp.model.evaluate import read_labelled_rows

    probe = Path(__file__).parents[2] / "bench" / "probes" / "ecommerce_rephrased.csv"
    seen = {text.lower() for text, _ in read_labelled_rows(probe)}
    bitext_endings = ("what can i do?", "what should i do?", "what do i have to do?", "can you help me?")
    assert len(WRITTEN_SPLITS) == 2
    for name in WRITTEN_SPLITS.values():
        rows = read_labelled_rows(WRITTEN_DIR / name)
        per_intent = Counter(label for _, label in rows)
        assert len(per_intent) == 27 and set(per_intent.values()) == {5}, name
        texts = {text.lower() for text, _ in rows}
        assert len(texts) == len(rows) and not texts & seen, name
        seen |= texts
        assert not [t for t, _ in rows if t.lower().endswith(bitext_endings)], name


def test_requests_that_report_trouble_or_swear_are_not_counted_as_plainly_neutral() -> None:
    assert reports_trouble("my online account was hacked, help me recover it")
    assert reports_trouble("I can't find my bills, how do I view them?")
    assert reports_trouble("i cant understand you, how do i contact a person?")
    assert not reports_trouble("I want to cancel my order, can you help me?")
    assert not reports_trouble("how do I recover my password?")
