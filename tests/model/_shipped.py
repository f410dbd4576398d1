"""Where the shipped model lives, for tests that need the directory itself."""

from __future__ import annotations

from pathlib import Path

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "squeezebert-int8"
