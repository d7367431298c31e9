"""The in-process Lambda extension's pure parts, and the hand-over at the end of a unit."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracing._config import load_settings
from tracing._extension import (
    NETWORK_EXPORTERS,
    Extension,
    parse_answer,
    parse_event,
    wait_for,
    wanted,
)
from tracing._runtime import NoLibrary, Runtime
from tracing._scope import STACK
from tracing._span import Span
from tracing.local.runtime._runtime_api import RuntimeAPIServer

LAMBDA = {"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001"}


@pytest.mark.parametrize("exporter", sorted(NETWORK_EXPORTERS))
def test_network_exporters_in_lambda_want_it(exporter: str) -> None:
    assert wanted(exporter, True, LAMBDA)


@pytest.mark.parametrize(
    ("exporter", "buffered", "environ"),
    [
        ("xray-udp", False, LAMBDA),
        ("otlp-udp", False, LAMBDA),
        ("provider", True, LAMBDA),  # the user's provider flushes its own way
        ("otlp", False, LAMBDA),  # fell back to an unbuffered emitter
        ("otlp", True, {}),  # not in Lambda
        ("otlp", True, {**LAMBDA, "TRACING_EXTENSION": "0"}),
        ("otlp", True, {**LAMBDA, "TRACING_EXTENSION": " Off "}),
        ("otlp", True, {**LAMBDA, "AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start"}),
    ],
)
def test_everything_else_does_not(exporter: str, buffered: bool, environ: dict[str, str]) -> None:
    assert not wanted(exporter, buffered, environ)


def test_an_invoke_event_parses() -> None:
    body = json.dumps(
        {
            "eventType": "INVOKE",
            "deadlineMs": 1_700_000_000_000,
            "requestId": "r-1",
            "invokedFunctionArn": "arn:aws:lambda:us-east-1:1:function:f",
            "tracing": {"type": "X-Amzn-Trace-Id", "value": "Root=1-0-0"},
        }
    ).encode()
    event = parse_event(body)
    assert event is not None
    assert (event.kind, event.request_id, event.deadline_ms) == ("INVOKE", "r-1", 1_700_000_000_000)


@pytest.mark.parametrize(
    "body",
    [b"", b"null", b"[]", b"{}", b'{"eventType": 1}', b"\xff\xfe", b"[" * 100_000, b"{"],
)
def test_what_is_not_an_event_is_none(body: bytes) -> None:
    assert parse_event(body) is None


def test_odd_fields_are_dropped_not_trusted() -> None:
    event = parse_event(b'{"eventType": "INVOKE", "requestId": 5, "deadlineMs": true}')
    assert event is not None
    assert (event.request_id, event.deadline_ms) == (None, None)


@given(st.binary(max_size=200))
def test_parse_event_never_raises(body: bytes) -> None:
    parse_event(body)


def test_the_wait_ends_at_the_deadline() -> None:
    assert wait_for(10_500, 10.0, 900.0) == pytest.approx(0.5)
    assert wait_for(9_000, 10.0, 900.0) == 0.0  # already past
    assert wait_for(None, 10.0, 900.0) == 900.0
    assert wait_for(10_000_000, 10.0, 2.0) == 2.0


def test_hand_over_needs_a_running_extension() -> None:
    extension = Extension("127.0.0.1:1", lambda: None, lambda: True)
    assert not extension.hand_over()
    extension.active = True
    assert extension.hand_over()
    assert extension.hand_over()  # a second one is absorbed, not an error
    extension.passthrough = True
    assert not extension.hand_over()


def test_a_refused_registration_falls_back(caplog: pytest.LogCaptureFixture) -> None:
    server = RuntimeAPIServer()
    server.refuse_extensions = True
    server.start()
    try:
        extension = Extension(server.address, lambda: None, lambda: True)
        assert not extension.register()
    finally:
        server.stop()
    assert not extension.active
    assert "refused the registration (HTTP 403" in caplog.text


def test_no_extensions_api_falls_back(caplog: pytest.LogCaptureFixture) -> None:
    server = RuntimeAPIServer()
    server.start()
    address = server.address
    server.stop()  # nothing listens there any more
    extension = Extension(address, lambda: None, lambda: True)
    assert not extension.register()
    assert "could not register" in caplog.text


class _Buffer:
    """A buffered emitter that counts flushes."""

    buffered = True
    otlp = True

    def __init__(self) -> None:
        self.flushes = 0

    def flush(self) -> None:
        self.flushes += 1

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(name)


class _Extension:
    active = True

    def __init__(self) -> None:
        self.handed = 0

    def hand_over(self) -> bool:
        self.handed += 1
        return True


def _runtime(emitter: Any) -> Runtime:
    settings = load_settings({"exporter": "otlp"})
    return Runtime(settings, emitter, NoLibrary(), in_lambda=True, init=None)


def test_an_invocation_hands_over_and_other_units_flush() -> None:
    emitter = _Buffer()
    runtime = _runtime(emitter)
    runtime.end_of_unit(invocation=True)
    assert emitter.flushes == 1  # no extension: before the return, as always
    extension = _Extension()
    runtime.extension = extension  # type: ignore[assignment]
    runtime.end_of_unit(invocation=True)
    assert (emitter.flushes, extension.handed) == (1, 1)
    runtime.end_of_unit()  # tracing.flush(), a worker's message, the deadline guard
    assert (emitter.flushes, extension.handed) == (2, 1)
    extension.active = False  # its thread stopped: back to exporting now
    runtime.end_of_unit(invocation=True)
    assert (emitter.flushes, extension.handed) == (3, 1)


def test_a_nested_handler_hands_nothing_over() -> None:
    emitter = _Buffer()
    runtime = _runtime(emitter)
    extension = _Extension()
    runtime.extension = extension  # type: ignore[assignment]
    token = STACK.set((Span("## outer"),))
    try:
        runtime.end_of_unit(invocation=True)
    finally:
        STACK.reset(token)
    assert (emitter.flushes, extension.handed) == (0, 0)


def test_an_unbuffered_emitter_is_left_alone() -> None:
    emitter = _Buffer()
    emitter.buffered = False
    runtime = _runtime(emitter)
    runtime.extension = _Extension()  # type: ignore[assignment]
    runtime.end_of_unit(invocation=True)
    runtime.end_of_unit()
    assert emitter.flushes == 0


def test_an_http_answer_parses() -> None:
    raw = b"HTTP/1.1 200 OK\r\nLambda-Extension-Identifier: abc\r\nContent-Length: 2\r\n\r\n{}xx"
    assert parse_answer(raw) == (
        200,
        {"lambda-extension-identifier": "abc", "content-length": "2"},
        b"{}",
    )


@pytest.mark.parametrize("raw", [b"", b"garbage", b"HTTP/1.1 OK\r\n\r\n", b"SMTP 200 x\r\n\r\n"])
def test_what_is_not_http_raises_oserror(raw: bytes) -> None:
    with pytest.raises(OSError, match="not an HTTP answer"):
        parse_answer(raw)
