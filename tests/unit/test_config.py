from __future__ import annotations

import logging

import pytest

from tracing._config import DEFAULT_REDACT_KEYS, Settings, load_settings


def test_defaults() -> None:
    settings = load_settings({}, {})
    assert settings == Settings()
    assert settings.backend == "xray"
    assert settings.deadline_margin_ms == 100
    assert not settings.capture_event


def test_environment_is_read() -> None:
    env = {
        "TRACING_SERVICE": "orders",
        "TRACING_BACKEND": "OTEL",
        "TRACING_DISABLED": "1",
        "TRACING_DEADLINE_MARGIN_MS": "250",
        "TRACING_INIT_TRACE": "always",
        "TRACING_MAX_INIT_SPANS": "5",
        "TRACING_REDACT_KEYS": "ssn, Card",
        "AWS_XRAY_DAEMON_ADDRESS": "tcp:127.0.0.1:2000 udp:127.0.0.2:2001",
    }
    settings = load_settings({}, env)
    assert settings.service == "orders"
    assert settings.backend == "otel"
    assert settings.disabled
    assert settings.deadline_margin_ms == 250
    assert settings.init_trace == "always"
    assert settings.max_init_spans == 5
    assert settings.daemon_address == "127.0.0.2:2001"
    assert settings.redact_keys == (*DEFAULT_REDACT_KEYS, "ssn", "card")


def test_arguments_win_over_environment() -> None:
    settings = load_settings(
        {"service": "api", "deadline_margin_ms": 10, "disabled": False},
        {"TRACING_SERVICE": "env", "TRACING_DEADLINE_MARGIN_MS": "99", "TRACING_DISABLED": "1"},
    )
    assert (settings.service, settings.deadline_margin_ms, settings.disabled) == ("api", 10, False)


def test_service_falls_back_to_function_name() -> None:
    assert load_settings({}, {"AWS_LAMBDA_FUNCTION_NAME": "fn"}).service == "fn"


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("backend", "jaeger"),
        ("deadline_margin_ms", -1),
        ("deadline_margin_ms", "soon"),
        ("init_trace", "sometimes"),
        ("daemon_address", "nowhere"),
        ("service", ""),
    ],
)
def test_bad_argument_raises_a_clear_error(option: str, value: object) -> None:
    with pytest.raises(ValueError, match=option):
        load_settings({option: value}, {})


def test_unknown_option_raises() -> None:
    with pytest.raises(TypeError, match="deadline_margin"):
        load_settings({"deadline_margin": 5}, {})


def test_bad_environment_value_is_logged_once_and_defaulted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR, logger="tracing.config"):
        settings = load_settings({}, {"TRACING_DEADLINE_MARGIN_MS": "lots"})
    assert settings.deadline_margin_ms == 100
    assert [r.message for r in caplog.records if "TRACING_DEADLINE_MARGIN_MS" in r.message]


def test_settings_are_frozen() -> None:
    settings = load_settings({}, {})
    with pytest.raises(AttributeError):
        settings.service = "x"  # type: ignore[misc]


def test_a_powertools_users_variables_work_unchanged() -> None:
    env = {
        "POWERTOOLS_SERVICE_NAME": "payments",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_TRACER_CAPTURE_RESPONSE": "true",
        "POWERTOOLS_TRACER_CAPTURE_ERROR": "false",
        "AWS_LAMBDA_FUNCTION_NAME": "payments-fn",
    }
    settings = load_settings({}, env)
    assert settings.service == "payments"  # before the function's name
    assert settings.disabled
    assert settings.capture_response
    assert not settings.capture_error


def test_our_variables_and_arguments_win_over_powertools() -> None:
    env = {
        "POWERTOOLS_SERVICE_NAME": "payments",
        "TRACING_SERVICE": "orders",
        "POWERTOOLS_TRACER_CAPTURE_ERROR": "false",
        "TRACING_CAPTURE_ERROR": "true",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    settings = load_settings({"disabled": False}, env)
    assert settings.service == "orders"
    assert settings.capture_error
    assert not settings.disabled


def test_a_bad_powertools_value_is_logged_and_defaulted(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="tracing"):
        settings = load_settings({}, {"POWERTOOLS_TRACER_CAPTURE_ERROR": "maybe"})
    assert settings.capture_error  # the default
    assert "POWERTOOLS_TRACER_CAPTURE_ERROR" in caplog.text
