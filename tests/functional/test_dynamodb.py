"""DynamoDB: opt-in item context on the wire, and stream consumers, on both backends."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

import tracing
from tracing import testing
from tracing._header import new_id, new_trace_id, parse
from tracing.local.runtime.aws import LocalAWS

LINEAGE = "a87bd80c:3"


@pytest.fixture(params=["xray", "otel"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Table:
    """A client made before configure(), a fresh table, and the requests sent."""

    def __init__(self) -> None:
        self.client = boto3.client("dynamodb")
        self.name = f"t-{new_id()}"
        self.client.create_table(
            TableName=self.name,
            KeySchema=[{"AttributeName": "sku", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "sku", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        self.arn = f"arn:aws:dynamodb:us-east-1:123456789012:table/{self.name}/stream/2024-01-01"
        self.sent: list[dict[str, Any]] = []
        self.client.meta.events.register_last("before-send.dynamodb.*", self._capture)
        self.resource = boto3.resource("dynamodb").Table(self.name)
        self.resource.meta.client.meta.events.register_last("before-send.dynamodb.*", self._capture)

    def _capture(self, request: Any, **_: Any) -> None:
        self.sent.append(json.loads(request.body))

    def stored(self, sku: str) -> dict[str, Any]:
        return dict(self.client.get_item(TableName=self.name, Key={"sku": {"S": sku}})["Item"])


@pytest.fixture
def table(aws: LocalAWS, monkeypatch: pytest.MonkeyPatch) -> Iterator[Table]:
    for key, value in aws.env.items():
        monkeypatch.setenv(key, value)
    made = Table()
    yield made
    made.client.delete_table(TableName=made.name)


def _invoke(monkeypatch: pytest.MonkeyPatch, fn: Any, event: Any = None, sampled: str = "1") -> str:
    root = new_trace_id()
    monkeypatch.setenv(
        "_X_AMZN_TRACE_ID", f"Root={root};Parent={new_id()};Sampled={sampled};Lineage={LINEAGE}"
    )
    tracing.handler(fn)(event or {}, testing.FakeContext())
    return root


def _header_of(item: dict[str, Any]) -> Any:
    members = item["_tracing"]["M"]
    return parse(members["AWSTraceHeader"]["S"]), members


def _writes(table: Table) -> None:
    client, name = table.client, table.name
    client.put_item(TableName=name, Item={"sku": {"S": "one"}})
    table.resource.put_item(Item={"sku": "two", "n": 2})
    client.batch_write_item(
        RequestItems={
            name: [
                {"PutRequest": {"Item": {"sku": {"S": "three"}}}},
                {"DeleteRequest": {"Key": {"sku": {"S": "gone"}}}},
            ]
        }
    )
    client.transact_write_items(
        TransactItems=[{"Put": {"TableName": name, "Item": {"sku": {"S": "four"}}}}]
    )
    client.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": name, "Item": {"sku": {"S": "five"}}}},
            {
                "Update": {
                    "TableName": name,
                    "Key": {"sku": {"S": "one"}},
                    "UpdateExpression": "SET n = :n",
                    "ExpressionAttributeValues": {":n": {"N": "1"}},
                }
            },
        ]
    )
    client.put_item(TableName=name, Item={"sku": {"S": "mine"}, "_tracing": {"S": "the caller's"}})


@pytest.mark.usefixtures("in_lambda")
def test_nothing_is_added_by_default(
    table: Table, daemon: testing.DaemonListener, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure(backend=backend)
    _invoke(monkeypatch, lambda e, c: _writes(table))
    assert len(table.sent) == 6
    assert "_tracing" not in json.dumps(table.sent[:-1])
    assert table.stored("one") == {"sku": {"S": "one"}, "n": {"N": "1"}}
    daemon.wait_for(2)


@pytest.mark.usefixtures("in_lambda")
def test_the_option_adds_the_call_as_parent_with_lineage(
    table: Table, daemon: testing.DaemonListener, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure(backend=backend, payload_context=[f"dynamodb:{table.name}"])
    root = _invoke(monkeypatch, lambda e, c: _writes(table))
    calls = [c for c in daemon.wait_for(2)[-1]["subsegments"] if c.get("namespace") == "aws"]
    assert [c["aws"]["operation"] for c in calls] == [
        "PutItem",
        "PutItem",
        "BatchWriteItem",
        "TransactWriteItems",
        "TransactWriteItems",
        "PutItem",
    ]
    put, resource_put, batch, transact = table.sent[:4]
    items = [
        (put["Item"], calls[0]["id"]),
        (resource_put["Item"], calls[1]["id"]),
        (batch["RequestItems"][table.name][0]["PutRequest"]["Item"], calls[2]["id"]),
        (transact["TransactItems"][0]["Put"]["Item"], calls[3]["id"]),
    ]
    for item, call_id in items:
        header, members = _header_of(item)
        assert (header.root, header.parent, header.sampled) == (root, call_id, "1")
        assert header.extra == (("Lineage", LINEAGE),)
        if backend == "otel":
            assert members["traceparent"]["S"] == f"00-{root[2:10]}{root[11:]}-{call_id}-01"
        else:
            assert set(members) == {"AWSTraceHeader"}
    assert resource_put["Item"]["n"] == {"N": "2"}
    # A transaction with an Update is left alone, as is the caller's own _tracing.
    assert "_tracing" not in json.dumps(table.sent[4])
    assert table.sent[5]["Item"]["_tracing"] == {"S": "the caller's"}
    # What was stored holds the context.
    assert _header_of(table.stored("two"))[0].parent == calls[1]["id"]


@pytest.mark.usefixtures("in_lambda")
def test_another_tables_option_adds_nothing(
    table: Table, daemon: testing.DaemonListener, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure(backend=backend, payload_context=["dynamodb:other", "kinesis"])

    def write(event: Any, context: Any) -> None:
        table.client.put_item(TableName=table.name, Item={"sku": {"S": "x"}})

    _invoke(monkeypatch, write)
    assert "_tracing" not in json.dumps(table.sent)
    daemon.wait_for(2)


@pytest.mark.usefixtures("in_lambda")
def test_update_item_and_writes_at_init_add_nothing_even_opted_in(
    table: Table, daemon: testing.DaemonListener, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """UpdateItem writes no whole item (it is not carried); at import the Init
    trace id is a placeholder, never passed on. The put in the invocation is."""
    tracing.configure(backend=backend, payload_context=[f"dynamodb:{table.name}"])
    table.client.put_item(TableName=table.name, Item={"sku": {"S": "at-import"}})

    def write(event: Any, context: Any) -> None:
        table.client.update_item(
            TableName=table.name,
            Key={"sku": {"S": "at-import"}},
            UpdateExpression="SET n = :n",
            ExpressionAttributeValues={":n": {"N": "1"}},
        )
        table.client.put_item(TableName=table.name, Item={"sku": {"S": "in-invocation"}})

    _invoke(monkeypatch, write)
    at_import, update, in_invocation = table.sent
    assert "_tracing" not in json.dumps(at_import)
    assert "_tracing" not in json.dumps(update)
    assert "_tracing" in json.dumps(in_invocation)
    daemon.wait_for(2)


@pytest.mark.usefixtures("in_lambda")
def test_items_over_400_kb_are_left_alone(
    table: Table, daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure(payload_context=["dynamodb"])
    # 400,000 bytes by AWS's rules ("sku", "one", "big", the value): no room for the context.
    big = "b" * (400_000 - 3 - 3 - 3 - 50)

    def write(event: Any, context: Any) -> None:
        table.client.put_item(TableName=table.name, Item={"sku": {"S": "one"}, "big": {"S": big}})
        table.client.put_item(TableName=table.name, Item={"sku": {"S": "two"}, "big": {"S": "s"}})

    _invoke(monkeypatch, write)
    assert "_tracing" not in table.sent[0]["Item"]
    assert "_tracing" in table.sent[1]["Item"]
    assert table.stored("one")["big"] == {"S": big}  # the put itself went through
    daemon.wait_for(2)


@pytest.mark.usefixtures("in_lambda")
def test_explicit_inject_without_the_option(
    daemon: testing.DaemonListener, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure(backend=backend)
    item = {"sku": {"S": "x"}}
    params: dict[str, Any] = {"TableName": "orders", "Item": item}
    ids: list[str] = []

    def write(event: Any, context: Any) -> None:
        with tracing.span("write") as span:
            ids.append(span.id)
            tracing.dynamodb.inject(params)

    root = _invoke(monkeypatch, write)
    assert item == {"sku": {"S": "x"}}  # the caller's dict is not mutated
    header, _ = _header_of(params["Item"])
    assert (header.root, header.parent) == (root, ids[0])
    daemon.wait_for(2)


def _stream_record(
    sequence: str, new: dict[str, Any] | None, old: dict[str, Any] | None, event: str, arn: str
) -> dict[str, Any]:
    change: dict[str, Any] = {
        "Keys": {"sku": (new or old or {}).get("sku", {"S": "?"})},
        "SequenceNumber": sequence,
        "SizeBytes": 26,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if new is not None:
        change["NewImage"] = new
    if old is not None:
        change["OldImage"] = old
    return {
        "eventID": new_id(),
        "eventName": event,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": change,
        "eventSourceARN": arn,
    }


@pytest.mark.usefixtures("in_lambda")
def test_stream_consumer_lands_in_the_writers_trace(
    table: Table, daemon: testing.DaemonListener, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure(service="orders-stream", backend=backend, payload_context=["dynamodb"])

    def write(event: Any, context: Any) -> None:
        table.client.put_item(TableName=table.name, Item={"sku": {"S": "a"}})
        table.client.put_item(TableName=table.name, Item={"sku": {"S": "b"}})

    producer_root = _invoke(monkeypatch, write)
    put_ids = [c["id"] for c in daemon.wait_for(2)[-1]["subsegments"]]
    a, b = table.stored("a"), table.stored("b")
    event = {
        "Records": [
            _stream_record("100", a, None, "INSERT", table.arn),
            _stream_record("200", None, b, "REMOVE", table.arn),
            # An update that did not rewrite _tracing: stale, so recorded locally.
            _stream_record("300", {**a, "n": {"N": "1"}}, a, "MODIFY", table.arn),
            _stream_record("400", {"sku": {"S": "c"}}, None, "INSERT", table.arn),
        ]
    }
    seen: list[str] = []

    def process(record: dict[str, Any]) -> None:
        seen.append(record["dynamodb"]["SequenceNumber"])
        with tracing.span("handle"):
            if record["dynamodb"]["SequenceNumber"] == "300":
                raise ValueError("bad change")

    daemon.clear()
    results: list[Any] = []
    consumer_root = _invoke(
        monkeypatch, lambda e, c: results.append(tracing.dynamodb.process_batch(e, process)), event
    )
    assert results == [{"batchItemFailures": [{"itemIdentifier": "300"}]}]
    assert seen == ["100", "200", "300"]  # stopped at the first failure
    docs = daemon.settle()
    for doc in docs:
        assert testing.check_document(doc) == [], doc
    segments = {d["parent_id"]: d for d in docs if d["trace_id"] == producer_root}
    assert set(segments) == set(put_ids)
    for put_id, sequence in zip(put_ids, ("100", "200"), strict=True):
        assert segments[put_id]["name"] == "orders-stream"
        assert segments[put_id]["annotations"] == {
            "SequenceNumber": sequence,
            "TableStream": table.name,
            "LinkedTraceId": consumer_root,  # the invocation that processed it
        }
        assert [s["name"] for s in segments[put_id]["subsegments"]] == ["handle"]
    [invocation] = [d for d in docs if d["trace_id"] == consumer_root]
    children = invocation["subsegments"]
    assert [c["name"] for c in children] == ["DynamoDB record"] * 3
    assert [c["annotations"].get("LinkedTraceId") for c in children] == [
        producer_root,
        producer_root,
        None,
    ]
    assert children[2]["fault"] is True
    assert [s["name"] for s in children[2]["subsegments"]] == ["handle"]


def test_worker_and_non_stream_events(daemon: testing.DaemonListener, backend: str) -> None:
    tracing.configure(service="worker", backend=backend)
    root, parent = new_trace_id(), new_id()
    context = {"M": {"AWSTraceHeader": {"S": f"Root={root};Parent={parent};Sampled=1"}}}
    arn = "arn:aws:dynamodb:us-east-1:1:table/orders/stream/x"
    record = _stream_record("1", {"sku": {"S": "a"}, "_tracing": context}, None, "INSERT", arn)
    with tracing.dynamodb.consume(record):
        pass
    [doc] = daemon.wait_for(1)
    assert (doc["trace_id"], doc["parent_id"], doc["name"]) == (root, parent, "worker")
    assert doc["annotations"] == {"SequenceNumber": "1", "TableStream": "orders"}
    with pytest.raises(TypeError, match="aws:sqs"):
        tracing.dynamodb.process_batch(testing.lambda_sqs_event([{"MessageId": "m"}]), print)
    with pytest.raises(TypeError, match="Records"):
        tracing.dynamodb.process_batch({"detail": {}}, print)
