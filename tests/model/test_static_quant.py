"""Activation ranges for static int8: a percentile cut leaves out the few tokens that set min and max."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from tokenizers import Tokenizer

from streamnlp.model.build.static_quant import activation_ranges

TOKENIZER = Path(__file__).resolve().parents[2] / "models" / "squeezebert-int8" / "tokenizer.json"
OUTLIER = "now"  # one word piece, in no other calibration text


def _tiny_model(path: Path, outlier_id: int) -> None:
    """input_ids -> a word table (every row small, one row huge) -> one weight MatMul."""
    rng = np.random.default_rng(0)
    table = rng.uniform(-1.0, 1.0, size=(30522, 4)).astype(np.float32)
    table[outlier_id] = [50.0, -40.0, 30.0, -20.0]
    weight = rng.normal(size=(4, 3)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["table", "input_ids"], ["embedded"]),
            helper.make_node("MatMul", ["embedded", "weight"], ["logits"], name="/model/layers.0/MatMul"),
            helper.make_node("Identity", ["attention_mask"], ["mask_out"]),
        ],
        "tiny",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, None]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, [1, None]),
        ],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, None),
            helper.make_tensor_value_info("mask_out", TensorProto.INT64, None),
        ],
        [numpy_helper.from_array(table, "table"), numpy_helper.from_array(weight, "weight")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


@pytest.fixture()
def texts() -> list[str]:
    words = "where is my order please help me change the delivery address thank you".split()
    plain = [" ".join(words[i : i + 6]) for i in range(len(words) - 5)] * 40
    return [*plain, f"call me {OUTLIER}"]


def test_a_percentile_range_leaves_out_a_rare_outlier_that_min_max_keeps(
    tmp_path: Path, texts: list[str]
) -> None:
    outlier_id = Tokenizer.from_file(str(TOKENIZER)).token_to_id(OUTLIER)
    assert isinstance(outlier_id, int)
    model = tmp_path / "tiny.onnx"
    _tiny_model(model, outlier_id)

    full = activation_ranges(model, texts, TOKENIZER, 32, 100.0)["embedded"]
    cut = activation_ranges(model, texts, TOKENIZER, 32, 99.9)["embedded"]

    assert full == (-40.0, 50.0)  # percentile 100 is min and max
    assert -1.0 <= cut[0] < 0.0 < cut[1] <= 1.0  # the one outlier token no longer sets the scale


def test_a_range_always_contains_zero(tmp_path: Path) -> None:
    model = tmp_path / "tiny.onnx"
    _tiny_model(model, outlier_id=0)
    low, high = activation_ranges(model, ["hello there"] * 20, TOKENIZER, 32, 99.99)["embedded"]
    assert low <= 0.0 <= high
