"""Settings are read from STREAMNLP_* variables, typed, and every bad value is named in one error."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamnlp import ConfigError
from streamnlp._settings import read_env_file
from streamnlp.config import WorkerSettings
from streamnlp.dev.settings import ServiceSettings


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


def test_a_settings_file_is_read_and_the_environment_wins_over_it(tmp_path: Path) -> None:
    path = tmp_path / "worker.env"
    path.write_text(
        '# chats\nSTREAMNLP_INPUTS="chats=ecommerce,notes=medical"\nexport STREAMNLP_GROUP=g1\n\n'
    )
    values = read_env_file(path)
    assert values == {"STREAMNLP_INPUTS": "chats=ecommerce,notes=medical", "STREAMNLP_GROUP": "g1"}
    settings = WorkerSettings.from_env({**values, "STREAMNLP_GROUP": "from-env"})
    assert settings.topic_profiles() == {"chats": "ecommerce", "notes": "medical"}
    assert settings.group == "from-env"


def test_a_malformed_settings_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.env"
    path.write_text("STREAMNLP_GROUP=g\nKAFKA=oops\n")
    with pytest.raises(ConfigError, match=r"bad\.env:2"):
        read_env_file(path)


def test_an_input_with_an_unknown_profile_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="astrology"):
        WorkerSettings.from_env({"STREAMNLP_INPUTS": "chats=astrology"}).topic_profiles()


def test_profiles_can_be_redefined_and_added() -> None:
    settings = WorkerSettings.from_env(
        {"STREAMNLP_PROFILE_HEADS": "medical=sentiment+intent_clinic,triage=sentiment"}
    )
    assert settings.profiles()["medical"] == ("sentiment", "intent_clinic")
    assert settings.profiles()["triage"] == ("sentiment",)


def test_a_choice_setting_accepts_its_choices_in_any_case_and_names_them_when_wrong() -> None:
    assert WorkerSettings.from_env({}).processing_guarantee == "at_least_once"
    settings = WorkerSettings.from_env({"STREAMNLP_PROCESSING_GUARANTEE": " Exactly_Once "})
    assert settings.processing_guarantee == "exactly_once"
    with pytest.raises(ConfigError, match="expected one of at_least_once, exactly_once"):
        WorkerSettings.from_env({"STREAMNLP_PROCESSING_GUARANTEE": "twice"})


def test_the_security_protocol_is_read_in_any_case_and_kept_in_its_declared_form() -> None:
    settings = WorkerSettings.from_env({"STREAMNLP_KAFKA_SECURITY_PROTOCOL": "sasl_ssl"})
    assert settings.kafka_security_protocol == "SASL_SSL"
    with pytest.raises(ConfigError, match="STREAMNLP_KAFKA_SECURITY_PROTOCOL"):
        WorkerSettings.from_env({"STREAMNLP_KAFKA_SECURITY_PROTOCOL": "tls"})


def test_an_empty_text_field_with_json_input_says_to_choose_the_text_format() -> None:
    settings = WorkerSettings.from_env({"STREAMNLP_TEXT_FIELD": ""})
    with pytest.raises(ConfigError, match="STREAMNLP_INPUT_FORMAT=text"):
        settings.input_codec()


def test_the_topics_the_worker_creates_are_the_topics_it_publishes_to() -> None:
    settings = WorkerSettings.from_env(
        {"STREAMNLP_INPUTS": "chats=ecommerce,notes=medical", "STREAMNLP_OUTPUT_TOPIC": "{topic}.{profile}"}
    )
    created = set(settings.output_topics())
    for topic in ("chats", "notes"):
        for profile in settings.profiles():
            assert settings.output_topic_for(topic, profile) in created
    assert settings.dlq_topic in created
