"""Kinesis: opt-in payload context on the wire, and consumers, on both backends.

moto's HTTP server is the stream; requests are read as they leave botocore
(``before-send``), documents from a real UDP listener.
"""

from __future__ import annotations

import base64
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
PREFIX = b'{"_tracing":{"AWSTraceHeader":"'


@pytest.fixture(params=["xray", "otel"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Stream:
    """A client made before configure(), a fresh stream, and the requests sent."""

    def __init__(self) -> None:
        self.client = boto3.client("kinesis")
        self.name = f"s-{new_id()}"
        self.client.create_stream(StreamName=self.name, ShardCount=1)
        self.arn = f"arn:aws:kinesis:us-east-1:123456789012:stream/{self.name}"
        self.sent: list[dict[str, Any]] = []
        self.client.meta.events.register_last("before-send.kinesis.*", self._capture)

    def _capture(self, request: Any, **_: Any) -> None:
        self.sent.append(json.loads(request.body))

    def data(self) -> list[bytes]:
        """Every record's data as sent, in order."""
        out = []
        for body in self.sent:
            for record in body.get("Records", [body]):
                if "Data" in record:
                    out.append(base64.b64decode(record["Data"]))
        return out

    def records(self) -> list[dict[str, Any]]:
        """Every record in the stream, as GetRecords returns them."""
        shard = self.client.describe_stream(StreamName=self.name)["StreamDescription"]["Shards"][0]
        iterator = self.client.get_shard_iterator(
            StreamName=self.name, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        return list(self.client.get_records(ShardIterator=iterator)["Records"])


@pytest.fixture
def stream(aws: LocalAWS, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stream]:
    for key, value in aws.env.items():
        monkeypatch.setenv(key, value)
    made = Stream()
    yield made
    made.client.delete_stream(StreamName=made.name)


def lambda_kinesis_event(records: list[dict[str, Any]], arn: str) -> dict[str, Any]:
    """The Lambda Kinesis event for GetRecords records, as the event source mapping builds it."""
    return {
        "Records": [
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": record["PartitionKey"],
                    "sequenceNumber": record["SequenceNumber"],
                    "data": base64.b64encode(record["Data"]).decode(),
                    "approximateArrivalTimestamp": 1545084650.987,
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"shardId-000000000000:{record['SequenceNumber']}",
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": "arn:aws:iam::123456789012:role/consumer",
                "awsRegion": "us-east-1",
                "eventSourceARN": arn,
            }
            for record in records
        ]
    }


def _invoke(monkeypatch: pytest.MonkeyPatch, fn: Any, event: Any = None, sampled: str = "1") -> str:
    root = new_trace_id()
    monkeypatch.setenv(
        "_X_AMZN_TRACE_ID", f"Root={root};Parent={new_id()};Sampled={sampled};Lineage={LINEAGE}"
    )
    tracing.handler(fn)(event or {}, testing.FakeContext())
    return root


def _context(data: bytes) -> dict[str, str]:
    value = json.loads(data)["_tracing"]
    assert isinstance(value, dict)
    return value


@pytest.mark.usefixtures("in_lambda")
def test_nothing_is_injected_by_default(
    stream: Stream, daemon: testing.DaemonListener, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure(backend=backend)
    data = b'{"order": 1}'
    _invoke(
        monkeypatch,
        lambda e, c: [
            stream.client.put_record(StreamName=stream.name, Data=data, PartitionKey="k"),
            stream.client.put_records(
                StreamName=stream.name, Records=[{"Data": data, "PartitionKey": "k"}]
            ),
        ],
    )
    assert stream.data() == [data, data]
    calls = daemon.wait_for(2)[-1]["subsegments"]
    assert [c["aws"]["operation"] for c in calls] == ["PutRecord", "PutRecords"]


@pytest.mark.usefixtures("in_lambda")
def test_the_option_injects_the_call_as_parent_with_lineage(
    stream: Stream,
    daemon: testing.DaemonListener,
    backend: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level("INFO", logger="tracing"):
        tracing.configure(backend=backend, payload_context=[f"kinesis:{stream.name}"])
    assert any("_tracing" in r.message and stream.name in r.message for r in caplog.records)
    single = b' \n{"order": 1, "note": "caf\xc3\xa9 \\u00e9"}\n'
    batch = [b"{}", b'{"n": 1.50e3}', b"plain text", b'{"_tracing": "mine"}', b"[1, 2]"]

    def produce(event: Any, context: Any) -> None:
        stream.client.put_record(StreamName=stream.name, Data=single, PartitionKey="k")
        stream.client.put_records(
            StreamName=stream.name,
            Records=[{"Data": d, "PartitionKey": "k"} for d in batch],
        )

    root = _invoke(monkeypatch, produce)
    calls = daemon.wait_for(2)[-1]["subsegments"]
    put, puts = calls[0]["id"], calls[1]["id"]
    sent = stream.data()
    assert len(sent) == 6
    # Inserted textually after the first brace: the rest is the caller's bytes.
    first = sent[0]
    assert first.startswith(b" \n" + PREFIX)
    added = first[3 : first.index(b'},"order"') + 2]
    assert first.replace(added, b"", 1) == single
    assert json.loads(first)["note"] == "café é"
    header = parse(_context(first)["AWSTraceHeader"])
    assert header is not None
    assert (header.root, header.parent, header.sampled) == (root, put, "1")
    assert header.extra == (("Lineage", LINEAGE),)
    if backend == "otel":
        assert _context(first)["traceparent"] == f"00-{root[2:10]}{root[11:]}-{put}-01"
    else:
        assert "traceparent" not in _context(first)
    # {} gets no trailing comma; numbers keep their text.
    assert json.loads(sent[1]) == {"_tracing": _context(sent[1])}
    assert sent[2].endswith(b',"n": 1.50e3}')
    for data in sent[1:3]:
        batch_header = parse(_context(data)["AWSTraceHeader"])
        assert batch_header is not None
        assert (batch_header.root, batch_header.parent) == (root, puts)
    # Not a JSON object, or the caller's own _tracing: untouched.
    assert sent[3:] == batch[2:]
    # The stream holds what was sent.
    assert [r["Data"] for r in stream.records()] == sent


@pytest.mark.usefixtures("in_lambda")
def test_another_streams_option_injects_nothing(
    stream: Stream, daemon: testing.DaemonListener, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure(backend=backend, payload_context="kinesis:other-stream,dynamodb")
    _invoke(
        monkeypatch,
        lambda e, c: stream.client.put_record(
            StreamName=stream.name, Data=b'{"a": 1}', PartitionKey="k"
        ),
    )
    assert stream.data() == [b'{"a": 1}']
    daemon.wait_for(2)


@pytest.mark.usefixtures("in_lambda")
def test_this_streams_option_injects_in_the_invocation_never_at_init(
    stream: Stream, daemon: testing.DaemonListener, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure(backend=backend, payload_context=[f"kinesis:{stream.name}"])
    stream.client.put_record(StreamName=stream.name, Data=b'{"at": "import"}', PartitionKey="k")
    _invoke(
        monkeypatch,
        lambda e, c: stream.client.put_record(
            StreamName=stream.name, Data=b'{"a": 1}', PartitionKey="k"
        ),
    )
    at_import, in_invocation = stream.data()
    assert at_import == b'{"at": "import"}'  # the Init trace id is a placeholder
    assert "AWSTraceHeader" in _context(in_invocation)
    daemon.wait_for(2)


@pytest.mark.usefixtures("in_lambda")
def test_explicit_inject_works_without_the_option(
    daemon: testing.DaemonListener, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure(backend=backend)
    params: dict[str, Any] = {"StreamName": "s", "Data": '{"a": 1}', "PartitionKey": "k"}
    spans: list[str] = []

    def produce(event: Any, context: Any) -> None:
        with tracing.span("send") as span:
            spans.append(span.id)
            tracing.kinesis.inject(params)

    root = _invoke(monkeypatch, produce)
    assert isinstance(params["Data"], str)  # str stays str
    header = parse(_context(params["Data"].encode())["AWSTraceHeader"])
    assert header is not None
    assert (header.root, header.parent, header.extra) == (root, spans[0], (("Lineage", LINEAGE),))
    daemon.wait_for(2)


@pytest.mark.usefixtures("in_lambda")
def test_too_big_records_and_requests_are_left_alone(
    stream: Stream, daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure(payload_context=["kinesis"])
    mib = 1024 * 1024
    near_limit = b'{"x": "' + b"a" * (mib - 20) + b'"}'  # fits alone, not with the context
    assert len(near_limit) + 1 <= mib
    big = b'{"x": "' + b"a" * (mib - 510) + b'"}'  # 1 MiB - 500 bytes
    # Six records, 200 bytes short of the 5 MiB request limit (data + partition keys):
    # room for one context (127 bytes here), not two.
    small = b'{"s": "' + b"b" * (5 * mib - 200 - 5 * (len(big) + 1) - 1 - 9) + b'"}'
    records = [{"Data": big, "PartitionKey": "k"}] * 5 + [{"Data": small, "PartitionKey": "k"}]
    assert sum(len(r["Data"]) + 1 for r in records) == 5 * mib - 200
    _invoke(
        monkeypatch,
        lambda e, c: [
            stream.client.put_record(StreamName=stream.name, Data=near_limit, PartitionKey="k"),
            stream.client.put_records(StreamName=stream.name, Records=records),
        ],
    )
    sent = stream.data()
    assert sent[0] == near_limit
    assert [d.startswith(PREFIX) for d in sent[1:]] == [True] + [False] * 5
    assert sum(len(d) + 1 for d in sent[1:]) <= 5 * mib
    assert sent[2:] == [r["Data"] for r in records[1:]]
    daemon.wait_for(2)


@pytest.mark.usefixtures("in_lambda")
def test_round_trip_the_consumer_lands_in_the_producers_trace(
    stream: Stream, daemon: testing.DaemonListener, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure(service="orders-worker", backend=backend, payload_context=["kinesis"])

    def produce(event: Any, context: Any) -> None:
        for body in (b'{"sku": "good"}', b'{"sku": "bad"}', b'{"sku": "after"}'):
            stream.client.put_record(StreamName=stream.name, Data=body, PartitionKey="k")

    producer_root = _invoke(monkeypatch, produce)
    put_ids = [c["id"] for c in daemon.wait_for(2)[-1]["subsegments"]]
    monkeypatch.delenv("_X_AMZN_TRACE_ID")
    stream.client.put_record(StreamName=stream.name, Data=b'{"sku": "plain"}', PartitionKey="k")
    records = stream.records()
    plain = records.pop()
    event = lambda_kinesis_event([plain, *records[:2]], stream.arn)
    processed: list[str] = []

    def process(record: dict[str, Any]) -> None:
        sku = json.loads(base64.b64decode(record["kinesis"]["data"]))["sku"]
        processed.append(sku)
        with tracing.span("handle", sku=sku):
            stream.client.describe_stream_summary(StreamName=stream.name)
            if sku == "bad":
                raise ValueError("poison record")

    daemon.clear()
    consumer = lambda e, c: tracing.kinesis.process_batch(e, process)  # noqa: E731
    consumer_root = _invoke(monkeypatch, consumer, event)
    docs = daemon.settle()
    for doc in docs:
        assert testing.check_document(doc) == [], doc
    assert processed == ["plain", "good", "bad"]
    segments = {d["parent_id"]: d for d in docs if d["trace_id"] == producer_root}
    assert set(segments) == set(put_ids[:2])
    good, bad = segments[put_ids[0]], segments[put_ids[1]]
    for segment, record in ((good, records[0]), (bad, records[1])):
        assert segment["name"] == "orders-worker"
        assert segment["annotations"] == {
            "SequenceNumber": record["SequenceNumber"],
            "Stream": stream.name,
            "LinkedTraceId": consumer_root,  # the invocation that processed it
        }
        [handle] = segment["subsegments"]
        assert handle["subsegments"][0]["aws"]["operation"] == "DescribeStreamSummary"
    assert bad["fault"] is True
    assert bad["cause"]["exceptions"][0]["message"] == "poison record"
    assert "fault" not in good
    [invocation] = [d for d in docs if d["trace_id"] == consumer_root]
    children = invocation["subsegments"]
    assert [c["name"] for c in children] == ["Kinesis record"] * 3
    assert [c["annotations"]["SequenceNumber"] for c in children] == [
        plain["SequenceNumber"],
        records[0]["SequenceNumber"],
        records[1]["SequenceNumber"],
    ]
    assert [c["annotations"].get("LinkedTraceId") for c in children] == [
        None,
        producer_root,
        producer_root,
    ]
    # Without a context, the processing is recorded in the invocation.
    assert [c["name"] for c in children[0]["subsegments"]] == ["handle"]


@pytest.mark.usefixtures("in_lambda")
def test_process_batch_stops_at_the_first_failure(
    daemon: testing.DaemonListener, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure(backend=backend)
    records = [
        {"kinesis": {"sequenceNumber": str(n), "data": base64.b64encode(b"x").decode()}}
        for n in (1, 2, 3)
    ]
    seen: list[str] = []

    def fn(record: dict[str, Any]) -> None:
        seen.append(record["kinesis"]["sequenceNumber"])
        if record["kinesis"]["sequenceNumber"] == "2":
            raise KeyError("two")

    results: list[Any] = []
    _invoke(
        monkeypatch,
        lambda e, c: results.append(tracing.kinesis.process_batch({"Records": records}, fn)),
    )
    assert results == [{"batchItemFailures": [{"itemIdentifier": "2"}]}]
    assert seen == ["1", "2"]
    [invocation] = daemon.wait_for(2)[-1:]
    assert [c["name"] for c in invocation["subsegments"]] == ["Kinesis record"] * 2
    assert invocation["subsegments"][1]["fault"] is True
    with pytest.raises(TypeError, match="aws:sqs"):
        tracing.kinesis.process_batch(testing.lambda_sqs_event([{"MessageId": "m"}]), fn)
    assert seen == ["1", "2"]


def test_worker_records_with_and_without_context(
    stream: Stream, daemon: testing.DaemonListener, backend: str
) -> None:
    tracing.configure(service="worker", backend=backend)
    root, parent = new_trace_id(), new_id()
    traced = json.dumps(
        {"_tracing": {"AWSTraceHeader": f"Root={root};Parent={parent};Sampled=1"}, "a": 1}
    )
    stream.client.put_record(StreamName=stream.name, Data=traced.encode(), PartitionKey="k")
    stream.client.put_record(StreamName=stream.name, Data=b'{"a": 2}', PartitionKey="k")
    began = __import__("time").time()
    for record in stream.records():
        with tracing.kinesis.consume(record):
            stream.client.describe_stream_summary(StreamName=stream.name)
    received = daemon.wait_for(2)
    docs = {d["trace_id"]: d for d in received}
    assert docs[root]["parent_id"] == parent
    assert docs[root]["name"] == "worker"
    [other] = [d for t, d in docs.items() if t != root]
    assert "parent_id" not in other
    assert other["annotations"]["SequenceNumber"]
    for doc in docs.values():
        assert testing.check_document(doc) == []
        assert doc["start_time"] >= began
        assert doc["subsegments"][0]["aws"]["operation"] == "DescribeStreamSummary"


def test_a_worker_keeps_the_producers_unsampled_decision(
    daemon: testing.DaemonListener, backend: str
) -> None:
    tracing.configure(service="worker", backend=backend)
    root, parent = new_trace_id(), new_id()
    data = json.dumps(
        {"_tracing": {"AWSTraceHeader": f"Root={root};Parent={parent};Sampled=0;Lineage=a:1"}}
    )
    with tracing.kinesis.consume({"SequenceNumber": "1", "Data": data.encode()}) as span:
        assert span.recording is False
        assert tracing.current_span().trace_id == root
    assert daemon.sync() == []


@pytest.mark.usefixtures("in_lambda")
def test_an_unsampled_invocation_records_only_sampled_producers_and_exceptions_propagate(
    daemon: testing.DaemonListener, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure(backend=backend)
    root, parent = new_trace_id(), new_id()
    context = {"_tracing": {"AWSTraceHeader": f"Root={root};Parent={parent};Sampled=1"}}
    plain, traced = (
        {"kinesis": {"sequenceNumber": n, "data": base64.b64encode(d).decode()}}
        for n, d in (("1", b'{"a": 1}'), ("2", json.dumps(context).encode()))
    )

    def fn(event: Any, context: Any) -> None:
        with pytest.raises(LookupError, match="one"), tracing.kinesis.consume(plain):
            raise LookupError("one")
        with tracing.kinesis.consume(traced):
            raise LookupError("two")

    with pytest.raises(LookupError, match="two"):
        _invoke(monkeypatch, fn, sampled="0")
    [segment] = daemon.sync()  # only the sampled producer's: the invocation is not
    assert (segment["trace_id"], segment["parent_id"]) == (root, parent)
    assert segment["fault"] is True
    assert segment["cause"]["exceptions"][0]["message"] == "two"
