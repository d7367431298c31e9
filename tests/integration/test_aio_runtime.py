"""aioboto3 (aiobotocore) calls recorded as botocore's are, through the real runtime.

The function runs on ``.venv-aio``'s interpreter (aiobotocore pins a botocore of
its own), with this package on its path, in awslambdaric, against moto's HTTP
server; on both backends.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tracing import testing
from tracing._header import new_id, new_trace_id, parse
from tracing.local.runtime import LocalLambda
from tracing.local.runtime.aws import LocalAWS

from .conftest import FIXTURES

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
AIO_VENV = ROOT / ".venv-aio"


@pytest.fixture(scope="session")
def aio_venv() -> Path:
    """The aioboto3 venv (``make test`` makes it; made here when pytest runs alone)."""
    if not (AIO_VENV / ".installed").exists():
        subprocess.run(["make", ".venv-aio/.installed"], cwd=ROOT, check=True, timeout=900)
    return AIO_VENV


@pytest.fixture
def function(
    aws: LocalAWS, daemon: testing.DaemonListener, aio_venv: Path, backend: str
) -> Iterator[LocalLambda]:
    function = LocalLambda(
        "aio_app.handler",
        code_dir=FIXTURES,
        function_name="aio-app",
        timeout_s=20.0,
        env={**aws.env, "TRACING_BACKEND": backend, "PYTHONPATH": str(ROOT)},
        xray_daemon_address=daemon.address,
        python=str(aio_venv / "bin" / "python"),
        init_timeout_s=60.0,
    )
    function.start()
    yield function
    function.stop()


def _walk(entity: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield entity
    for child in entity.get("subsegments", ()):
        yield from _walk(child)


def test_aiobotocore_calls_are_recorded_and_carry_the_trace(
    function: LocalLambda, daemon: testing.DaemonListener, aws: LocalAWS
) -> None:
    bucket, queue = f"aio-{new_id()}", f"aio-{new_id()}"
    aws.client("s3").create_bucket(Bucket=bucket)
    sqs = aws.client("sqs")
    queue_url = sqs.create_queue(QueueName=queue)["QueueUrl"]
    root, parent = new_trace_id(), new_id()
    header = f"Root={root};Parent={parent};Sampled=1;Lineage=a87bd80c:1"
    event = {"bucket": bucket, "queue_url": queue_url, "keys": ["a", "b", "c"]}
    result = function.invoke(event, trace_header=header)
    assert result.ok, result.error
    assert result.payload == {"currency": "EUR", "missing": "NoSuchKey", "cancelled": True}

    docs = daemon.wait_for(2)
    for doc in docs:
        assert testing.check_document(doc) == [], doc
    init, invocation = docs
    # Init work on aiobotocore lands in Init, like botocore's.
    [load] = init["subsegments"]
    assert load["name"] == "load config"
    [ssm] = load["subsegments"]
    assert (ssm["namespace"], ssm["aws"]["operation"]) == ("aws", "GetParameter")

    assert (invocation["trace_id"], invocation["parent_id"]) == (root, parent)
    names = [child["name"] for child in invocation["subsegments"]]
    assert names == ["fan out", "sqs", "s3", "gave up"]
    fan_out, send, missing, gave_up = invocation["subsegments"]
    # Cancelled by the caller: described, not a fault of the service.
    [cancelled] = gave_up["subsegments"]
    assert cancelled["aws"]["operation"] == "PutObject"
    assert (cancelled.get("fault"), cancelled.get("error")) == (None, None)
    [exception] = cancelled["cause"]["exceptions"]
    assert exception["type"] == "CancelledError"
    assert "remote" not in exception
    puts = fan_out["subsegments"]
    assert [p["aws"]["operation"] for p in puts] == ["PutObject"] * 3
    assert {p["aws"]["bucket_name"] for p in puts} == {bucket}
    assert all(p["http"]["response"]["status"] == 200 for p in puts)
    assert send["aws"]["operation"] == "SendMessage"
    assert send["aws"]["queue_url"] == queue_url
    assert missing["aws"]["operation"] == "GetObject"
    assert (missing.get("error"), missing.get("fault")) == (True, None)
    assert missing["http"]["response"]["status"] == 404

    # The message carries the trace, the SendMessage subsegment as its parent,
    # Lineage kept: the propagation rule, as for botocore.
    [message] = testing.receive_messages(sqs, queue_url, 1)
    carried = parse(message["Attributes"]["AWSTraceHeader"])
    assert carried is not None
    assert (carried.root, carried.parent, carried.sampled) == (root, send["id"], "1")
    assert dict(carried.extra)["Lineage"] == "a87bd80c:1"
    assert all(e["id"] != carried.parent for e in _walk(fan_out))
