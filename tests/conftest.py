"""Shared fixtures: a clean environment for every test, and a real UDP daemon."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest

from tracing import testing
from tracing.local.runtime.aws import LocalAWS

from . import _guard

_guard.install()

# Variables a test may set that would leak into the next one.
_PREFIXES = ("TRACING_", "AWS_LAMBDA_", "_X_AMZN_", "AWS_XRAY_", "OTEL_", "POWERTOOLS_")
_NAMES = ("LAMBDA_TASK_ROOT", "_HANDLER")
#: The test run's own switches, not the library's settings: kept.
_RUN_SWITCHES = frozenset({"TRACING_UPDATE_DOCS"})


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Start each test unconfigured, outside Lambda, with dummy AWS credentials."""
    for name in list(os.environ):
        if (name.startswith(_PREFIXES) or name in _NAMES) and name not in _RUN_SWITCHES:
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    testing.reset()
    yield
    testing.reset()


@pytest.fixture(autouse=True)
def no_stray_sends() -> Iterator[None]:
    """Fail a test that sent to a port it did not open (``tests/_guard.py``)."""
    earlier = _guard.take()  # from threads of earlier tests, caught late
    yield
    stray = earlier + _guard.take()
    if stray:
        pytest.fail("sent to a port this test did not open:\n" + "\n".join(stray), False)


@pytest.fixture(autouse=True, scope="session")
def close_sdk_socket() -> Iterator[None]:
    """Close the UDP socket aws-xray-sdk opens when ``aws_xray_sdk.core`` is imported.

    Its module-level ``xray_recorder`` makes a ``UDPEmitter`` whose socket is never
    closed (the SDK has no close); in a test run it outlives every test and Python
    reports it at exit ("ResourceWarning: unclosed <socket.socket ... SOCK_DGRAM
    ... laddr=('0.0.0.0', 0)>"). The tests imported the SDK, so they close it.
    """
    yield
    sdk = sys.modules.get("aws_xray_sdk.core")
    if sdk is not None:
        sdk.xray_recorder.emitter._socket.close()  # NOTE: private; the SDK has no close()


@pytest.fixture
def daemon(monkeypatch: pytest.MonkeyPatch) -> Iterator[testing.DaemonListener]:
    """A real UDP listener; ``AWS_XRAY_DAEMON_ADDRESS`` points at it."""
    with testing.DaemonListener() as listener:
        monkeypatch.setenv("AWS_XRAY_DAEMON_ADDRESS", listener.address)
        yield listener


@pytest.fixture
def in_lambda(monkeypatch: pytest.MonkeyPatch, tmp_path: os.PathLike[str]) -> None:
    """Make the process look like a Lambda execution environment."""
    monkeypatch.setenv("LAMBDA_TASK_ROOT", str(tmp_path))
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "orders-api")
    monkeypatch.setenv("AWS_REGION", "us-east-1")


@pytest.fixture(scope="session")
def aws() -> Iterator[LocalAWS]:
    """moto's HTTP server for the session, with the SSM parameters tests read.

    Tests that make queues or tables name them uniquely: the server is shared.
    """
    with LocalAWS() as local:
        ssm = local.client("ssm")
        for name, value in (("/app/x", "1"), ("/app/currency", "EUR")):
            ssm.put_parameter(Name=name, Value=value, Type="String", Overwrite=True)
        yield local


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A TCP port of ours on 127.0.0.1 that refuses connections: bound, never listening.

    For calls that must fail to connect, without sending to a port this test
    did not open (someone else's service may be listening on any fixed one).
    """
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]
