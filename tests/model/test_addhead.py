"""`streamnlp model add-head` trains a new head on a user's CSV without torch and writes a new version.

The CSV is made up here from templates (three clearly separable kinds of customer message), so the
tests need neither ``../shared`` nor torch; they run against the shipped model.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import numpy_helper

from streamnlp.model.build.addhead import HeadReport, add_head, extract_features, train_head
from streamnlp.model.cli import model
from streamnlp.model.runtime import LabelModel, ModelError
from tests.model._shipped import SHIPPED

HEAD = "intent_support_test"

_ITEMS = ["blender", "laptop bag", "running shoes", "desk lamp", "phone case", "coffee grinder", "jacket"]
_WHEN = ["last monday", "two weeks ago", "yesterday", "on friday", "ten days ago"]
_AMOUNT = ["$25", "$40", "$12.99", "$60", "$8"]
_TEMPLATES = {
    "delivery": [
        "where is my {item}? it was supposed to arrive {when}",
        "my {item} still has not been delivered, I ordered it {when}",
        "the tracking for my {item} has not updated since {when}",
        "the courier never dropped off my {item}",
        "how much longer will shipping take for the {item} I ordered {when}",
    ],
    "billing": [
        "I was charged twice for my {item}",
        "my card was billed {amount} more than the price of the {item}",
        "please send me an invoice for the {item} I bought {when}",
        "why is there an extra charge of {amount} on my statement for the {item}",
        "the payment of {amount} for my {item} went through two times",
    ],
    "account_access": [
        "I can't log in to my account, the password reset email never arrives",
        "my account got locked after I typed the wrong password {when}",
        "the app keeps saying my username does not exist since {when}",
        "I forgot my password and the reset link has expired",
        "two-factor login code never comes so I cannot sign in to my account",
    ],
}
# Phrasings that appear in no template above.
_UNSEEN = {
    "delivery": [
        "my parcel never showed up and the tracking page is stuck",
        "when will my package get here?",
    ],
    "billing": [
        "you took the money from my credit card two times",
        "there is a fee on my bill I do not know",
    ],
    "account_access": [
        "I cannot sign in, it says my password is wrong",
        "help, I am locked out of my profile",
    ],
}
_PROBES = [
    "I absolutely love this, thank you so much",
    "my card was declined at the shop today",
    "cancel my order please",
    "set an alarm for 7 am",
    "this is the worst service I have ever had",
]


def _rows(n_per_class: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    rows = [
        (
            rng.choice(templates).format(
                item=rng.choice(_ITEMS), when=rng.choice(_WHEN), amount=rng.choice(_AMOUNT)
            ),
            label,
        )
        for label, templates in _TEMPLATES.items()
        for _ in range(n_per_class)
    ]
    rng.shuffle(rows)
    return rows


def _write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def csv_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_csv(tmp_path_factory.mktemp("data") / "support.csv", _rows(40))


@pytest.fixture(scope="module")
def added(tmp_path_factory: pytest.TempPathFactory, csv_path: Path) -> tuple[HeadReport, Path]:
    out = tmp_path_factory.mktemp("model") / "extended"
    report = add_head(SHIPPED, HEAD, csv_path, out, holdout=0.25, seed=0)
    return report, out


@pytest.fixture(scope="module")
def extended(added: tuple[HeadReport, Path]) -> LabelModel:
    return LabelModel.load(added[1])


def test_new_model_dir_loads_with_the_new_head_and_the_csv_labels(
    extended: LabelModel, shipped: LabelModel
) -> None:
    assert set(extended.heads) == set(shipped.heads) | {HEAD}
    assert list(extended.heads[HEAD]) == ["account_access", "billing", "delivery"]
    for head, labels in shipped.heads.items():
        assert tuple(extended.heads[head]) == tuple(labels)
    assert dict(extended.thresholds) == dict(shipped.thresholds)


def test_original_heads_give_the_same_outputs_as_the_shipped_model(
    extended: LabelModel, shipped: LabelModel
) -> None:
    before, _ = shipped.probabilities(_PROBES)
    after, _ = extended.probabilities(_PROBES, list(shipped.heads))
    for head in shipped.heads:
        np.testing.assert_allclose(after[head], before[head], rtol=0, atol=1e-6, err_msg=head)
    assert [p.heads for p in extended.predict(_PROBES, list(shipped.heads))] == [
        p.heads for p in shipped.predict(_PROBES)
    ]


def test_new_head_is_accurate_on_held_out_rows(added: tuple[HeadReport, Path]) -> None:
    report, _ = added
    assert (report.n_train, report.n_holdout) == (90, 30)
    assert report.holdout_accuracy >= 0.9


def test_new_head_labels_unseen_phrasings(extended: LabelModel) -> None:
    texts = [t for texts in _UNSEEN.values() for t in texts]
    gold = [label for label, texts in _UNSEEN.items() for _ in texts]
    got = [p.heads[HEAD].label for p in extended.predict(texts, [HEAD])]
    assert got == gold, texts


def test_new_head_matches_a_fresh_run_on_new_template_rows(extended: LabelModel) -> None:
    rows = _rows(10, seed=99)  # same templates, new draws of the fill-ins
    got = [p.heads[HEAD].label for p in extended.predict([t for t, _ in rows], [HEAD])]
    accuracy = np.mean([g == label for g, (_, label) in zip(got, rows, strict=True)])
    assert accuracy >= 0.95


def test_features_are_the_ones_the_shipped_heads_read(shipped: LabelModel) -> None:
    """A shipped head applied to the extracted features reproduces the runtime's probabilities."""
    graph = onnx.load(str(SHIPPED / "model.onnx")).graph
    params = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    weight, bias = params["model.heads.sentiment.weight"], params["model.heads.sentiment.bias"]
    feats = extract_features(SHIPPED, _PROBES)
    assert feats.shape == (len(_PROBES), weight.shape[1])
    logits = feats @ weight.T + bias
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    expected, _ = shipped.probabilities(_PROBES, ["sentiment"])
    np.testing.assert_allclose(probs, expected["sentiment"], rtol=0, atol=1e-5)


