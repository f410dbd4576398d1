"""Model soups: the mean of runs' weights, refused when the runs are not the same model.

These need neither torch nor ``../shared``: they run on small weight maps made here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from streamnlp.model.build.card import recipe_text
from streamnlp.model.build.soup import mean_weights, parse_ingredient, parse_mean, read_weights, write_weights


def _weights(seed: int, **shapes: tuple[int, ...]) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: rng.normal(size=s).astype(np.float16) for k, s in (shapes or {"w": (3, 4), "b": (4,)}).items()}


def test_the_soup_is_the_element_wise_mean_in_each_tensors_own_dtype() -> None:
    runs = [_weights(i) for i in range(3)]
    soup = mean_weights(runs)
    assert set(soup) == {"w", "b"}
    for key in soup:
        assert soup[key].dtype == np.float16
        expected = np.mean([r[key].astype(np.float32) for r in runs], axis=0)
        np.testing.assert_allclose(soup[key].astype(np.float32), expected, atol=1e-3)


def test_the_mean_is_taken_in_fp32_so_large_fp16_values_do_not_overflow() -> None:
    big = {"w": np.full((2,), 60000.0, dtype=np.float16)}
    soup = mean_weights([big, big])
    assert np.isfinite(soup["w"]).all() and soup["w"][0] == np.float16(60000.0)


def test_a_soup_of_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least two"):
        mean_weights([_weights(0)])


def test_runs_holding_other_tensors_are_refused() -> None:
    frozen_table = _weights(0)
    trained_table = _weights(1) | {"word.weight": np.zeros((5, 4), np.float16)}
    with pytest.raises(ValueError, match=r"other tensors.*word\.weight"):
        mean_weights([frozen_table, trained_table])


def test_runs_with_other_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match=r"w has shape \(3, 5\)"):
        mean_weights([_weights(0), _weights(1, w=(3, 5), b=(4,))])


def test_weights_round_trip_through_a_compact_file(tmp_path: Path) -> None:
    weights = _weights(7)
    write_weights(weights, tmp_path / "state" / "best.safetensors")
    back = read_weights(tmp_path / "state" / "best.safetensors")
    assert set(back) == set(weights)
    for key, value in weights.items():
        assert back[key].dtype == np.float16
        np.testing.assert_array_equal(back[key], value)


def test_an_ingredient_is_a_state_folder_or_a_weights_file_named_after_it(tmp_path: Path) -> None:
    run = tmp_path / "run8"
    write_weights(_weights(0), run / "best.safetensors")
    (run / "progress.json").write_text("{}")
    folder = parse_ingredient(str(run))
    assert (folder.name, folder.weights, folder.progress) == (
        "run8",
        run / "best.safetensors",
        run / "progress.json",
    )
    named = parse_ingredient(f"run 5={run / 'best.safetensors'}")
    assert (named.name, named.progress) == ("run 5", None)
    assert parse_ingredient(str(run / "best.safetensors")).name == "best"
    with pytest.raises(ValueError, match=r"without best\.safetensors"):
        parse_ingredient(str(tmp_path))
    with pytest.raises(ValueError, match="no such weights file"):
        parse_ingredient(str(tmp_path / "missing.safetensors"))


def test_a_mean_to_compare_is_one_or_several_weights_joined_by_plus(tmp_path: Path) -> None:
    for n in (5, 6):
        write_weights(_weights(n), tmp_path / f"run{n}.safetensors")
    a, b = tmp_path / "run5.safetensors", tmp_path / "run6.safetensors"
    name, parts = parse_mean(f"{a}+{b}")
    assert name == "run5+run6" and [p.weights for p in parts] == [a, b]
    name, parts = parse_mean(f"shipped={a}")
    assert name == "shipped" and [p.weights for p in parts] == [a]
    with pytest.raises(ValueError, match="no such weights file"):
        parse_mean(f"x={a}+{tmp_path / 'missing.safetensors'}")


def test_the_soup_command_refuses_runs_that_are_not_the_same_model_before_writing(tmp_path: Path) -> None:
    from streamnlp.model.build.run import cli

    write_weights(_weights(0), tmp_path / "a.safetensors")
    write_weights(_weights(1, w=(3, 5), b=(4,)), tmp_path / "b.safetensors")
    out = tmp_path / "soup"
    args = ["soup", str(tmp_path / "a.safetensors"), str(tmp_path / "b.safetensors"), "--out", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert "w has shape (3, 5)" in result.output
    assert not out.exists()
    same_name = [
        "soup",
        f"x={tmp_path / 'a.safetensors'}",
        f"x={tmp_path / 'a.safetensors'}",
        "--out",
        str(out),
    ]
    result = CliRunner().invoke(cli, same_name)
    assert result.exit_code == 1 and "share a name" in result.output


def test_the_model_card_names_the_runs_a_soup_averages() -> None:
    recipe = {"soup": {"run 5": "a.safetensors", "run 6": "run6/best.safetensors"}, "soft_labels": "t"}
    assert recipe_text(recipe) == "uniform mean of the weights of run 5, run 6"


def test_the_soup_command_never_writes_over_a_training_runs_state(tmp_path: Path) -> None:
    from streamnlp.model.build.run import cli

    for name in ("a", "b"):
        write_weights(_weights(0), tmp_path / f"{name}.safetensors")
    run = tmp_path / "run8"
    write_weights(_weights(1), run / "best.safetensors")
    (run / "progress.json").write_text('{"recipe": {"seed": 41}}')
    args = ["soup", str(tmp_path / "a.safetensors"), str(tmp_path / "b.safetensors"), "--out", str(run)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1 and "holds a training run's state" in result.output
    np.testing.assert_array_equal(read_weights(run / "best.safetensors")["w"], _weights(1)["w"])


def test_the_compute_table_gives_a_soup_no_training_of_its_own_and_sums_its_runs() -> None:
    from streamnlp.model.build.card import _compute_rows

    run = {"epoch_steps": [10, 10], "step": 20, "samples": 640, "train_seconds": 1800.0, "best_score": 0.87}
    soup = {
        "epoch_steps": [],
        "step": 0,
        "samples": 0,
        "train_seconds": 0.0,
        "best_score": 0.881,
        "recipe": {"soup": {"run 1": "a", "run 2": "b"}},
    }
    rows = _compute_rows([run, run | {"best_score": 0.86}, soup])
    assert "| 1 | 2 | 20 | 640 | 0.50 | 87.00 | - |" in rows
    assert "| 3 | - | - | - | - | 88.10 | uniform mean of the weights of run 1, run 2 |" in rows
    assert "| all | | 40 | 1,280 | 1.00 | | |" in rows
    assert all(row.count("|") == 8 for row in rows if row.startswith("| "))  # every row has the 7 columns
