"""Settings are read from STREAMNLP_* variables, typed, and every bad value is named in one error."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamnlp import ConfigError
from streamnlp.config import ServiceSettings


def test_defaults_apply_when_the_environment_is_empty() -> None:
    settings = ServiceSettings.from_env({})
    assert settings.kafka_port == 19092
    assert settings.kafka_brokers == 1
    assert settings.state_dir == Path(".state")


def test_values_are_parsed_by_the_declared_type() -> None:
    settings = ServiceSettings.from_env(
        {"STREAMNLP_KAFKA_PORT": "9999", "STREAMNLP_START_TIMEOUT": "2.5", "STREAMNLP_STATE_DIR": "/x"}
    )
    assert (settings.kafka_port, settings.start_timeout, settings.state_dir) == (9999, 2.5, Path("/x"))


def test_overrides_win_over_the_environment() -> None:
    settings = ServiceSettings.from_env({"STREAMNLP_REDIS_PORT": "1"}, redis_port=2)
    assert settings.redis_port == 2


def test_every_malformed_value_is_reported_with_its_variable_name() -> None:
    with pytest.raises(ConfigError) as info:
        ServiceSettings.from_env({"STREAMNLP_KAFKA_PORT": "ninety", "STREAMNLP_REDIS_PORT": "6379x"})
    assert "STREAMNLP_KAFKA_PORT='ninety'" in str(info.value)
    assert "STREAMNLP_REDIS_PORT='6379x'" in str(info.value)


def test_every_setting_has_a_prefixed_name_and_a_docstring() -> None:
    described = list(ServiceSettings.describe())
    assert described
    for env, _default, doc in described:
        assert env.startswith("STREAMNLP_") and doc.strip()
