"""The pytest plugin, as a user's project gets it: a test file of theirs, run by pytest.

The plugin is found through the installed ``pytest11`` entry point (nothing
configured in the user's project); the user's test asserts with an X-Ray filter
expression on the traces its handler sent to the ``tracing_daemon`` fixture.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import tracing
from tracing import testing

APP = """
import tracing

tracing.configure(service="orders")


@tracing.handler
def handler(event, context):
    tracing.annotate("sku", event["sku"])
    return {"ok": True}
"""

USERS_TEST = """
import importlib

from tracing import testing


def load_app():
    # Import the function's module after the fixture: configure() reads its address.
    import app

    return importlib.reload(app)


def test_an_order_is_traced(tracing_daemon, monkeypatch):
    app = load_app()
    monkeypatch.setenv("_X_AMZN_TRACE_ID", testing.trace_header())
    app.handler({"sku": "book-1"}, testing.FakeContext())
    [trace_id] = tracing_daemon.assert_trace('annotation.sku = "book-1"')
    assert trace_id.startswith("1-")


def test_a_missing_trace_fails_with_what_was_received(tracing_daemon, monkeypatch):
    app = load_app()
    monkeypatch.setenv("_X_AMZN_TRACE_ID", testing.trace_header())
    app.handler({"sku": "pen-2"}, testing.FakeContext())
    tracing_daemon.assert_trace('annotation.sku = "book-1"')
"""


def _run_users_tests(
    tmp_path: Path, backend: str = "xray", exporter: str = "xray-udp"
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    (tmp_path / "test_users.py").write_text(textwrap.dedent(USERS_TEST))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TRACING_"))}
    env |= {"LAMBDA_TASK_ROOT": str(tmp_path), "AWS_LAMBDA_FUNCTION_NAME": "orders"}
    env |= {"TRACING_BACKEND": backend, "TRACING_EXPORTER": exporter}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_users.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("backend", "exporter"),
    [("xray", "xray-udp"), ("otel", "xray-udp"), ("xray", "otlp-udp"), ("otel", "otlp-udp")],
)
def test_a_users_test_asserts_a_trace_by_filter_expression(
    tmp_path: Path, backend: str, exporter: str
) -> None:
    """On both backends, whether the function sends X-Ray documents or OTLP spans."""
    done = _run_users_tests(tmp_path, backend, exporter)
    out = done.stdout + done.stderr
    assert "1 failed, 1 passed" in out or "1 passed, 1 failed" in out, out
    assert "test_a_missing_trace_fails_with_what_was_received" in out
    # The failure says what was expected and what arrived.
    assert "expected a trace matching 'annotation.sku = \"book-1\"', found 0 of 1 received" in out


def test_assert_trace_counts_and_refuses_a_bad_expression(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LAMBDA_TASK_ROOT", str(tmp_path))
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "orders")
    with testing.DaemonListener() as daemon:
        monkeypatch.setenv("AWS_XRAY_DAEMON_ADDRESS", daemon.address)
        tracing.configure(service="orders")

        @tracing.handler
        def handler(event: dict[str, str], context: object) -> None:
            tracing.annotate("sku", event["sku"])

        for sku in ("book-1", "book-1", "pen-2"):
            monkeypatch.setenv("_X_AMZN_TRACE_ID", testing.trace_header())
            handler({"sku": sku}, testing.FakeContext())
        assert len(daemon.assert_trace('annotation.sku = "book-1"', count=2)) == 2
        assert len(daemon.traces()) == 3
        with pytest.raises(AssertionError, match="expected 1 trace"):
            daemon.assert_trace('annotation.sku = "book-1"', count=1)
        with pytest.raises(ValueError, match="column"):
            daemon.assert_trace("annotation.sku = ")
