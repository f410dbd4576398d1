"""Shared test constants."""

from __future__ import annotations

import os
from pathlib import Path

from streamnlp.model.manifest import DEFAULT_MODEL_DIR

ROOT = Path(__file__).resolve().parents[1]
# The shipped model; STREAMNLP_TEST_MODEL points the suite at another build while one is being made.
MODEL = Path(os.environ.get("STREAMNLP_TEST_MODEL", ROOT / DEFAULT_MODEL_DIR))
