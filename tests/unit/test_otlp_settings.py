"""OpenTelemetry's standard settings: the service name, and the OTLP protocol."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

import tracing
from tracing._config import load_settings
from tracing._runtime import get_runtime
from tracing.exporters.otlp_http import OTLPHTTPEmitter, endpoint_settings
from tracing.exporters.xray_udp import UDPEmitter

FUNCTION = {"AWS_LAMBDA_FUNCTION_NAME": "orders-api"}


@pytest.mark.parametrize(
    ("environ", "argument", "expected"),
    [
        ({}, None, "service"),
        (FUNCTION, None, "orders-api"),
        ({**FUNCTION, "OTEL_RESOURCE_ATTRIBUTES": "team=x,service.name=billing"}, None, "billing"),
        (
            {
                **FUNCTION,
                "OTEL_RESOURCE_ATTRIBUTES": "service.name=billing",
                "OTEL_SERVICE_NAME": "orders-otel",
            },
            None,
            "orders-otel",
        ),
        (
            {
                **FUNCTION,
                "OTEL_SERVICE_NAME": "orders-otel",
                "POWERTOOLS_SERVICE_NAME": "orders-powertools",
            },
            None,
            "orders-powertools",
        ),
        (
            {
                "OTEL_SERVICE_NAME": "orders-otel",
                "POWERTOOLS_SERVICE_NAME": "orders-powertools",
                "TRACING_SERVICE": "orders-tracing",
            },
            None,
            "orders-tracing",
        ),
        ({"TRACING_SERVICE": "orders-tracing", "OTEL_SERVICE_NAME": "x"}, "explicit", "explicit"),
        # Percent-encoded, as the OTel specification writes resource attribute values.
        ({"OTEL_RESOURCE_ATTRIBUTES": "service.name=billing%20svc%2Ceu"}, None, "billing svc,eu"),
        ({"OTEL_RESOURCE_ATTRIBUTES": "service.name=a,service.name=b"}, None, "b"),  # the last
        # Unset, empty or blank: the next in line.
        (
            {**FUNCTION, "OTEL_SERVICE_NAME": "", "OTEL_RESOURCE_ATTRIBUTES": "k=v"},
            None,
            "orders-api",
        ),
        ({**FUNCTION, "OTEL_RESOURCE_ATTRIBUTES": "service.name= "}, None, "orders-api"),
    ],
)
def test_the_service_name_follows_the_precedence(
    environ: dict[str, str], argument: str | None, expected: str
) -> None:
    assert load_settings({"service": argument}, environ).service == expected


def test_a_bad_service_name_in_the_resource_attributes_is_logged_and_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    environ = {**FUNCTION, "OTEL_RESOURCE_ATTRIBUTES": "service.name=" + "x" * 300}
    assert load_settings({}, environ).service == "orders-api"
    assert "OTEL_RESOURCE_ATTRIBUTES" in caplog.text


def test_the_resource_attributes_are_read_only_when_needed() -> None:
    # Parsed at configure() only when nothing before them names the service, and
    # with no import unless a value is percent-encoded (cold start).
    code = (
        "import sys, tracing._config as c\n"
        "before = set(sys.modules)\n"
        "s = c.load_settings({}, {'OTEL_RESOURCE_ATTRIBUTES': 'service.name=billing'})\n"
        "assert s.service == 'billing', s.service\n"
        "print(sorted(set(sys.modules) - before))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("value", ["grpc", "http/json", "HTTP/JSON", "thrift"])
@pytest.mark.parametrize(
    "variable", ["OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"]
)
def test_an_otlp_protocol_other_than_http_protobuf_is_refused_at_configure(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=f"{variable}='{value}'") as raised:
        tracing.configure(exporter="otlp")
    assert "http/protobuf" in str(raised.value)
    assert get_runtime() is None


def test_the_traces_protocol_variable_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf")
    assert endpoint_settings()["url"].endswith("/v1/traces")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")
    with pytest.raises(ValueError, match="OTEL_EXPORTER_OTLP_TRACES_PROTOCOL='grpc'"):
        endpoint_settings()


@pytest.mark.parametrize("value", ["http/protobuf", " http/protobuf ", ""])
def test_http_protobuf_or_nothing_is_accepted(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", value)
    tracing.configure(exporter="otlp")
    runtime = get_runtime()
    assert runtime is not None
    assert isinstance(runtime.emitter, OTLPHTTPEmitter)


def test_an_otlp_exporter_chosen_by_the_environment_falls_back_with_the_same_error(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # As for any exporter misconfigured by the environment alone: a deployed
    # function still starts (tracing never changes the handler's outcome), sends
    # X-Ray documents, and the error says what to fix.
    monkeypatch.setenv("TRACING_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    with caplog.at_level(logging.ERROR, logger="tracing"):
        tracing.configure()
    runtime = get_runtime()
    assert runtime is not None
    assert type(runtime.emitter) is UDPEmitter
    assert "OTEL_EXPORTER_OTLP_PROTOCOL='grpc' is not supported" in caplog.text