def test_manifest_version_is_bumped_and_hashes_verify(
    added: tuple[HeadReport, Path], csv_path: Path, shipped: LabelModel
) -> None:
    report, out = added
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    base, n = re.fullmatch(r"(.*)-(\d+)", shipped.version).groups()  # type: ignore[union-attr]
    assert manifest["version"] == report.version == f"{base}-{int(n) + 1}"
    assert set(manifest["files"]) == {"model.onnx", "tokenizer.json", "labels.json", "whole_text.onnx"}
    for name, digest in manifest["files"].items():
        assert _sha256(out / name) == digest, name
    assert manifest["whole_text"] == json.loads((SHIPPED / "manifest.json").read_text())["whole_text"]
    assert _sha256(out / "model.onnx") != _sha256(SHIPPED / "model.onnx")
    assert json.loads((out / "labels.json").read_text(encoding="utf-8"))[HEAD] == list(report.labels)
    entry = manifest["added_heads"][HEAD]
    assert entry["data_sha256"] == _sha256(csv_path)
    assert (entry["train_rows"], entry["holdout_rows"]) == (90, 30)
    assert f"## Added head `{HEAD}`" in (out / "MODEL_CARD.md").read_text(encoding="utf-8")


def test_cli_adds_a_head_without_torch(tmp_path: Path, csv_path: Path) -> None:
    """The CLI in a fresh interpreter where ``import torch`` fails: add-head must not need it."""
    out = tmp_path / "cli-model"
    code = (
        "import sys; sys.modules['torch'] = None; from streamnlp.cli import main; main(prog_name='streamnlp')"
    )
    args = ["model", "add-head", "--name", "intent_cli", "--data", str(csv_path)]
    args += ["--model", str(SHIPPED), "--out", str(out)]
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "head intent_cli: 3 labels, 108 training rows" in done.stdout
    assert "wrote version" in done.stdout
    runtime = LabelModel.load(out)
    assert list(runtime.heads["intent_cli"]) == ["account_access", "billing", "delivery"]
    (prediction,) = runtime.predict(["I was charged twice for my jacket"], ["intent_cli"])
    assert prediction.heads["intent_cli"].label == "billing"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("sentiment", "already exists"),
        ("intent medical", "must be an identifier"),
        ("1st_head", "must be an identifier"),
        ("input_ids", "clashes with a tensor"),
    ],
)
def test_bad_or_duplicate_head_name_fails_clearly(
    tmp_path: Path, csv_path: Path, name: str, message: str
) -> None:
    out = tmp_path / "never"
    with pytest.raises(ModelError, match=message):
        add_head(SHIPPED, name, csv_path, out)
    assert not out.exists()


