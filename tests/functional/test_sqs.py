"""SQS propagation in process: moto's HTTP server as SQS, a real UDP listener."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

import tracing
from tracing import testing
from tracing._header import new_id, new_trace_id, parse
from tracing.local.runtime.aws import LocalAWS


@pytest.fixture
def queue(aws: LocalAWS, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, str]]:
    """An SQS client made before configure(), and a fresh queue."""
    for key, value in aws.env.items():
        monkeypatch.setenv(key, value)
    client = boto3.client("sqs")
    url = client.create_queue(QueueName=f"q-{new_id()}")["QueueUrl"]
    yield client, url
    client.delete_queue(QueueUrl=url)


def _wire(client: Any) -> list[dict[str, Any]]:
    """Request bodies as they leave botocore (moto drops batch system attributes)."""
    sent: list[dict[str, Any]] = []
    client.meta.events.register(
        "before-send.sqs.*", lambda request, **_: sent.append(json.loads(request.body))
    )
    return sent


def _lambda_header(monkeypatch: pytest.MonkeyPatch, sampled: str = "1") -> str:
    root = new_trace_id()
    monkeypatch.setenv("_X_AMZN_TRACE_ID", f"Root={root};Parent={new_id()};Sampled={sampled}")
    return root


def _receive(client: Any, url: str, count: int) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    while len(messages) < count:
        got = client.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        messages.extend(got.get("Messages", []))
    return messages


@pytest.mark.usefixtures("in_lambda")
def test_producer_injects_parent_of_the_send_call(
    queue: tuple[Any, str], daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, url = queue
    tracing.configure(service="producer")
    wire = _wire(client)
    attributes = {f"a{i}": {"DataType": "String", "StringValue": "v"} for i in range(10)}
    mine = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"

    @tracing.handler
    def handler(event: Any, context: Any) -> None:
        client.send_message(QueueUrl=url, MessageBody="one", MessageAttributes=attributes)
        client.send_message_batch(
            QueueUrl=url,
            Entries=[{"Id": "a", "MessageBody": "two"}, {"Id": "b", "MessageBody": "three"}],
        )
        client.send_message(
            QueueUrl=url,
            MessageBody="mine",
            MessageSystemAttributes={"AWSTraceHeader": {"DataType": "String", "StringValue": mine}},
        )

    root = _lambda_header(monkeypatch)
    handler({}, testing.FakeContext())
    invocation = daemon.wait_for(2)[-1]
    calls = [c for c in invocation["subsegments"] if c.get("namespace") == "aws"]
    assert [c["aws"]["operation"] for c in calls] == [
        "SendMessage",
        "SendMessageBatch",
        "SendMessage",
    ]

    single = parse(wire[0]["MessageSystemAttributes"]["AWSTraceHeader"]["StringValue"])
    assert single is not None
    assert (single.root, single.parent, single.sampled) == (root, calls[0]["id"], "1")
    assert len(wire[0]["MessageAttributes"]) == 10
    for entry in wire[1]["Entries"]:
        header = parse(entry["MessageSystemAttributes"]["AWSTraceHeader"]["StringValue"])
        assert header is not None
        assert (header.root, header.parent) == (root, calls[1]["id"])
    assert wire[2]["MessageSystemAttributes"]["AWSTraceHeader"]["StringValue"] == mine

    received = {m["Body"]: m for m in _receive(client, url, 4)}
    assert received["one"]["Attributes"]["AWSTraceHeader"] == single.to_string()
    assert received["mine"]["Attributes"]["AWSTraceHeader"] == mine


@pytest.mark.usefixtures("in_lambda")
def test_init_injects_nothing_and_unsampled_passes_its_own_trace_unsampled(
    queue: tuple[Any, str], daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, url = queue
    tracing.configure()
    wire = _wire(client)
    client.send_message(QueueUrl=url, MessageBody="at import")
    handler = tracing.handler(lambda e, c: client.send_message(QueueUrl=url, MessageBody="x"))
    root, parent = new_trace_id(), new_id()
    monkeypatch.setenv("_X_AMZN_TRACE_ID", f"Root={root};Parent={parent};Sampled=0")
    handler({}, testing.FakeContext())
    assert len(wire) == 2
    assert "MessageSystemAttributes" not in wire[0]
    sent = wire[1]["MessageSystemAttributes"]["AWSTraceHeader"]["StringValue"]
    assert sent == f"Root={root};Parent={parent};Sampled=0"
    assert daemon.settle(0.1) == []


@pytest.mark.usefixtures("in_lambda")
def test_lambda_batch_consumer_lands_in_the_producers_trace(
    queue: tuple[Any, str], daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, url = queue
    tracing.configure(service="orders-worker")
    producer = tracing.handler(
        lambda e, c: [client.send_message(QueueUrl=url, MessageBody=b) for b in ("good", "bad")]
    )
    producer_root = _lambda_header(monkeypatch)
    producer({}, testing.FakeContext())
    send_ids = [c["id"] for c in daemon.wait_for(2)[-1]["subsegments"]]
    monkeypatch.delenv("_X_AMZN_TRACE_ID")  # else botocore passes it, and SQS stores it
    client.send_message(QueueUrl=url, MessageBody="no header")  # outside any trace
    event = testing.lambda_sqs_event(_receive(client, url, 3))
    event["Records"].append(
        {"messageId": "junk", "body": "junk", "attributes": {"AWSTraceHeader": "Root=dummy"}}
    )

    def process(record: dict[str, Any]) -> None:
        with tracing.span("handle", body=record["body"]):
            client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
            if record["body"] == "bad":
                raise ValueError("poison order")

    consumer = tracing.handler(lambda e, c: tracing.sqs.process_batch(e, process))
    daemon.clear()
    consumer_root = _lambda_header(monkeypatch)
    result = consumer(event, testing.FakeContext())
    bad_id = next(r["messageId"] for r in event["Records"] if r["body"] == "bad")
    assert result == {"batchItemFailures": [{"itemIdentifier": bad_id}]}

    docs = daemon.settle()
    for doc in docs:
        assert testing.check_document(doc) == [], doc
    consumer_segments = [d for d in docs if d["trace_id"] == producer_root]
    assert len(consumer_segments) == 2
    by_body = {s["subsegments"][0]["annotations"]["body"]: s for s in consumer_segments}
    for body, send_id in zip(("good", "bad"), send_ids, strict=True):
        segment = by_body[body]
        assert segment["name"] == "orders-worker"
        assert segment["parent_id"] == send_id
        assert "type" not in segment
        [handle] = segment["subsegments"]
        [call] = handle["subsegments"]
        assert call["aws"]["operation"] == "GetQueueAttributes"
    assert by_body["bad"]["fault"] is True
    assert by_body["bad"]["cause"]["exceptions"][0]["message"] == "poison order"
    assert "fault" not in by_body["good"]

    [invocation] = [d for d in docs if d["trace_id"] == consumer_root]
    records = invocation["subsegments"]
    assert [r["name"] for r in records] == ["SQS message"] * 4
    linked = [r["annotations"].get("LinkedTraceId") for r in records]
    assert linked[:2] == [producer_root, producer_root]
    assert linked[2:] == [None, None]
    assert [r["annotations"]["MessageId"] for r in records] == [
        r["messageId"] for r in event["Records"]
    ]
    # Records without a usable header are processed inside the invocation.
    assert [c["name"] for c in records[2]["subsegments"]] == ["handle"]
    assert records[1]["fault"] is True


def test_worker_consume_outside_lambda(
    queue: tuple[Any, str], daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, url = queue
    tracing.configure(service="worker")
    root, parent = new_trace_id(), new_id()
    header = f"Root={root};Parent={parent};Sampled=1"
    client.send_message(
        QueueUrl=url,
        MessageBody="traced",
        MessageSystemAttributes={"AWSTraceHeader": {"DataType": "String", "StringValue": header}},
    )
    client.send_message(QueueUrl=url, MessageBody="untraced")
    messages = _receive(client, url, 2)
    assert all(
        "AWSTraceHeader" in m.get("Attributes", {}) for m in messages if m["Body"] == "traced"
    )
    began = time.time()
    for message in messages:
        with tracing.sqs.consume(message):
            client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    ended = time.time()
    received = daemon.wait_for(2)
    assert [d["subsegments"][0]["aws"]["operation"] for d in received] == ["GetQueueAttributes"] * 2
    docs = {d["trace_id"]: d for d in received}
    assert root in docs
    assert docs[root]["parent_id"] == parent
    assert docs[root]["name"] == "worker"
    [other] = [d for t, d in docs.items() if t != root]
    assert "parent_id" not in other
    assert other["annotations"]["MessageId"]
    for doc in docs.values():
        assert testing.check_document(doc) == []
        # Epoch seconds, inside the processing as this test saw it.
        assert began <= doc["start_time"] <= doc["end_time"] <= ended


def test_a_worker_keeps_the_producers_unsampled_decision(
    queue: tuple[Any, str], daemon: testing.DaemonListener
) -> None:
    """A message saying Sampled=0: nothing recorded, and what it sends says so too."""
    client, url = queue
    tracing.configure(service="worker")
    wire = _wire(client)
    root, parent = new_trace_id(), new_id()
    message = {
        "MessageId": new_id(),
        "Attributes": {"AWSTraceHeader": f"Root={root};Parent={parent};Sampled=0;Lineage=a:1"},
    }
    with tracing.sqs.consume(message) as span:
        assert span.recording is False
        assert tracing.current_span().trace_id == root
        with tracing.span("inside"):
            client.send_message(QueueUrl=url, MessageBody="next hop")
    sent = wire[-1]["MessageSystemAttributes"]["AWSTraceHeader"]["StringValue"]
    assert sent == f"Root={root};Parent={parent};Sampled=0;Lineage=a:1"
    assert daemon.sync() == []


def test_an_eventbridge_events_detail_context_in_a_worker(
    queue: tuple[Any, str], daemon: testing.DaemonListener
) -> None:
    """An EventBridge event delivered to SQS without AWSTraceHeader: detail._tracing."""
    client, url = queue
    tracing.configure(service="worker")
    root, parent = new_trace_id(), new_id()
    event = {
        "version": "0",
        "id": new_id(),
        "detail-type": "OrderPlaced",
        "source": "shop",
        "account": "123456789012",
        "time": "2026-01-01T00:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {"_tracing": {"AWSTraceHeader": f"Root={root};Parent={parent};Sampled=1"}},
    }
    client.send_message(QueueUrl=url, MessageBody=json.dumps(event))
    [message] = _receive(client, url, 1)
    assert "AWSTraceHeader" not in message.get("Attributes", {})
    with tracing.sqs.consume(message):
        pass
    [doc] = daemon.wait_for(1)
    assert (doc["trace_id"], doc["parent_id"], doc["name"]) == (root, parent, "worker")


@pytest.mark.parametrize("backend", ["xray", "otel"])
@pytest.mark.usefixtures("in_lambda")
def test_a_records_annotations_are_exact_and_yours_are_kept(
    backend: str, daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The consumer writes its annotations' JSON itself (faster than encoding the
    dict): hostile ids come out as JSON would write them, and an annotation the
    body adds is never lost to that shortcut."""
    tracing.configure(service="worker", backend=backend)
    producer_root, producer_parent = new_trace_id(), new_id()
    hostile = 'm-"\\</script>\u00e9\U0001f600'
    header = f"Root={producer_root};Parent={producer_parent};Sampled=1"
    message = {"MessageId": hostile, "Body": "{}", "Attributes": {"AWSTraceHeader": header}}
    plain = {"MessageId": "m-plain", "Body": "{}", "Attributes": {}}
    event = testing.lambda_sqs_event([message, plain], queue_arn="arn:aws:sqs:us-east-1:1:orders")

    @tracing.handler
    def handler(event: dict[str, Any], context: Any) -> None:
        for index, record in enumerate(event["Records"]):
            with tracing.sqs.consume(record):
                tracing.annotate("step", index)

    _lambda_header(monkeypatch)
    handler(event, testing.FakeContext())
    documents = daemon.sync()
    [segment] = [d for d in documents if d["trace_id"] == producer_root]
    [invocation] = {d["trace_id"] for d in documents if d["trace_id"] != producer_root}
    assert segment["annotations"] == {
        "MessageId": hostile,
        "Queue": "orders",
        "LinkedTraceId": invocation,  # the way back to the invocation's trace
        "step": 0,
    }
    records = [e for d in documents for e in testing.iter_entities(d) if e["name"] == "SQS message"]
    by_id = {r["annotations"]["MessageId"]: r["annotations"] for r in records}
    assert by_id[hostile] == {"MessageId": hostile, "LinkedTraceId": producer_root}
    # Without a usable header the record's subsegment is the processing: "step" lands on it.
    assert by_id["m-plain"] == {"MessageId": "m-plain", "step": 1}
    for document in documents:
        assert not testing.check_document(document), document
