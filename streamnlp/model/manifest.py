"""The model directory contract: which files it holds and their sha256, read and written in one place."""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson

MANIFEST = "manifest.json"
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
LABELS_FILE = "labels.json"
# Optional: whole-text heads (a linear model over every word piece of a text), named in the manifest's
# "whole_text" entry; see streamnlp.model.build.bag for why they exist.
WHOLE_TEXT_FILE = "whole_text.onnx"
CARD_FILE = "MODEL_CARD.md"
HASHED_FILES = (MODEL_FILE, TOKENIZER_FILE, LABELS_FILE, WHOLE_TEXT_FILE)
# The shipped model, relative to the repository root: the default of STREAMNLP_MODEL_PATH and of every
# `--model` option, and what tests and benchmarks label with. Declared here only.
DEFAULT_MODEL_DIR = Path("models/squeezebert-int8")


def resolve_model_dir(path: Path) -> Path:
    """``path`` as a directory to open. A relative path that is not there is looked up where streamnlp
    is installed too (the wheel's ``streamnlp/models``, or the source tree of an editable install), so the
    shipped model is found from any working directory."""
    if path.is_absolute() or path.exists():
        return path
    candidates = [Path(__file__).resolve().parents[2] / path]  # the source tree
    if path.parts[:1] == ("models",):
        from importlib.resources import files

        candidates.append(Path(str(files("streamnlp.models"))).joinpath(*path.parts[1:]))
    return next((p for p in candidates if p.exists()), path)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_json(path: Path) -> dict[str, object]:
    return orjson.loads(path.read_bytes())


def write_json(path: Path, data: object) -> None:
    path.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")


def file_hashes(model_dir: Path, names: tuple[str, ...] = HASHED_FILES) -> dict[str, str]:
    """sha256 of each named file that exists in ``model_dir``."""
    return {name: sha256(model_dir / name) for name in names if (model_dir / name).exists()}
