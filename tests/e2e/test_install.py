"""A plain ``pip install`` of the project: the native path, with no tracing library.

A fresh venv gets the project with no extras, plus what Lambda's Python runtime
provides (``awslambdaric``, ``boto3``); a traced function runs there through the
real ``awslambdaric`` and must send its Init and invocation documents without
aws-xray-sdk (or OpenTelemetry) ever being installed or imported.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tracing import testing
from tracing._header import new_id, new_trace_id
from tracing.local.runtime import LocalLambda
from tracing.local.runtime.aws import LocalAWS

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "integration" / "fixtures"


def test_a_plain_install_records_everything_without_a_tracing_library(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    install = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", str(ROOT), "awslambdaric", "boto3"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr
    listed = subprocess.run(
        [python, "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True, check=True
    ).stdout
    assert "aws-xray-sdk" not in listed
    assert "opentelemetry" not in listed

    with LocalAWS() as aws, testing.DaemonListener() as daemon:
        aws.client("ssm").put_parameter(
            Name="/app/currency", Value="EUR", Type="String", Overwrite=True
        )
        function = LocalLambda(
            "native_app.handler",
            code_dir=FIXTURES,
            function_name="native-app",
            env=aws.env,
            xray_daemon_address=daemon.address,
            python=python,
        )
        with function:
            root = new_trace_id()
            result = function.invoke({}, trace_header=f"Root={root};Parent={new_id()};Sampled=1")
            assert result.ok, (result.error, function.logs)
            documents = daemon.wait_for(2)
    assert result.payload == {"currency": "EUR", "libraries": []}
    init, invocation = documents
    for document in documents:
        assert testing.check_document(document) == []
        assert document["trace_id"] == root
    assert [e["name"] for e in testing.iter_entities(init)] == ["Init", "load config", "ssm"]
    assert [e["name"] for e in testing.iter_entities(invocation)] == ["## handler", "work", "ssm"]
