"""``streamnlp model soup``: the uniform mean of the weights of runs fine-tuned from the same weights.

Why: continuation runs from one set of weights (runs 6-8 from run 5's) differ only by seed and recipe, and
each moves the selection score by no more than seed noise. Fine-tuned from a shared start they stay in
one basin, so their mean is a model of its own (a "uniform model soup") that sits between them and is
often better than any one of them, at no cost at run time: the worker still runs one model.

The averaging is pure numpy on ``name -> array`` maps; reading and writing the compact fp16
``.safetensors`` files is kept at the edge (:func:`read_weights`, :func:`write_weights`), and scoring on
the selection splits is the build CLI's (it needs torch).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streamnlp.model.build.state import BEST, PROGRESS


@dataclass(frozen=True)
class Ingredient:
    """One run's weights: a compact ``.safetensors`` file, and its state folder's ``progress.json`` when
    it was given as a folder (so the soup can say what each run cost and which soft labels it used)."""

    name: str
    weights: Path
    progress: Path | None = None


def parse_ingredient(spec: str) -> Ingredient:
    """``[NAME=]PATH``: PATH a state folder (its ``best.safetensors`` and ``progress.json``) or a weights
    file. Without NAME, a folder is named after itself and a file after its stem."""
    name, sep, path_text = spec.partition("=")
    if not sep:
        name, path_text = "", spec
    path = Path(path_text)
    if path.is_dir():
        weights = path / BEST
        progress = path / PROGRESS
        if not weights.is_file():
            raise ValueError(f"{path} is a folder without {BEST} (a finished run's state folder?)")
        return Ingredient(name or path.name, weights, progress if progress.is_file() else None)
    if not path.is_file():
        raise ValueError(f"{spec!r}: no such weights file or state folder")
    return Ingredient(name or path.stem, path)


def parse_mean(spec: str) -> tuple[str, list[Ingredient]]:
    """``[NAME=]PATH[+PATH...]``: one set of weights, or several to be averaged; without NAME it is named
    after its parts, joined by '+'."""
    name, sep, paths = spec.partition("=")
    if not sep:
        name, paths = "", spec
    parts = [parse_ingredient(p) for p in paths.split("+")]
    return name or "+".join(p.name for p in parts), parts


def mean_weights(ingredients: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The element-wise mean of every tensor, computed in fp32 and returned in each tensor's own dtype.

    Refused (``ValueError``, naming the tensor) unless every ingredient holds the same tensors in the same
    shapes: a run that kept its word table frozen stores no table, and its mean with one that trained it
    would silently be a different model."""
    if len(ingredients) < 2:
        raise ValueError(f"a soup needs at least two sets of weights, got {len(ingredients)}")
    first = ingredients[0]
    for i, other in enumerate(ingredients[1:], 2):
        if set(other) != set(first):
            extra, lacking = sorted(set(other) - set(first)), sorted(set(first) - set(other))
            raise ValueError(
                f"ingredient {i} holds other tensors than ingredient 1"
                f" (more: {extra[:3]}, fewer: {lacking[:3]})"
            )
        for key, value in other.items():
            if value.shape != first[key].shape:
                raise ValueError(
                    f"ingredient {i}: {key} has shape {value.shape}, ingredient 1 {first[key].shape}"
                )
    out: dict[str, np.ndarray] = {}
    for key, value in first.items():
        total = np.zeros(value.shape, dtype=np.float32)
        for weights in ingredients:
            total += weights[key].astype(np.float32)
        out[key] = (total / len(ingredients)).astype(value.dtype)
    return out


def read_weights(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(path))


def write_weights(weights: Mapping[str, np.ndarray], path: Path) -> None:
    from safetensors.numpy import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: np.ascontiguousarray(v) for k, v in weights.items()}, str(path))
