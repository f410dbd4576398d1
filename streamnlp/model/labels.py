"""What the model says about one text: the one result type from the runtime to the published record.

The runtime returns it, the labeller caches and shares it, the output codec writes it. A new
model-derived field is added here (and in the output codec and the cache's encoding).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Label:
    """One head's answer: the chosen label and its softmax probability."""

    label: str
    score: float


@dataclass(frozen=True, slots=True)
class Labels:
    """A label per head, and whether the text was cut to fit the model's window."""

    heads: Mapping[str, Label]
    truncated: bool
