"""AWS calls recorded by the core, the same on both backends, against moto's SQS and SSM."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import boto3
import pytest

import tracing
from tracing import testing
from tracing._header import new_id, new_trace_id
from tracing.local.runtime.aws import LocalAWS


@pytest.fixture(params=["xray", "otel"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def clients(aws: LocalAWS, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    for key, value in aws.env.items():
        monkeypatch.setenv(key, value)
    return boto3.client("ssm"), boto3.client("sqs")


def _invoke(monkeypatch: pytest.MonkeyPatch, handler: Any, sampled: str = "1") -> Any:
    monkeypatch.setenv(
        "_X_AMZN_TRACE_ID", f"Root={new_trace_id()};Parent={new_id()};Sampled={sampled}"
    )
    return handler({}, testing.FakeContext())


@pytest.mark.usefixtures("in_lambda")
def test_calls_are_subsegments_with_xrays_error_meaning(
    backend: str,
    clients: tuple[Any, Any],
    daemon: testing.DaemonListener,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ssm, sqs = clients
    url = sqs.create_queue(QueueName=f"q-{new_id()}")["QueueUrl"]
    tracing.configure(backend=backend)

    @tracing.handler
    def handler(event: Any, context: Any) -> str:
        value = ssm.get_parameter(Name="/app/x")["Parameter"]["Value"]
        sqs.send_message(QueueUrl=url, MessageBody="m")
        with pytest.raises(ssm.exceptions.ParameterNotFound):
            ssm.get_parameter(Name="/app/missing")
        return str(value)

    assert _invoke(monkeypatch, handler) == "1"
    [invocation] = [d for d in daemon.sync() if d["name"] == "## handler"]
    assert testing.check_document(invocation) == []
    get, send, missing = invocation["subsegments"]
    assert (get["name"], get["namespace"]) == ("ssm", "aws")
    assert get["aws"]["operation"] == "GetParameter"
    assert get["aws"]["region"] == "us-east-1"
    assert get["aws"]["request_id"]
    assert get["http"] == {"response": {"status": 200}}
    assert "fault" not in get
    assert "error" not in get
    assert send["aws"]["queue_url"] == url
    assert missing["error"] is True  # 4xx: the caller's error, not an outage
    assert "fault" not in missing
    assert missing["http"] == {"response": {"status": 400}}
    [exception] = missing["cause"]["exceptions"]
    assert (exception["type"], exception["remote"]) == ("ParameterNotFound", True)


@pytest.mark.usefixtures("in_lambda")
def test_unsampled_and_untraced_calls_are_not_recorded(
    backend: str,
    clients: tuple[Any, Any],
    daemon: testing.DaemonListener,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ssm, _ = clients
    tracing.configure(backend=backend, init_trace="off")
    handler = tracing.handler(lambda e, c: ssm.get_parameter(Name="/app/x")["Parameter"]["Value"])
    assert _invoke(monkeypatch, handler, sampled="0") == "1"
    monkeypatch.delenv("_X_AMZN_TRACE_ID")
    assert handler({}, testing.FakeContext()) == "1"
    assert daemon.sync() == []


SCRIPT = """
import json, os, sys
import boto3
from aws_xray_sdk.core import patch
import tracing
from tracing import testing
from tracing._header import new_id, new_trace_id

order = sys.argv[1]
ssm = boto3.client("ssm")
headers = []

def capture(request, **_):
    value = request.headers.get("X-Amzn-Trace-Id")
    headers.append(value.decode() if isinstance(value, bytes) else value)

ssm.meta.events.register_last("before-send", capture)
with testing.DaemonListener() as daemon:
    os.environ["AWS_XRAY_DAEMON_ADDRESS"] = daemon.address
    if order == "patch-first":
        patch(["botocore"])
    tracing.configure(backend="xray", service="svc")
    if order == "patch-after":
        patch(["botocore"])

    @tracing.handler
    def handler(event, context):
        with tracing.span("work"):
            try:
                ssm.get_parameter(Name="/app/missing")
            except ssm.exceptions.ParameterNotFound:
                pass
            return ssm.get_parameter(Name="/app/x")["Parameter"]["Value"]

    invocations = []
    for sampled in ("1", "0"):
        root, parent = new_trace_id(), new_id()
        header = f"Root={root};Parent={parent};Sampled={sampled};Lineage=a87bd80c:3"
        os.environ["_X_AMZN_TRACE_ID"] = header
        assert handler({}, testing.FakeContext()) == "1"
        invocations.append([root, parent])
    print(json.dumps({"documents": daemon.sync(), "headers": headers, "invocations": invocations}))
