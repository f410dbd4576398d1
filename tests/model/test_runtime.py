"""The shipped model loads, verifies itself, and labels text consistently."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from streamnlp.model.manifest import MANIFEST, read_json, sha256
from streamnlp.model.runtime import (
    EXACT_INT8_ON_X86,
    LabelModel,
    ModelError,
    length_sorted_batches,
    make_session,
)
from tests.model._shipped import SHIPPED

HEADS = {
    "sentiment",
    "intent_ecommerce",
    "intent_banking",
    "intent_general",
    "intent_assistant",
    "medical_specialty",
}


def _copy(tmp_path: Path) -> Path:
    dest = tmp_path / "model"
    shutil.copytree(SHIPPED, dest)
    return dest


def test_manifest_lists_and_matches_every_file() -> None:
    manifest = read_json(SHIPPED / MANIFEST)
    assert set(manifest["files"]) == {"model.onnx", "tokenizer.json", "labels.json", "whole_text.onnx"}
    for name, digest in manifest["files"].items():
        assert sha256(SHIPPED / name) == digest
    assert manifest["heads"]["sentiment"] == ["negative", "neutral", "positive"]
    assert "oos" in manifest["heads"]["intent_general"]
    assert len(manifest["heads"]["intent_banking"]) == 77
    assert len(manifest["heads"]["intent_general"]) == 151
    assert len(manifest["heads"]["intent_assistant"]) == 64
    assert len(manifest["heads"]["medical_specialty"]) == 17
    assert manifest["whole_text"]["heads"] == ["medical_specialty"]


def test_loads_with_expected_heads(shipped: LabelModel) -> None:
    assert set(shipped.heads) == HEADS
    assert shipped.version and shipped.name
    assert shipped.max_length == 128


def test_corrupt_file_is_a_model_error(tmp_path: Path) -> None:
    model_dir = _copy(tmp_path)
    data = bytearray((model_dir / "labels.json").read_bytes())
    data[5] ^= 0x01
    (model_dir / "labels.json").write_bytes(bytes(data))
    with pytest.raises(ModelError, match="corrupt"):
        LabelModel.load(model_dir)


def test_missing_file_is_a_model_error(tmp_path: Path) -> None:
    model_dir = _copy(tmp_path)
    (model_dir / "model.onnx").unlink()
    with pytest.raises(ModelError, match="missing"):
        LabelModel.load(model_dir)


def test_missing_manifest_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"manifest\.json"):
        LabelModel.load(tmp_path)


def test_predictions_are_deterministic(shipped: LabelModel) -> None:
    texts = ["where is my parcel", "I love this!", "what's the weather tomorrow"]
    assert shipped.predict(texts) == shipped.predict(texts)


def test_batch_padding_matches_one_at_a_time(shipped: LabelModel) -> None:
    texts = [
        "hi",
        "my card payment was declined at the supermarket this morning, why?",
        "cancel my order please",
        "this film is a tedious, overlong mess",
    ]
    batched = shipped.predict(texts)
    for text, together in zip(texts, batched, strict=True):
        (alone,) = shipped.predict([text])
        for head in HEADS:
            assert alone.heads[head].label == together.heads[head].label
            # int8 activations are quantized per batch, so scores move slightly with batch composition
            assert alone.heads[head].score == pytest.approx(together.heads[head].score, abs=0.05)


def test_length_sorted_batches_cover_every_row_once_shortest_first() -> None:
    lengths = [5, 1, 3, 1, 9, 3, 2]
    batches = length_sorted_batches(lengths, 3)
    assert [len(b) for b in batches] == [3, 3, 1]
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))
    assert [lengths[i] for i in flat] == sorted(lengths)
    assert flat[:2] == [1, 3]  # equal lengths keep their input order
    assert length_sorted_batches([], 8) == []


def test_long_text_is_truncated_and_flagged(shipped: LabelModel) -> None:
    short, long = shipped.predict(["short text", "word " * 500])
    assert not short.truncated
    assert long.truncated


def test_only_requested_heads_are_returned(shipped: LabelModel) -> None:
    (pred,) = shipped.predict(["I want a refund"], heads=["intent_ecommerce"])
    assert set(pred.heads) == {"intent_ecommerce"}
    assert 0.0 < pred.heads["intent_ecommerce"].score <= 1.0


def test_unknown_head_is_a_model_error(shipped: LabelModel) -> None:
    with pytest.raises(ModelError, match="unknown heads"):
        shipped.predict(["hello"], heads=["intent_medical"])


def test_empty_batch(shipped: LabelModel) -> None:
    assert shipped.predict([]) == []


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("This is the best movie I have seen in years, absolutely wonderful.", "positive"),
        ("Terrible service, I am furious and will never come back.", "negative"),
    ],
)
def test_obvious_sentiment(shipped: LabelModel, text: str, label: str) -> None:
    (pred,) = shipped.predict([text], heads=["sentiment"])
    assert pred.heads["sentiment"].label == label


@pytest.mark.parametrize(
    ("head", "text", "label"),
    [
        ("intent_banking", "My card still hasn't arrived, it's been two weeks.", "card_arrival"),
        ("intent_general", "how do you say thank you in french", "translate"),
        ("intent_ecommerce", "I forgot my password and cannot log in to my account", "recover_password"),
    ],
)
def test_obvious_intent(shipped: LabelModel, head: str, text: str, label: str) -> None:
    (pred,) = shipped.predict([text], heads=[head])
    assert pred.heads[head].label == label


def test_onnx_signature() -> None:
    import onnxruntime as ort

    session = ort.InferenceSession(str(SHIPPED / "model.onnx"), providers=["CPUExecutionProvider"])
    inputs = {i.name: i for i in session.get_inputs()}
    assert set(inputs) == {"input_ids", "attention_mask"}
    assert all(i.type == "tensor(int64)" and len(i.shape) == 2 for i in inputs.values())
    assert all(isinstance(d, str) for i in inputs.values() for d in i.shape)  # dynamic batch and seq
    outputs = {o.name: o.shape for o in session.get_outputs()}
    assert set(outputs) == HEADS - {"medical_specialty"}  # a whole-text head, in whole_text.onnx
    assert outputs["sentiment"][1] == 3
    whole = ort.InferenceSession(str(SHIPPED / "whole_text.onnx"), providers=["CPUExecutionProvider"])
    assert {i.name for i in whole.get_inputs()} == {"bag_ids", "bag_mask"}
    assert {o.name: o.shape[1] for o in whole.get_outputs()} == {"medical_specialty": 17}


def test_low_confidence_general_intent_falls_back_to_oos(shipped: LabelModel) -> None:
    import numpy as np

    rule = shipped.thresholds["intent_general"]
    labels = shipped.heads["intent_general"]
    assert rule["label"] == "oos" and 0.0 < float(rule["min_score"]) < 1.0
    flat = np.full(len(labels), 1.0 / len(labels))
    assert shipped.decide("intent_general", flat).label == "oos"
    confident = np.zeros(len(labels))
    confident[labels.index("translate")] = 1.0
    assert shipped.decide("intent_general", confident).label == "translate"


def test_shipped_int8_weights_fit_seven_bits_so_no_cpu_saturates_them() -> None:
    """u8 x s8 kernels without VNNI sum pairs of products in int16: codes past 64 would saturate there and
    give labels that depend on the machine."""
    import onnx
    from onnx import TensorProto, numpy_helper

    graph = onnx.load(str(SHIPPED / "model.onnx")).graph
    weights = {n.input[1] for n in graph.node if n.op_type == "MatMulIntegerToFloat"}
    codes = [numpy_helper.to_array(i) for i in graph.initializer if i.name in weights]
    assert codes and all(i.data_type == TensorProto.INT8 for i in graph.initializer if i.name in weights)
    assert max(int(np.abs(c.astype(int)).max()) for c in codes) <= 64


def test_sessions_ask_for_exact_int8_products_on_every_x86_cpu() -> None:
    session = make_session(SHIPPED / "model.onnx")
    assert session.get_session_options().get_session_config_entry(EXACT_INT8_ON_X86) == "1"
