"""The ``tracing`` command, run as a user runs it: subprocesses on 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tracing._header import new_id, new_trace_id
from tracing.backends.xray_udp import UDPEmitter
from tracing.local.aws import LocalAWS

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "integration" / "fixtures"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TRACING_"))}
    env.update(extra)
    return env


def _tracing(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tracing", *args],
        cwd=ROOT,
        env=env or _env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _documents(root: str) -> list[dict[str, object]]:
    parent = new_id()
    return [
        {
            "name": "orders-api",
            "id": parent,
            "trace_id": root,
            "start_time": time.time() - 0.2,
            "end_time": time.time(),
            "annotations": {"ColdStart": True},
            "subsegments": [
                {
                    "name": "<img src=x onerror=alert(1)>",
                    "id": new_id(),
                    "start_time": time.time() - 0.1,
                    "end_time": time.time(),
                    "fault": True,
                }
            ],
        },
        {
            "name": "Init",
            "id": new_id(),
            "trace_id": root,
            "parent_id": parent,
            "type": "subsegment",
            "start_time": time.time() - 0.5,
            "end_time": time.time() - 0.3,
            "annotations": {"ColdStart": True, "InitType": "on-demand"},
        },
    ]


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str, Path]]:
    db = tmp_path / "traces.sqlite3"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tracing",
            "daemon",
            "--listen",
            "127.0.0.1:0",
            "--db",
            str(db),
            "--print-traces",
        ],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    first = process.stdout.readline()
    match = re.search(r"udp://([\d.]+:\d+)", first)
    assert match, first
    yield process, match.group(1), db
    if process.poll() is None:
        process.kill()
        process.wait()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_daemon_stops_cleanly_on_a_signal_even_started_with_sigint_ignored(
    tmp_path: Path, sig: signal.Signals
) -> None:
    # What a shell without job control (nohup, a CI script's background job)
    # gives its children: SIGINT ignored, which Python would keep.
    db = str(tmp_path / "t.sqlite3")
    process = subprocess.Popen(
        [sys.executable, "-m", "tracing", "daemon", "--listen", "127.0.0.1:0", "--db", db],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    assert process.stdout is not None
    match = re.search(r"udp://([\d.]+:\d+)", process.stdout.readline())
    assert match
    emitter = UDPEmitter(match.group(1))
    emitter.send(_documents(new_trace_id())[0])
    emitter.close()
    time.sleep(0.3)
    process.send_signal(sig)
    try:
        out, _ = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0
    assert "stopped:" in out
    assert "'stored': 1" in out  # what was received is stored before it exits


def test_daemon_traces_and_show(
    daemon: tuple[subprocess.Popen[str], str, Path], tmp_path: Path
) -> None:
    process, address, db = daemon
    root = new_trace_id()
    emitter = UDPEmitter(address)
    for document in _documents(root):
        emitter.send(document)
    emitter.send_raw(b"garbage that is not a daemon datagram")
    emitter.close()
    assert process.stdout is not None
    line = process.stdout.readline()  # printed when the trace went quiet
    assert root in line
    assert "FAULT" in line
    assert "cold-start" in line
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=10)
    assert process.returncode == 0
    assert "garbage" in out

    listed = _tracing("traces", "--db", str(db))
    assert listed.returncode == 0, listed.stderr
    assert root in listed.stdout
    assert "orders-api" in listed.stdout

    service_map = tmp_path / "map.html"
    mapped = _tracing("map", "--db", str(db), "--since", "1h", "--html", str(service_map))
    assert mapped.returncode == 0, mapped.stderr
    assert "Service map:" in mapped.stdout
    assert "client -> orders-api" in mapped.stdout
    assert "<img src=x" not in service_map.read_text()

    html = tmp_path / "trace.html"
    shown = _tracing("show", root, "--db", str(db), "--html", str(html))
    assert shown.returncode == 0, shown.stderr
    assert "Init" in shown.stdout
    assert "<img src=x onerror=alert(1)>" in shown.stdout  # text in a terminal is fine
    page = html.read_text()
    assert "<img src=x" not in page  # but never markup in the HTML
    assert "&lt;img src=x" in page or "\\u003cimg" in page

    missing = _tracing("show", new_trace_id(), "--db", str(db))
    assert missing.returncode == 1
    assert "not found" in missing.stderr


def test_show_from_xray_uses_batch_get_traces() -> None:
    root = new_trace_id()
    with LocalAWS() as aws:
        aws.client("xray").put_trace_segments(
            TraceSegmentDocuments=[json.dumps(d) for d in _documents(root)]
        )
        shown = _tracing(
            "show",
            root,
            "--from-xray",
            "--endpoint-url",
            aws.endpoint,
            "--region",
            "us-east-1",
            env=_env(**{k: v for k, v in aws.env.items() if k != "AWS_ENDPOINT_URL"}),
        )
    assert shown.returncode == 0, shown.stderr
    assert "orders-api" in shown.stdout
    assert "Init" in shown.stdout


def test_run_a_handler_in_the_local_runtime(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text("{}")
    with LocalAWS() as aws:
        aws.client("ssm").put_parameter(
            Name="/app/currency", Value="EUR", Type="String", Overwrite=True
        )
        done = _tracing(
            "run",
            "traced_app.handler",
            "--event",
            str(event),
            "--invocations",
            "2",
            "--code-dir",
            str(FIXTURES),
            "--db",
            str(tmp_path / "db.sqlite3"),
            env=_env(**aws.env),
        )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("invocation ") == 2
    assert '"currency": "EUR"' in done.stdout
    assert done.stdout.count("trace 1-") == 2
    assert "Init" in done.stdout
    assert "load config" in done.stdout


def test_run_restores_snapstart_copies(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text("{}")
    done = _tracing(
        "run",
        "snapstart_app.handler",
        "--event",
        str(event),
        "--snapstart",
        "3",
        "--code-dir",
        str(FIXTURES),
        "--db",
        str(tmp_path / "db.sqlite3"),
        env=_env(),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert [f"copy {n} invocation 1:" in done.stdout for n in (1, 2, 3)] == [True] * 3
    assert done.stdout.count("trace 1-") == 3
    assert done.stdout.count("Restore ") == 3
    assert "InitType=snap-start" in done.stdout
    assert "load model" not in done.stdout  # snapshot-time work: summarised, never replayed


def test_bad_arguments_fail_clearly(tmp_path: Path) -> None:
    done = _tracing("run", "x.handler", "--event", str(tmp_path / "missing.json"))
    assert done.returncode == 2
    assert "cannot read the event" in done.stderr
    done = _tracing("traces", "--since", "yesterday")
    assert done.returncode == 2
    assert "duration" in done.stderr