"""


@pytest.mark.parametrize("order", ["patch-first", "patch-after"])
def test_the_sdks_own_botocore_patch_does_not_double_calls(
    order: str, aws: LocalAWS, tmp_path: Path
) -> None:
    """``patch(['botocore'])`` before or after configure(): one subsegment per call."""
    env = {
        **os.environ,
        **aws.env,
        "LAMBDA_TASK_ROOT": str(tmp_path),
        "AWS_LAMBDA_FUNCTION_NAME": "svc",
    }
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(SCRIPT))
    done = subprocess.run(
        [sys.executable, str(script), order], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    documents, headers, invocations = out["documents"], out["headers"], out["invocations"]
    [invocation] = [d for d in documents if d["name"] == "## handler"]
    [work] = invocation["subsegments"]
    calls = [e for e in testing.iter_entities(work) if e.get("namespace") == "aws"]
    assert len(calls) == 2, work
    missing, found = calls
    assert (missing["aws"]["operation"], found["aws"]["operation"]) == ("GetParameter",) * 2
    assert missing["error"] is True  # 4xx: an error, whichever of the two recorded it
    assert "fault" not in missing
    assert "fault" not in found
    assert testing.check_document(invocation) == []
    # The HTTP header keeps Lineage and the call's own subsegment, whoever wraps whom;
    # unsampled, the invocation's own trace (the SDK alone writes zeros there).
    (root, _), (unsampled_root, unsampled_parent) = invocations
    assert headers[:2] == [
        f"Root={root};Parent={missing['id']};Sampled=1;Lineage=a87bd80c:3",
        f"Root={root};Parent={found['id']};Sampled=1;Lineage=a87bd80c:3",
    ]
    unsampled = f"Root={unsampled_root};Parent={unsampled_parent};Sampled=0;Lineage=a87bd80c:3"
    assert headers[2:] == [unsampled, unsampled]


def test_opt_in_carriers_name_exactly_their_modules_operations() -> None:
    import importlib

    from tracing import _boto_hooks

    for module, operations in _boto_hooks._OPT_IN_CARRIERS.values():
        handlers = importlib.import_module(module, "tracing").HANDLERS
        assert tuple(handlers) == operations


OPT_IN_SCRIPT = """
import json, sys
import boto3
import tracing
from tracing import testing
from tracing._header import new_id, new_trace_id
import os

options = {"payload_context": [f"dynamodb:{sys.argv[2]}"]} if sys.argv[3] == "on" else {}
tracing.configure(backend=sys.argv[1], **options)
ddb = boto3.client("dynamodb")
ddb.create_table(TableName=sys.argv[2], KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
    AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
    BillingMode="PAY_PER_REQUEST")
os.environ["_X_AMZN_TRACE_ID"] = f"Root={new_trace_id()};Parent={new_id()};Sampled=1"

@tracing.handler
def handler(event, context):
    ddb.put_item(TableName=sys.argv[2], Item={"id": {"S": "1"}})

handler({}, testing.FakeContext())
imported = "tracing.dynamodb" in sys.modules
item = ddb.get_item(TableName=sys.argv[2], Key={"id": {"S": "1"}})["Item"]
print(json.dumps({"imported": imported, "carried": "_tracing" in item}))
"""


@pytest.mark.parametrize("option", ["off", "on"])
@pytest.mark.parametrize("backend", ["xray", "otel"])
def test_a_write_imports_the_dynamodb_carrier_only_where_payload_context_asks(
    backend: str, option: str, aws: LocalAWS, tmp_path: Path
) -> None:
    """The opt-in carriers cost a DynamoDB writer nothing by default (no module
    imported, nothing written); naming the table carries the context."""
    env = {
        **os.environ,
        **aws.env,
        "LAMBDA_TASK_ROOT": str(tmp_path),
        "AWS_LAMBDA_FUNCTION_NAME": "svc",
        "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:9",
    }
    script = tmp_path / "app.py"
    script.write_text(OPT_IN_SCRIPT)
    table = f"opt-in-{backend}-{new_id()}"
    done = subprocess.run(
        [sys.executable, str(script), backend, table, option],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    on = option == "on"
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"imported": on, "carried": on}
