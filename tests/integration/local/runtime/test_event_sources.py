"""Local Kinesis, DynamoDB Streams, SNS and EventBridge event sources, through awslambdaric.

A real function process (``fixtures/event_app.py``) gets the events; moto's
server (`LocalAWS`) holds the stream, the table, the topic and the bus.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tracing import testing
from tracing._header import new_id, new_trace_id, parse
from tracing.local.runtime import LocalLambda
from tracing.local.runtime.aws import LocalAWS
from tracing.local.runtime.event_source import MAX_HOPS, _function_hash
from tracing.local.runtime.event_sources import (
    DynamoDBStreamEventSource,
    EventBridgeRule,
    KinesisEventSource,
    SNSSubscription,
)

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).parent / "fixtures"

KINESIS_KEYS = {
    "kinesis",
    "eventSource",
    "eventVersion",
    "eventID",
    "eventName",
    "invokeIdentityArn",
    "awsRegion",
    "eventSourceARN",
}


@pytest.fixture
def function(aws: LocalAWS, daemon: testing.DaemonListener) -> Iterator[Callable[..., LocalLambda]]:
    started: list[LocalLambda] = []

    def _start(handler: str = "event_app.handler", **env: str) -> LocalLambda:
        fn = LocalLambda(
            handler,
            code_dir=FIXTURES,
            function_name=f"events-{new_id()}",
            env={**aws.env, "TRACING_BACKEND": "xray", **env},
            xray_daemon_address=daemon.address,
            timeout_s=10.0,
        )
        started.append(fn)
        fn.start()
        return fn

    yield _start
    for fn in started:
        fn.stop()


def _with_header(client: Any, header: str) -> Any:
    """Send ``header`` as every request's X-Amzn-Trace-Id, as botocore does in Lambda."""

    def add(request: Any, **_: Any) -> None:
        request.headers["X-Amzn-Trace-Id"] = header

    client.meta.events.register("before-send.*.*", add)
    return client


def _fresh(sampled: str = "1", **extra: str) -> str:
    text = f"Root={new_trace_id()};Parent={new_id()};Sampled={sampled}"
    return text + "".join(f";{k}={v}" for k, v in extra.items())


def _stream(aws: LocalAWS, bodies: list[str]) -> tuple[Any, str]:
    kinesis = aws.client("kinesis")
    name = f"stream-{new_id()}"
    kinesis.create_stream(StreamName=name, ShardCount=1)
    for index, body in enumerate(bodies):
        kinesis.put_record(StreamName=name, Data=body.encode(), PartitionKey=f"pk{index}")
    return kinesis, name


def _sequences(event: dict[str, Any]) -> list[str]:
    return [r["kinesis"]["sequenceNumber"] for r in event["Records"]]


def _assert_new_trace_each(headers: list[str]) -> None:
    parsed = [parse(h) for h in headers]
    assert all(p is not None and p.sampled == "1" and p.parent for p in parsed), headers
    assert len({p.root for p in parsed if p is not None}) == len(headers)
    assert all("Lineage" not in h for h in headers)  # loop detection does not cover streams


def test_kinesis_partial_failure_restarts_from_the_lowest_failed_record(
    aws: LocalAWS, function: Callable[..., LocalLambda]
) -> None:
    fn = function()
    kinesis, name = _stream(aws, ["ok", "ok", "fail-once", "ok"])
    arn = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
    source = KinesisEventSource(fn, kinesis, name, batch_size=10)

    delivery = source.deliver()

    assert [r.ok for r, _ in delivery.invocations] == [True, True]
    first, second = delivery.events
    all_four = _sequences(first)
    assert len(all_four) == 4
    assert _sequences(second) == all_four[2:]  # from the failed record on
    assert delivery.invocations[0][0].payload["batchItemFailures"] == [
        {"itemIdentifier": all_four[2]}
    ]
    for record, body in zip(first["Records"], ["ok", "ok", "fail-once", "ok"], strict=True):
        assert set(record) == KINESIS_KEYS
        assert base64.b64decode(record["kinesis"]["data"]).decode() == body
        assert record["eventSource"] == "aws:kinesis"
        assert record["eventName"] == "aws:kinesis:record"
        assert record["eventSourceARN"] == arn
        assert record["eventID"] == f"shardId-000000000000:{record['kinesis']['sequenceNumber']}"
        assert isinstance(record["kinesis"]["approximateArrivalTimestamp"], float)
        assert record["kinesis"]["kinesisSchemaVersion"] == "1.0"
    headers = [header for _, header in delivery.invocations]
    _assert_new_trace_each(headers)
    assert [r.payload["trace"] for r, _ in delivery.invocations] == headers
    assert "Lineage=-" in source.describe(delivery)
    assert source.deliver().invocations == []  # the checkpoint is past every record


