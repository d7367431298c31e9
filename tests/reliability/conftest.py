"""Reliability fixtures: moto, real runtimes shared per backend, and the matrix summary."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tracing import testing
from tracing.local.runtime import LocalLambda
from tracing.local.runtime.aws import LocalAWS

FIXTURES = Path(__file__).parent / "fixtures"
#: The deadline fault's timeout: short, so the deadline guard fires soon.
DEADLINE_TIMEOUT_S = 1.0
#: Every other runtime fault's: far from any of their durations (a RecursionError
#: takes ~100 ms traced), so that a busy machine cannot turn their outcome into a
#: timeout.
RUNTIME_TIMEOUT_S = 30.0


class Runtimes:
    """Real ``awslambdaric`` environments, started on first use and then reused.

    One traced environment per backend and timeout, each sending to its own UDP
    listener, and one untraced environment (``TRACING_DISABLED=1``) per timeout
    running the same module: the baseline every traced outcome is compared with. A
    fault that kills the process (deadline, ``SystemExit``) makes the next invoke a
    cold start, as in Lambda.
    """

    def __init__(self, aws: LocalAWS) -> None:
        self._aws = aws
        self._functions: dict[str, tuple[LocalLambda, testing.DaemonListener]] = {}

    def _start(
        self, key: str, env: dict[str, str], timeout_s: float
    ) -> tuple[LocalLambda, testing.DaemonListener]:
        key = f"{key} {timeout_s}s"
        if key not in self._functions:
            listener = testing.DaemonListener()
            function = LocalLambda(
                "fault_app.handler",
                code_dir=FIXTURES,
                function_name="fault-app",
                timeout_s=timeout_s,
                env={**self._aws.env, **env},
                xray_daemon_address=listener.address,
            )
            self._functions[key] = (function, listener)
        function, listener = self._functions[key]
        function.start()
        return function, listener

    def traced(
        self, backend: str, timeout_s: float = RUNTIME_TIMEOUT_S
    ) -> tuple[LocalLambda, testing.DaemonListener]:
        """The traced environment of ``backend`` and the listener it sends to."""
        return self._start(backend, {"TRACING_BACKEND": backend}, timeout_s)

    def untraced(
        self, timeout_s: float = RUNTIME_TIMEOUT_S
    ) -> tuple[LocalLambda, testing.DaemonListener]:
        """The same function with tracing disabled, and its (silent) listener."""
        return self._start("untraced", {"TRACING_DISABLED": "1"}, timeout_s)

    def close(self) -> None:
        for function, listener in self._functions.values():
            function.stop()
            listener.close()


@pytest.fixture(scope="module")
def runtimes(aws: LocalAWS) -> Iterator[Runtimes]:
    """The shared real runtimes of the module (started lazily)."""
    shared = Runtimes(aws)
    yield shared
    shared.close()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the fault matrix collected by test_faults.py (nothing is written to disk)."""
    module = next(
        (m for name, m in sys.modules.items() if name.endswith("reliability.test_faults")), None
    )
    rows = getattr(module, "RESULTS", None)
    if not rows:
        return
    terminalreporter.section("fault matrix")
    terminalreporter.line("| fault | backend | outcome |")
    terminalreporter.line("|---|---|---|")
    for fault, backend, outcome in rows:
        terminalreporter.line(f"| {fault} | {backend} | {outcome} |")
