"""Where the shipped model lives, for tests that need the directory itself."""

from __future__ import annotations

from pathlib import Path

from streamnlp.model.manifest import DEFAULT_MODEL_DIR

SHIPPED = Path(__file__).resolve().parents[2] / DEFAULT_MODEL_DIR