def test_single_label_csv_fails_clearly(tmp_path: Path) -> None:
    data = _write_csv(tmp_path / "one.csv", [(t, "billing") for t, _ in _rows(5)])
    args = ["add-head", "--name", "intent_x", "--data", str(data)]
    result = CliRunner().invoke(model, [*args, "--model", str(SHIPPED), "--out", str(tmp_path / "never")])
    assert result.exit_code != 0
    assert "at least two distinct labels" in result.output
    assert not (tmp_path / "never").exists()


def test_train_head_learns_raw_unscaled_features_deterministically() -> None:
    """Trained on standardised features, returned for raw ones: with a large offset and scales from 1 to
    1000, the logits computed on the raw features must still separate the classes."""
    rng = np.random.default_rng(0)
    n = 300
    y = rng.integers(0, 3, n)
    feats = rng.normal(0.0, 1.0, (n, 8)) * np.array([1000, 1, 1, 1, 1, 1, 1, 1]) + 500.0
    feats[:, 1] += 10.0 * (y - 1)  # the class signal: 10 units apart, against unit noise
    feats = feats.astype(np.float32)
    weight, bias = train_head(feats, y, 3, seed=1)
    assert weight.shape == (8, 3) and bias.shape == (3,)
    assert weight.dtype == np.float32 and bias.dtype == np.float32
    assert ((feats @ weight + bias).argmax(1) == y).mean() >= 0.98
    again = train_head(feats, y, 3, seed=1)
    np.testing.assert_array_equal(again[0], weight)
    np.testing.assert_array_equal(again[1], bias)


def test_train_head_keeps_a_constant_feature_harmless() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 100)
    feats = np.stack([y + rng.normal(0, 0.1, 100), np.full(100, 3.0)], axis=1).astype(np.float32)
    weight, bias = train_head(feats, y, 2)
    assert np.abs(weight[1]).max() < 1.0  # folding must not divide by a ~zero spread
    assert ((feats @ weight + bias).argmax(1) == y).mean() == 1.0


def test_train_head_rejects_labels_out_of_range() -> None:
    feats = np.zeros((4, 2), dtype=np.float32)
    with pytest.raises(ModelError, match="labels must lie"):
        train_head(feats, np.array([0, 1, 2, 3]), 3)


def test_add_head_asks_for_onnx_not_torch_when_onnx_is_missing(
    tmp_path: Path, csv_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    fake = lambda name, *rest: None if name == "onnx" else real(name, *rest)  # noqa: E731
    monkeypatch.setattr(importlib.util, "find_spec", fake)
    args = ["add-head", "--name", "intent_x", "--data", str(csv_path), "--model", str(SHIPPED)]
    result = CliRunner().invoke(model, [*args, "--out", str(tmp_path / "never")])
    assert result.exit_code != 0
    assert "missing add-head dependencies (onnx)" in result.output
    assert "torch" not in result.output and ".[dev]" in result.output
