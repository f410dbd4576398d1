"""Declarative settings: each one is declared once, with its environment name, default and docstring.

A settings class is a frozen dataclass whose fields come from :func:`setting`. ``from_env`` reads them
from the environment (all names share the ``STREAMNLP_`` prefix), converts them by the field's type and
reports every malformed value in one :class:`ConfigError`, so a misconfigured deployment fails at start
with a message naming the variable, not later with a stack trace.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Self

from ._errors import ConfigError

PREFIX = "STREAMNLP_"


def setting(env: str, default: Any, doc: str) -> Any:
    """Declare one setting: ``env`` is its name without the prefix, ``doc`` says what it is for."""
    return dataclasses.field(default=default, metadata={"env": PREFIX + env, "doc": doc})


def _parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"expected true/false, got {raw!r}")


def _parse_str_tuple(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _choice_parser(choices: tuple[str, ...]) -> Callable[[str], str]:
    """Any case is accepted; the value is the choice as declared, so code compares it once, exactly."""
    canonical = {choice.lower(): choice for choice in choices}

    def parse(raw: str) -> str:
        try:
            return canonical[raw.strip().lower()]
        except KeyError:
            raise ValueError(f"expected one of {', '.join(choices)}") from None

    return parse


_PARSERS: dict[Any, Callable[[str], Any]] = {
    str: str,
    int: int,
    float: float,
    bool: _parse_bool,
    Path: lambda raw: Path(raw).expanduser(),
    tuple[str, ...]: _parse_str_tuple,
}


def _parser_for(annotation: Any) -> tuple[Callable[[str], Any], bool]:
    """The parser for a field's type, and whether an empty value means None."""
    optional = False
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional = len(args) != len(typing.get_args(annotation))
        annotation = args[0]
    if typing.get_origin(annotation) is typing.Literal:
        return _choice_parser(typing.get_args(annotation)), optional
    try:
        return _PARSERS[annotation], optional
    except KeyError:
        raise TypeError(f"no parser for settings of type {annotation!r}") from None


class Settings:
    """Mixin for frozen dataclasses of settings declared with :func:`setting`."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Self:
        """Read every setting from ``environ`` (default: ``os.environ``); ``overrides`` win over both."""
        environ = os.environ if environ is None else environ
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        problems: list[str] = []
        for field in dataclasses.fields(cls):  # type: ignore[arg-type]
            if field.name in overrides:
                values[field.name] = overrides[field.name]
                continue
            env = field.metadata["env"]
            if env not in environ:
                continue
            parse, optional = _parser_for(hints[field.name])
            raw = environ[env]
            if optional and raw.strip() == "":
                values[field.name] = None
                continue
            try:
                values[field.name] = parse(raw)
            except ValueError as exc:
                problems.append(f"{env}={raw!r}: {exc}")
        if problems:
            raise ConfigError("invalid settings: " + "; ".join(problems))
        return cls(**values)

    @classmethod
    def describe(cls) -> Iterator[tuple[str, Any, str]]:
        """(environment name, default, docstring) of each setting, for ``--help`` and docs."""
        for field in dataclasses.fields(cls):  # type: ignore[arg-type]
            yield field.metadata["env"], field.default, field.metadata["doc"]


def read_env_file(path: Path) -> dict[str, str]:
    """``NAME=value`` lines of a settings file (``#`` comments, optional quotes), for ``--config``."""
    values: dict[str, str] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read settings file {path}: {exc.strerror}") from None
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.removeprefix("export ").partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name.startswith(PREFIX):
            raise ConfigError(f"{path}:{number}: expected {PREFIX}NAME=value")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name] = value
    return values
