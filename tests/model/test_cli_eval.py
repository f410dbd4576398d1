"""`streamnlp model eval` scores a head on any text,label CSV without torch."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from streamnlp.model.cli import model
from tests.model._shipped import SHIPPED


def _csv(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.csv"
    path.write_text(
        "text,label\n"
        "I absolutely love it,positive\n"
        '"worst purchase ever, awful",negative\n'
        "what a wonderful day,positive\n"
        "this is horrible and disappointing,negative\n",
        encoding="utf-8",
    )
    return path


def test_eval_prints_metrics(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        model, ["eval", "--data", str(_csv(tmp_path)), "--head", "sentiment", "--model", str(SHIPPED)]
    )
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.output and "macro-F1" in result.output


def test_eval_json(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        model,
        [
            "eval",
            "--data",
            str(_csv(tmp_path)),
            "--head",
            "sentiment",
            "--model",
            str(SHIPPED),
            "--json",
            "--restrict-to-gold",
        ],
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["n"] == 4
    assert payload["accuracy"] == 1.0


def test_eval_unknown_head_fails_cleanly(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        model, ["eval", "--data", str(_csv(tmp_path)), "--head", "nope", "--model", str(SHIPPED)]
    )
    assert result.exit_code != 0
    assert "unknown head" in result.output


def test_eval_rejects_csv_without_label_column(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("text,category\nhello,x\n", encoding="utf-8")
    result = CliRunner().invoke(
        model, ["eval", "--data", str(bad), "--head", "sentiment", "--model", str(SHIPPED)]
    )
    assert result.exit_code != 0
    assert "label" in result.output


def test_every_command_has_help() -> None:
    for command in ("build", "eval", "add-head", "info"):
        result = CliRunner().invoke(model, [command, "--help"])
        assert result.exit_code == 0
        assert "Usage" in result.output
