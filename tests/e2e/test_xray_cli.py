"""The AWS CLI (``aws xray ...``) against ``tracing daemon``'s X-Ray API, run as a user runs it.

awscli is not among the dev dependencies: when it is missing, it is installed
once into this interpreter's environment (pinned to the installed botocore, so
nothing else changes), under a file lock so parallel sessions do not race.
"""

from __future__ import annotations

import fcntl
import importlib.metadata
import importlib.util
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEADER = b'{"format":"json","version":1}\n'
LOCK = Path(sys.prefix) / ".tracing-awscli-install.lock"


@pytest.fixture(scope="session")
def aws_cli() -> list[str]:
    """The command that runs the AWS CLI in this environment."""
    with LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if importlib.util.find_spec("awscli") is None:
            botocore = importlib.metadata.version("botocore")
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "awscli",
                    f"botocore=={botocore}",
                ],
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            assert done.returncode == 0, done.stdout + done.stderr
            importlib.invalidate_caches()
    assert importlib.util.find_spec("awscli") is not None
    return [sys.executable, "-m", "awscli"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[str]:
    """``tracing daemon`` on a port of its own; yields its ``host:port``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TRACING_", "_X_AMZN"))}
    for _ in range(5):  # the port may be taken between choosing and binding it
        address = f"127.0.0.1:{_free_port()}"
        process = subprocess.Popen(
            [sys.executable, "-m", "tracing", "daemon", "--listen", address, "--quiet"],
            cwd=ROOT,
            env={**env, "TRACING_DB": str(tmp_path / "traces.sqlite3")},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 30)
        line = process.stdout.readline() if ready else ""
        if "X-Ray API on http://" + address in line:
            break
        process.kill()
        process.communicate(timeout=10)
    else:
        pytest.fail(f"tracing daemon did not start: {line!r}")
    try:
        yield address
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
        assert process.returncode == 0, out + err


def _run(aws_cli: list[str], daemon: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "_X_AMZN"))}
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_PAGER="",
    )
    return subprocess.run(
        [
            *aws_cli,
            "xray",
            *args,
            "--endpoint-url",
            f"http://{daemon}",
            "--region",
            "us-east-1",
            "--output",
            "json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _aws(aws_cli: list[str], daemon: str, *args: str) -> Any:
    done = _run(aws_cli, daemon, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def _order(n: int, start: float, sku: str) -> dict[str, Any]:
    return {
        "trace_id": f"1-{int(start):08x}-{n:024x}",
        "id": f"{n:016x}",
        "name": "orders-api",
        "start_time": start,
        "end_time": start + 0.2,
        "annotations": {"sku": sku},
    }


def test_aws_cli_reads_the_daemons_traces(aws_cli: list[str], daemon: str) -> None:
    now = time.time()
    orders = [_order(n, now - 300 + 10 * n, ["book-1", "pen-2", "book-1"][n % 3]) for n in range(6)]
    host, _, port = daemon.rpartition(":")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for order in orders:
            sock.sendto(HEADER + json.dumps(order).encode(), (host, int(port)))
    window = ["--start-time", str(int(now - 600)), "--end-time", str(int(now + 60))]
    deadline = time.monotonic() + 30
    while True:  # the daemon stores what it receives in batches: wait for all six
        listed = _aws(aws_cli, daemon, "get-trace-summaries", *window)
        if len(listed["TraceSummaries"]) == len(orders) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert {s["Id"] for s in listed["TraceSummaries"]} == {o["trace_id"] for o in orders}

    books = _aws(
        aws_cli,
        daemon,
        "get-trace-summaries",
        *window,
        "--filter-expression",
        'annotation.sku = "book-1"',
    )
    wanted = [o["trace_id"] for o in reversed(orders) if o["annotations"]["sku"] == "book-1"]
    assert [s["Id"] for s in books["TraceSummaries"]] == wanted
    assert books["TraceSummaries"][0]["Annotations"]["sku"][0]["AnnotationValue"] == {
        "StringValue": "book-1"
    }

    traces = _aws(aws_cli, daemon, "batch-get-traces", "--trace-ids", *wanted)
    assert sorted(t["Id"] for t in traces["Traces"]) == sorted(wanted)
    documents = {
        json.loads(s["Document"])["trace_id"]: json.loads(s["Document"])
        for t in traces["Traces"]
        for s in t["Segments"]
    }
    assert documents == {o["trace_id"]: o for o in orders if o["trace_id"] in wanted}

    bad = _run(
        aws_cli, daemon, "get-trace-summaries", *window, "--filter-expression", "annotation.sku ="
    )
    assert bad.returncode != 0
    assert "InvalidRequestException" in bad.stderr
    assert "column" in bad.stderr
