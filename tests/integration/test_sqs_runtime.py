"""Producer -> SQS -> consumer, through the real awslambdaric and moto's SQS."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

from tracing import testing
from tracing._header import new_id, new_trace_id, parse
from tracing.local.runtime.aws import LocalAWS

from .conftest import FIXTURES, LaunchFn

pytestmark = pytest.mark.integration


def _header() -> tuple[str, str]:
    root = new_trace_id()
    return root, f"Root={root};Parent={new_id()};Sampled=1"


def _checked(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for doc in docs:
        assert testing.check_document(doc) == [], doc
    return docs


@pytest.fixture
def queue(aws: LocalAWS) -> tuple[str, str]:
    client = aws.client("sqs")
    name = f"orders-{new_id()}"
    url = client.create_queue(QueueName=name)["QueueUrl"]
    arn = client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return url, arn


def test_consumer_processing_appears_in_the_producers_trace(
    launch: LaunchFn,
    daemon: testing.DaemonListener,
    aws: LocalAWS,
    queue: tuple[str, str],
    backend: str,
) -> None:
    url, arn = queue
    producer = launch("producer_app.handler", QUEUE_URL=url)
    producer_root, producer_header = _header()
    caller_root, caller_header = _header()
    result = producer.invoke({"caller_header": caller_header}, trace_header=producer_header)
    assert result.ok, result.error
    produced = _checked(daemon.wait_for(2))
    invocation = produced[-1]
    sends = [c for c in invocation["subsegments"] if c.get("namespace") == "aws"]
    assert [c["aws"]["operation"] for c in sends] == [
        "SendMessage",
        "SendMessage",
        "SendMessageBatch",
        "SendMessage",
    ]

    # On the wire: each entry's header names the call's own subsegment; the
    # caller's header is kept.
    wire = result.payload["wire"]
    for body, call in zip(wire[:3], sends[:3], strict=True):
        entries = body.get("Entries", [body])
        for entry in entries:
            header = parse(entry["MessageSystemAttributes"]["AWSTraceHeader"]["StringValue"])
            assert header is not None
            assert (header.root, header.parent, header.sampled) == (producer_root, call["id"], "1")
    assert wire[3]["MessageSystemAttributes"]["AWSTraceHeader"]["StringValue"] == caller_header
    if backend == "otel":  # the W3C context travels too, for OTel-instrumented consumers
        single = wire[0]
        traceparent = single["MessageAttributes"]["traceparent"]["StringValue"]
        assert traceparent == f"00-{producer_root[2:10]}{producer_root[11:]}-{sends[0]['id']}-01"
    else:
        assert "MessageAttributes" not in wire[0]

    aws.client("sqs").send_message(QueueUrl=url, MessageBody="no header")
    messages = testing.receive_messages(aws.client("sqs"), url, 6)
    assert len(messages) == 6
    event = testing.lambda_sqs_event(messages, queue_arn=arn)
    template = next(r for r in event["Records"] if r["body"] == "no header")
    for index, junk in enumerate(["Root=dummy", "x" * 100_000, "<script>alert(1)</script>"]):
        event["Records"].append(
            {**template, "messageId": f"junk-{index}", "attributes": {"AWSTraceHeader": junk}}
        )

    consumer = launch("consumer_app.handler", QUEUE_URL=url)
    daemon.clear()
    consumer_root, consumer_header = _header()
    outcome = consumer.invoke(event, trace_header=consumer_header)
    assert outcome.ok, outcome.error
    poison = next(m["MessageId"] for m in messages if m["Body"] == "poison")
    assert outcome.payload == {"batchItemFailures": [{"itemIdentifier": poison}]}

    docs = _checked(daemon.settle())
    in_producer_trace = [d for d in docs if d["trace_id"] == producer_root]
    by_body = {d["subsegments"][0]["annotations"]["body"]: d for d in in_producer_trace}
    # LocalAWS keeps the batch entries' AWSTraceHeader (stock moto drops it).
    expected = {"good": sends[0], "poison": sends[1], "batch-1": sends[2], "batch-2": sends[2]}
    assert sorted(by_body) == sorted(expected)
    for body, call in expected.items():
        segment = by_body[body]
        assert segment["name"] == "consumer"
        assert segment["parent_id"] == call["id"]
        [handle] = segment["subsegments"]
        assert [c["aws"]["operation"] for c in handle["subsegments"]] == ["GetQueueAttributes"]
    assert by_body["poison"]["fault"] is True
    assert by_body["poison"]["cause"]["exceptions"][0]["type"] == "ValueError"
    assert "fault" not in by_body["good"]

    [in_caller_trace] = [d for d in docs if d["trace_id"] == caller_root]
    assert in_caller_trace["subsegments"][0]["annotations"]["body"] == "caller-set"

    [consumer_invocation] = [
        d for d in docs if d["trace_id"] == consumer_root and d["name"] == "## handler"
    ]
    records = consumer_invocation["subsegments"]
    assert len(records) == len(event["Records"])
    assert {r["name"] for r in records} == {"SQS message"}
    linked = {r["annotations"]["MessageId"]: r["annotations"].get("LinkedTraceId") for r in records}
    assert linked[poison] == producer_root
    for index in range(3):
        assert linked[f"junk-{index}"] is None
    assert "x" * 200 not in str(docs)
    assert "<script>" not in str(docs)
    assert "discarded" not in consumer.logs


def test_polling_worker_continues_the_producers_trace(
    launch: LaunchFn,
    daemon: testing.DaemonListener,
    aws: LocalAWS,
    queue: tuple[str, str],
    backend: str,
) -> None:
    url, _ = queue
    producer = launch("producer_app.handler", QUEUE_URL=url)
    producer_root, producer_header = _header()
    assert producer.invoke({}, trace_header=producer_header).ok
    sends = daemon.wait_for(2)[-1]["subsegments"]
    daemon.clear()
    env = {
        **os.environ,
        **aws.env,
        "QUEUE_URL": url,
        "COUNT": "4",
        "AWS_XRAY_DAEMON_ADDRESS": daemon.address,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    env.pop("LAMBDA_TASK_ROOT", None)
    env["TRACING_BACKEND"] = backend
    done = subprocess.run(
        [sys.executable, str(FIXTURES / "worker.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "processed 4" in done.stdout
    docs = _checked(daemon.settle())
    in_trace = {
        d["subsegments"][0]["annotations"]["body"]: d
        for d in docs
        if d["trace_id"] == producer_root
    }
    # LocalAWS keeps the batch entries' AWSTraceHeader (stock moto drops it).
    expected = {"good": sends[0], "poison": sends[1], "batch-1": sends[2], "batch-2": sends[2]}
    assert sorted(in_trace) == sorted(expected)
    for body, call in expected.items():
        segment = in_trace[body]
        assert segment["name"] == "worker"
        assert segment["parent_id"] == call["id"]
        work, delete = segment["subsegments"]
        assert work["subsegments"][0]["aws"]["operation"] == "GetQueueAttributes"
        assert delete["aws"]["operation"] == "DeleteMessage"
    others = [d for d in docs if d["trace_id"] != producer_root]
    assert others == []
