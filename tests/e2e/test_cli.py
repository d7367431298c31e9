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
from tracing.exporters.xray_udp import UDPEmitter
from tracing.local.runtime.aws import LocalAWS

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
    process.stdout.close()
    if process.stderr is not None:
        process.stderr.close()


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
    _wait_stored(db, root)
    process.send_signal(signal.SIGINT)  # a trace still pending is printed as it stops
    process.wait(timeout=10)
    out = process.stdout.read()  # after readline(): communicate() would skip its buffer
    assert process.returncode == 0
    # Piped, with no option: a line per trace all the same (once only on a terminal).
    lines = out.splitlines()
    assert lines[0] == "a line per completed trace follows (--quiet: none)"
    [line] = [line for line in lines if root in line]
    assert "FAULT" in line
    assert "cold-start" in line
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


def _wait_stored(db: Path, root: str) -> None:
    """Until the daemon stored ``root`` (a bound against hanging, not a timing assert)."""
    deadline = time.monotonic() + 60
    shown = _tracing("show", root, "--db", str(db))
    while shown.returncode != 0 and time.monotonic() < deadline:
        time.sleep(0.3)
        shown = _tracing("show", root, "--db", str(db))
    assert shown.returncode == 0, shown.stderr


def _daemon_process(db: Path, *options: str) -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, "-m", "tracing", "daemon", "--listen", "127.0.0.1:0"]
    process = subprocess.Popen(
        [*command, "--db", str(db), *options],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    first = process.stdout.readline()
    match = re.search(r"udp://([\d.]+:\d+)", first)
    if match is None:
        _, err = process.communicate(timeout=10)
        pytest.fail(f"the daemon did not start: {first}{err}")
    return process, match.group(1)


def test_daemon_quiet_prints_no_trace_lines_and_print_traces_still_works(
    tmp_path: Path,
) -> None:
    for options in (("--quiet",), ("--print-traces",)):  # the latter now a no-op, kept
        db = tmp_path / f"{options[0][2:]}.sqlite3"
        process, address = _daemon_process(db, *options)
        try:
            emitter = UDPEmitter(address)
            root = new_trace_id()
            for document in _documents(root):
                emitter.send(document)
            emitter.close()
            _wait_stored(db, root)
            process.send_signal(signal.SIGINT)  # pending traces are reported as it stops
            process.wait(timeout=10)
            assert process.stdout is not None
            out = process.stdout.read()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            for stream in (process.stdout, process.stderr):
                if stream is not None:
                    stream.close()
        assert process.returncode == 0
        if options == ("--quiet",):
            assert root not in out
            assert out.startswith("stopped:")
        else:
            assert out.startswith("a line per completed trace follows")
            assert root in out


def test_daemon_stops_quietly_when_its_reader_goes_away(tmp_path: Path) -> None:
    # `tracing daemon | head -3`: once the reader is gone, it stops as SIGPIPE would.
    process, address = _daemon_process(tmp_path / "t.sqlite3")
    assert process.stdout is not None
    assert process.stderr is not None
    try:
        process.stdout.close()
        emitter = UDPEmitter(address)
        for document in _documents(new_trace_id()):
            emitter.send(document)
        emitter.close()
        process.wait(timeout=60)  # no signal: it stops by itself, at its next line
        stderr = process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stderr.close()
    assert process.returncode == 141
    assert stderr == ""


def test_show_from_xray_without_a_region_says_which_option_to_set(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text("[default]\n")  # a profile with no region, as many have
    env = _env(AWS_CONFIG_FILE=str(config), AWS_ACCESS_KEY_ID="testing")
    env["AWS_SECRET_ACCESS_KEY"] = "testing"
    shown = _tracing("show", new_trace_id(), "--from-xray", env=env)
    assert shown.returncode == 2
    assert shown.stdout == ""
    assert shown.stderr == (
        "tracing show: --from-xray needs an AWS region: pass --region (e.g. --region "
        "us-east-1) or set AWS_REGION\n"
    )


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
