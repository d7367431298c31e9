"""Integration fixtures: moto's HTTP server and a launcher for traced functions."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tracing import testing
from tracing.local.runtime import LocalLambda
from tracing.local.runtime.aws import LocalAWS

FIXTURES = Path(__file__).parent / "fixtures"


LaunchFn = Callable[..., LocalLambda]


@pytest.fixture(params=["xray", "otel"])
def backend(request: pytest.FixtureRequest) -> str:
    """Every integration test runs on both backends: same assertions, same wire."""
    return str(request.param)


@pytest.fixture
def launch(aws: LocalAWS, daemon: testing.DaemonListener, backend: str) -> Iterator[LaunchFn]:
    """Start a fixture function in the real runtime, traced to ``daemon``."""
    started: list[LocalLambda] = []

    def _launch(handler: str, *, timeout_s: float = 3.0, **env: str) -> LocalLambda:
        function = LocalLambda(
            handler,
            code_dir=FIXTURES,
            function_name="traced-app",
            timeout_s=timeout_s,
            env={**aws.env, "TRACING_BACKEND": backend, **env},
            xray_daemon_address=daemon.address,
        )
        started.append(function)
        function.start()
        return function

    yield _launch
    for function in started:
        function.stop()
