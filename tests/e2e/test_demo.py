"""``make demo`` (``tracing demo``), run as a user runs it, with its output checked."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("backend", ["xray", "otel"])
def test_demo_shows_init_and_the_worker_inside_the_producers_trace(
    backend: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TRACING_", "_X_AMZN"))}
    done = subprocess.run(
        [sys.executable, "-m", "tracing", "demo", "--backend", backend, "--out", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    tree = out.split("the first order's trace")[1]
    for expected in (
        "Init",
        "load config",
        "ssm",
        "sqs",
        "orders-worker",
        "save order",
        "dynamodb",
        "events",
        "Service=orders-notifier",
        "notify customer",
    ):
        assert expected in tree, expected
    # The worker's segment names the invocation that processed the order: a trace
    # of its own, listed in the table above the tree.
    root = tree.split("trace ", 1)[1].split()[0]
    notes = tree.split("◆ orders-worker", 1)[1].split("save order", 1)[0]
    linked = "".join(notes.split()).split("LinkedTraceId=", 1)[1][:35]
    assert linked != root
    assert linked in out.split("the first order's trace")[0]
    # ... and the notifier runs under the worker's PutEvents call.
    rows = tree.splitlines()
    events = next(n for n, row in enumerate(rows) if "└─ events" in row)
    assert "├─ Init" in rows[events + 1]
    assert "└─ ## handler" in rows[events + 2]
    assert "notify customer" in rows[events + 3]
    assert (
        "complete: Init, SendMessage, the worker's DynamoDB call and the notifier in one trace"
        in out
    )
    assert "default (EventBridge event bus) -> orders-notifier (Lambda function)" in out
    assert '"batchItemFailures": [{"itemIdentifier"' in out
    html = tmp_path / "demo-trace.html"
    assert html.is_file()
    assert "orders-worker" in html.read_text()