def test_kinesis_error_retries_the_whole_batch_then_gives_up_after_the_retry_limit(
    aws: LocalAWS, function: Callable[..., LocalLambda]
) -> None:
    fn = function()
    kinesis, name = _stream(aws, ["ok", "boom-once", "ok"])
    delivery = KinesisEventSource(fn, kinesis, name, batch_size=10).deliver()
    assert [r.ok for r, _ in delivery.invocations] == [False, True]
    assert delivery.invocations[0][0].error["errorType"] == "RuntimeError"
    assert _sequences(delivery.events[0]) == _sequences(delivery.events[1])  # the whole batch

    kinesis, name = _stream(aws, ["fail-always", "ok", "ok"])
    source = KinesisEventSource(fn, kinesis, name, batch_size=2, maximum_retry_attempts=1)
    delivery = source.deliver()
    batches = [_sequences(event) for event in delivery.events]
    # The first batch fails at its first record, is retried once, then discarded;
    # the shard moves on to the third record.
    assert len(batches) == 3
    assert batches[0] == batches[1]
    assert [r["kinesis"]["sequenceNumber"] for r in delivery.discarded] == batches[0]
    assert len(batches[2]) == 1
    assert batches[2][0] not in batches[0]
    assert delivery.invocations[2][0].payload["batchItemFailures"] == []
    assert "discarded record shardId-000000000000:" in source.describe(delivery)


def test_dynamodb_stream_records_as_lambda_gets_them(
    aws: LocalAWS, function: Callable[..., LocalLambda]
) -> None:
    fn = function()
    dynamodb = aws.client("dynamodb")
    table = f"table-{new_id()}"
    dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    key = {"id": {"S": "order-1"}}
    dynamodb.put_item(TableName=table, Item={**key, "action": {"S": "ok"}, "blob": {"B": b"\x00"}})
    dynamodb.put_item(TableName=table, Item={**key, "action": {"S": "fail-once"}})
    dynamodb.delete_item(TableName=table, Key=key)
    streams = aws.client("dynamodbstreams")
    stream_arn = streams.list_streams(TableName=table)["Streams"][0]["StreamArn"]

    delivery = DynamoDBStreamEventSource(fn, streams, table, batch_size=10).deliver()

    assert [r.ok for r, _ in delivery.invocations] == [True, True]
    first, second = (event["Records"] for event in delivery.events)
    assert [r["eventName"] for r in first] == ["INSERT", "MODIFY", "REMOVE"]
    assert [r["eventName"] for r in second] == ["MODIFY", "REMOVE"]  # from the checkpoint
    insert, modify, remove = first
    for record in first:
        assert record["eventSource"] == "aws:dynamodb"
        assert record["eventSourceARN"] == stream_arn
        assert record["awsRegion"] == aws.region
        assert {"eventID", "eventVersion"} <= set(record)
        stream = record["dynamodb"]
        assert stream["Keys"] == key
        assert stream["StreamViewType"] == "NEW_AND_OLD_IMAGES"
        assert isinstance(stream["ApproximateCreationDateTime"], float)
        assert isinstance(stream["SizeBytes"], int)
    assert insert["dynamodb"]["NewImage"]["blob"] == {"B": "AA=="}  # bytes as base64, in JSON
    assert "OldImage" not in insert["dynamodb"]
    assert modify["dynamodb"]["OldImage"]["action"] == {"S": "ok"}
    assert "NewImage" not in remove["dynamodb"]
    assert delivery.invocations[0][0].payload["batchItemFailures"] == [
        {"itemIdentifier": modify["dynamodb"]["SequenceNumber"]}
    ]
    _assert_new_trace_each([header for _, header in delivery.invocations])


