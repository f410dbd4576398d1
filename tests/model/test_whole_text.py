"""Whole-text heads: the exported graph computes what the build fitted, and the runtime feeds it the
whole text, so a long note is labelled from all of it."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from streamnlp.model.build.bag import BagHead, export_bag_onnx
from streamnlp.model.labels import Labels
from streamnlp.model.manifest import MANIFEST, WHOLE_TEXT_FILE, file_hashes, read_json, write_json
from streamnlp.model.runtime import LabelModel, ModelError
from tests.model._shipped import SHIPPED


def _random_head(vocab: int = 200, slots: int = 40, labels: int = 5, seed: int = 3) -> BagHead:
    rng = np.random.default_rng(seed)
    remap = np.zeros(vocab, dtype=np.int64)
    seen = rng.choice(np.arange(10, vocab), size=slots - 1, replace=False)
    remap[seen] = np.arange(1, slots)
    idf = rng.uniform(1.0, 4.0, slots).astype(np.float32)
    idf[0] = 0.0
    return BagHead(
        "topic",
        [f"l{i}" for i in range(labels)],
        remap,
        idf,
        rng.normal(size=(slots, labels)).astype(np.float32),
        rng.normal(size=labels).astype(np.float32),
    )


def test_exported_graph_gives_the_logits_of_its_numpy_definition(tmp_path: Path) -> None:
    head = _random_head()
    export_bag_onnx([head], tmp_path / "bag.onnx")
    rng = np.random.default_rng(7)
    rows = [list(rng.integers(0, 200, size=n)) for n in (1, 5, 37, 120)]  # repeats and unseen ids too
    width = max(map(len, rows))
    ids = np.zeros((len(rows), width), dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, r in enumerate(rows):
        ids[i, : len(r)], mask[i, : len(r)] = r, 1
    ids[0, 1:] = 150  # padding positions hold real ids: the mask alone must keep them out
    session = ort.InferenceSession(str(tmp_path / "bag.onnx"), providers=["CPUExecutionProvider"])
    (got,) = session.run(["topic"], {"bag_ids": ids, "bag_mask": mask})
    np.testing.assert_allclose(got, head.logits(rows), rtol=1e-5, atol=1e-5)


def test_counts_not_order_decide_a_whole_text_label() -> None:
    head = _random_head()
    ids = [12, 40, 40, 77, 150, 199]
    np.testing.assert_allclose(head.logits([ids]), head.logits([ids[::-1]]), rtol=1e-6)


def test_a_manifest_naming_whole_text_heads_without_their_file_is_a_model_error(tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(SHIPPED, model_dir)
    (model_dir / WHOLE_TEXT_FILE).unlink(missing_ok=True)
    manifest = read_json(model_dir / MANIFEST)
    manifest["whole_text"] = {"heads": ["medical_specialty"], "max_tokens": 8192}
    manifest["files"] = file_hashes(model_dir)
    write_json(model_dir / MANIFEST, manifest)
    with pytest.raises(ModelError, match="whole-text"):
        LabelModel.load(model_dir)


# The same long, specialty-neutral opening (well over the encoder's 128-token window), then findings
# that only a reader of the rest of the note sees. Written for this project.
_OPENING = (
    "HISTORY OF PRESENT ILLNESS: The patient is a 58-year-old who was seen today in the clinic at the "
    "request of the primary care office for further evaluation. The patient arrived on time, accompanied "
    "by a family member, and was cooperative throughout the visit. Past medical history, past surgical "
    "history, family history and social history were reviewed with the patient and are unchanged from the "
    "previous visit. Medications were reconciled and allergies were confirmed. The patient denies fever, "
    "chills, night sweats or recent weight change. Vital signs were recorded by the nursing staff and are "
    "documented in the chart. The patient was informed about the purpose of today's visit, the findings "
    "below and the plan, and all questions were answered to the patient's satisfaction. "
)
_CARDIAC = (
    "FINDINGS: Echocardiogram shows an ejection fraction of 35% with left ventricular hypertrophy. "
    "Electrocardiogram shows atrial fibrillation with rapid ventricular response. Coronary angiography "
    "showed 90% stenosis of the left anterior descending artery. Chest x-ray shows pulmonary edema. "
    "ASSESSMENT: Congestive heart failure, atrial fibrillation, coronary artery disease. PLAN: Start "
    "metoprolol and anticoagulation, cardiac catheterization with stent placement."
)
_KNEE = (
    "FINDINGS: Examination of the right knee shows an effusion with tenderness over the medial joint line "
    "and a positive McMurray test. MRI of the knee shows a complex tear of the medial meniscus and "
    "tricompartmental osteoarthritis. ASSESSMENT: Medial meniscus tear, right knee. PLAN: Arthroscopic "
    "partial medial meniscectomy and chondroplasty; physical therapy after surgery."
)


def test_a_long_note_is_labelled_from_findings_past_the_encoder_window(shipped: LabelModel) -> None:
    head = "medical_specialty"
    cardiac, knee = shipped.predict([_OPENING * 2 + _CARDIAC, _OPENING * 2 + _KNEE], [head])
    assert cardiac.heads[head].label == "Cardiovascular / Pulmonary"
    assert knee.heads[head].label == "Orthopedic"
    assert not cardiac.truncated and not knee.truncated  # the whole-text head read all of each note
    # sentiment reads only the first window: asking for it too sets the flag
    assert all(lab.truncated for lab in shipped.predict([_OPENING * 2 + _KNEE], ["sentiment", head]))


# Either side of the encoder's window (126 word pieces and its two special tokens: "a " is one piece),
# a special token's text inside a text, and past the whole-text limit.
_EDGES = ["", "where is my order?", "x [SEP] y", "a " * 126, "a " * 127, _OPENING * 2 + _CARDIAC, "b " * 9000]


def test_asking_for_both_head_families_gives_each_the_labels_and_flags_it_gives_alone(
    shipped: LabelModel,
) -> None:
    encoder = shipped.predict(_EDGES, ["sentiment"])
    whole = shipped.predict(_EDGES, ["medical_specialty"])
    assert [lab.truncated for lab in encoder] == [False, False, False, False, True, True, True]
    assert [lab.truncated for lab in whole] == [False] * 6 + [True]
    expected = [
        Labels({**e.heads, **w.heads}, e.truncated or w.truncated)
        for e, w in zip(encoder, whole, strict=True)
    ]
    assert shipped.predict(_EDGES, ["sentiment", "medical_specialty"]) == expected


class _Counting:
    """A tokenizer that counts the texts it tokenizes."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self.texts = 0

    def encode(self, text: str, *args: Any, **kwargs: Any) -> Any:
        self.texts += 1
        return self._tokenizer.encode(text, *args, **kwargs)

    def encode_batch(self, texts: list[str], *args: Any, **kwargs: Any) -> Any:
        self.texts += len(texts)
        return self._tokenizer.encode_batch(texts, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tokenizer, name)


def test_a_text_read_by_both_head_families_is_tokenized_once(
    shipped: LabelModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert shipped._whole is not None
    encoder, whole = _Counting(shipped._tokenizer), _Counting(shipped._whole.tokenizer)
    monkeypatch.setattr(shipped, "_tokenizer", encoder)
    stand_in = dataclasses.replace(shipped._whole, tokenizer=whole)  # type: ignore[arg-type]
    monkeypatch.setattr(shipped, "_whole", stand_in)
    shipped.predict(_EDGES, ["sentiment", "medical_specialty"])  # the medical profile
    assert encoder.texts + whole.texts == len(_EDGES)
