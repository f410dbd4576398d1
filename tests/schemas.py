"""Validation of records against the JSON Schemas in ``schemas/``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"


def _load(name: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / name).read_text())


_registry = Registry().with_resources(
    (schema["$id"], Resource.from_contents(schema))
    for schema in (_load(n) for n in ("input.schema.json", "output.schema.json", "deadletter.schema.json"))
)
_validators = {
    name: Draft202012Validator(_load(f"{name}.schema.json"), registry=_registry)
    for name in ("input", "output", "deadletter")
}


def validate_input(record: dict[str, Any]) -> None:
    _validators["input"].validate(record)


def validate_output(record: dict[str, Any]) -> None:
    _validators["output"].validate(record)


def validate_deadletter(record: dict[str, Any]) -> None:
    _validators["deadletter"].validate(record)