def test_sns_subscriber_continues_the_publishers_trace_and_counts_lineage(
    aws: LocalAWS, function: Callable[..., LocalLambda], daemon: testing.DaemonListener
) -> None:
    fn = function()
    sns = aws.client("sns")
    topic = sns.create_topic(Name=f"topic-{new_id()}")["TopicArn"]
    sns.publish(TopicArn=topic, Message="before the subscription")
    subscription = SNSSubscription(fn, aws, topic)
    publisher = _fresh(Lineage="0badcafe:3")
    other = aws.client("sns").create_topic(Name=f"other-{new_id()}")["TopicArn"]
    _with_header(sns, publisher)
    sns.publish(
        TopicArn=topic,
        Message="ok",
        Subject="hello",
        MessageAttributes={"kind": {"DataType": "String", "StringValue": "order"}},
    )
    sns.publish(TopicArn=other, Message="ok")
    sns.publish_batch(
        TopicArn=topic,
        PublishBatchRequestEntries=[
            {"Id": "1", "Message": "ok"},
            {"Id": "2", "Message": "boom-once"},
        ],
    )

    delivery = subscription.deliver()

    messages = [event["Records"][0]["Sns"]["Message"] for event in delivery.events]
    assert messages == ["ok", "ok", "boom-once", "boom-once"]  # one per invocation, retried
    assert [r.ok for r, _ in delivery.invocations] == [True, True, False, True]
    record = delivery.events[0]["Records"][0]
    assert record["EventSource"] == "aws:sns"
    assert record["EventSubscriptionArn"] == subscription.subscription_arn
    notification = record["Sns"]
    assert notification["Type"] == "Notification"
    assert notification["TopicArn"] == topic
    assert notification["Subject"] == "hello"
    assert notification["MessageAttributes"] == {"kind": {"Type": "String", "Value": "order"}}
    assert notification["Timestamp"].endswith("Z")
    expected_lineage = f"0badcafe:3|{_function_hash(fn.function_arn)}:1"
    upstream = parse(publisher)
    assert upstream is not None
    for result, header in delivery.invocations:
        given = parse(header)
        assert given is not None
        assert (given.root, given.parent, given.sampled) == (
            upstream.root,
            upstream.parent,
            "1",
        )
        assert dict(given.extra)["Lineage"] == expected_lineage
        if result.ok:
            assert result.payload["trace"] == header
    # The traced function continued the publisher's trace.
    invocations = [d for d in daemon.sync() if d.get("name") == "## handler"]
    assert len(invocations) == 4
    assert all(d["trace_id"] == upstream.root for d in invocations)

    # The chain's 17th invocation of the function is stopped.
    _with_header(sns, _fresh(Lineage=f"{_function_hash(fn.function_arn)}:{MAX_HOPS}"))
    sns.publish(TopicArn=topic, Message="ok")
    stopped = subscription.deliver()
    assert stopped.invocations == []
    assert [e["Records"][0]["Sns"]["Message"] for e in stopped.stopped] == ["ok"]
    assert "recursive loop detected" in subscription.describe(stopped)


def test_an_sns_loop_stops_at_the_16th_invocation(
    aws: LocalAWS, function: Callable[..., LocalLambda]
) -> None:
    sns = aws.client("sns")
    topic = sns.create_topic(Name=f"loop-{new_id()}")["TopicArn"]
    fn = function("republish_app.handler", TOPIC_ARN=topic)
    subscription = SNSSubscription(fn, aws, topic)
    sns.publish(TopicArn=topic, Message="start")  # from outside: no chain yet

    delivery = subscription.deliver(max_invocations=3 * MAX_HOPS)

    assert all(result.ok for result, _ in delivery.invocations)
    assert len(delivery.invocations) == MAX_HOPS
    assert len(delivery.stopped) == 1
    counts = [header.rpartition(":")[2] for _, header in delivery.invocations]
    assert counts == [str(n) for n in range(1, MAX_HOPS + 1)]
    roots = {parse(header).root for _, header in delivery.invocations}  # type: ignore[union-attr]
    assert len(roots) == 1  # SNS passes the trace on: one chain, one trace


def test_eventbridge_rule_gives_each_event_its_own_trace_header_unchanged(
    aws: LocalAWS, function: Callable[..., LocalLambda]
) -> None:
    fn = function()
    source = f"orders.{new_id()}"
    rule = EventBridgeRule(fn, aws, pattern={"source": [source], "detail-type": ["Placed"]})
    events = aws.client("events")
    request_header = _fresh()
    entry_header = _fresh(sampled="0", Lineage="0badcafe:5")
    _with_header(events, request_header)
    reply = events.put_events(
        Entries=[
            {
                "Source": source,
                "DetailType": "Placed",
                "Detail": '{"n": 1}',
                "TraceHeader": entry_header,
            },
            {"Source": source, "DetailType": "Placed", "Detail": '{"n": 2}'},
            {"Source": source, "DetailType": "Cancelled", "Detail": '{"n": 3}'},
            {"Source": "elsewhere", "DetailType": "Placed", "Detail": '{"n": 4}'},
            {"Source": source, "DetailType": "Placed", "Detail": '{"action": "boom-once"}'},
        ]
    )
    assert reply["FailedEntryCount"] == 0
    ids = [entry["EventId"] for entry in reply["Entries"]]

    delivery = rule.deliver()

    assert [event["id"] for event in delivery.events] == [ids[0], ids[1], ids[4], ids[4]]
    assert [r.ok for r, _ in delivery.invocations] == [True, True, False, True]
    headers = [header for _, header in delivery.invocations]
    # The entry's TraceHeader wins; else the request's; Lineage is passed on, not counted.
    assert headers == [entry_header, request_header, request_header, request_header]
    assert delivery.invocations[0][0].payload["trace"] == entry_header
    event = delivery.events[0]
    assert set(event) == {
        "version",
        "id",
        "detail-type",
        "source",
        "account",
        "time",
        "region",
        "resources",
        "detail",
    }
    assert event["version"] == "0"
    assert event["detail"] == {"n": 1}
    assert event["region"] == aws.region
    assert event["time"].endswith("Z")
    assert rule.deliver().invocations == []
