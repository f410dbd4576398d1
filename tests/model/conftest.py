"""Shared fixtures: the shipped model, loaded once per test module."""

from __future__ import annotations

import pytest

from streamnlp.model.runtime import LabelModel
from tests.model._shipped import SHIPPED


@pytest.fixture(scope="module")
def shipped() -> LabelModel:
    return LabelModel.load(SHIPPED)
