"""``make demo``'s program, run as a user runs it, with its output checked."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("backend", ["xray", "otel"])
def test_demo_shows_init_and_the_worker_inside_the_producers_trace(backend: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TRACING_", "_X_AMZN"))}
    done = subprocess.run(
        [sys.executable, "-m", "examples.demo", "--backend", backend],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "wire-rule problems: none" in out
    first_trace = out.split("\ntrace ")[1]
    assert "Init" in first_trace
    assert "aws.operation=GetParameter" in first_trace
    assert "aws.operation=SendMessage" in first_trace
    assert "segment orders-worker" in first_trace
    assert "aws.operation=PutItem" in first_trace
    assert re.search(r"segment orders-worker .*FAULT", out)
    assert '"batchItemFailures": [{"itemIdentifier"' in out
