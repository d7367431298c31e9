"""The resource of the hops beyond SQS in an AWS call's ``aws`` block, on both backends.

Real botocore calls against moto (the session's ``aws`` server); the documents
are the ones the ``daemon`` listener receives.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

import tracing
from tracing import testing
from tracing._header import new_id, new_trace_id
from tracing.local.runtime.aws import LocalAWS

ROLE = "arn:aws:iam::123456789012:role/sfn"
DEFINITION = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}})


@pytest.fixture(params=["xray", "otel"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def env(aws: LocalAWS, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in aws.env.items():
        monkeypatch.setenv(key, value)


def _invoke(monkeypatch: pytest.MonkeyPatch, handler: Any) -> Any:
    monkeypatch.setenv("_X_AMZN_TRACE_ID", f"Root={new_trace_id()};Parent={new_id()};Sampled=1")
    return handler({}, testing.FakeContext())


def _calls(daemon: testing.DaemonListener) -> list[dict[str, Any]]:
    [invocation] = [d for d in daemon.sync() if d["name"] == "## handler"]
    assert testing.check_document(invocation) == []
    calls: list[dict[str, Any]] = invocation["subsegments"]
    assert all(call["namespace"] == "aws" for call in calls)
    assert all("fault" not in call and "error" not in call for call in calls)
    return calls


@pytest.mark.usefixtures("in_lambda", "env")
def test_kinesis_eventbridge_and_step_functions_calls_name_their_resource(
    backend: str, daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    kinesis, events, sfn = (boto3.client(s) for s in ("kinesis", "events", "stepfunctions"))
    suffix = new_id()
    stream = f"clicks-{suffix}"
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    stream_arn = kinesis.describe_stream(StreamName=stream)["StreamDescription"]["StreamARN"]
    bus = f"orders-{suffix}"
    bus_arn = events.create_event_bus(Name=bus)["EventBusArn"]
    machine = sfn.create_state_machine(
        name=f"fulfil-{suffix}", definition=DEFINITION, roleArn=ROLE
    )["stateMachineArn"]
    tracing.configure(backend=backend)

    @tracing.handler
    def handler(event: Any, context: Any) -> None:
        kinesis.put_record(StreamName=stream, Data=b"{}", PartitionKey="k")
        kinesis.put_records(StreamARN=stream_arn, Records=[{"Data": b"{}", "PartitionKey": "k"}])
        entry = {"Source": "orders", "DetailType": "placed", "Detail": "{}"}
        events.put_events(Entries=[entry])  # the default bus
        events.put_events(Entries=[{**entry, "EventBusName": bus}, entry])
        events.put_events(Entries=[{**entry, "EventBusName": bus_arn}])
        execution = sfn.start_execution(stateMachineArn=machine, input="{}")["executionArn"]
        sfn.describe_execution(executionArn=execution)

    _invoke(monkeypatch, handler)
    calls = _calls(daemon)
    assert [(c["name"], c["aws"]["operation"]) for c in calls] == [
        ("kinesis", "PutRecord"),
        ("kinesis", "PutRecords"),
        ("events", "PutEvents"),
        ("events", "PutEvents"),
        ("events", "PutEvents"),
        ("states", "StartExecution"),
        ("states", "DescribeExecution"),
    ]
    put, put_by_arn, default, several, by_arn, start, describe = (c["aws"] for c in calls)
    assert put["stream_name"] == stream
    assert put_by_arn["stream_name"] == stream  # the name, from the stream's ARN
    assert default["event_bus_name"] == "default"
    assert several["event_bus_name"] == bus  # the first entry's bus
    assert by_arn["event_bus_name"] == bus_arn  # as the call named it
    assert start["state_machine_arn"] == machine
    assert describe["state_machine_arn"] == machine  # from the execution's ARN
    for block in (put, several, start):
        assert block["region"] == "us-east-1"
        assert block["request_id"]
        assert not {"queue_url", "table_name", "topic_arn"} & set(block)


@pytest.mark.usefixtures("in_lambda", "env")
def test_sns_and_dynamodb_streams_calls_name_their_resource(
    backend: str, daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    sns, dynamodb, streams = (boto3.client(s) for s in ("sns", "dynamodb", "dynamodbstreams"))
    topic = sns.create_topic(Name=f"orders-{new_id()}")["TopicArn"]
    table = f"orders-{new_id()}"
    description = dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    )["TableDescription"]
    stream_arn = description["LatestStreamArn"]
    tracing.configure(backend=backend)

    @tracing.handler
    def handler(event: Any, context: Any) -> None:
        sns.publish(TopicArn=topic, Message="m")
        dynamodb.put_item(TableName=table, Item={"id": {"S": "1"}})
        streams.describe_stream(StreamArn=stream_arn)
        streams.list_streams(TableName=table)

    _invoke(monkeypatch, handler)
    publish, put, describe, listed = _calls(daemon)
    assert (publish["name"], publish["aws"]["topic_arn"]) == ("sns", topic)
    assert (put["name"], put["aws"]["table_name"]) == ("dynamodb", table)
    assert describe["name"] == "streams.dynamodb"
    assert describe["aws"]["stream_arn"] == stream_arn
    assert "table_name" not in describe["aws"]
    assert listed["aws"]["table_name"] == table  # as every call naming a table


@pytest.mark.usefixtures("in_lambda", "env")
def test_the_map_of_real_documents_draws_the_bus_and_state_machine_to_their_targets(
    backend: str, daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An invocation given a PutEvents or StartExecution call as parent, as Lambda does."""
    from tracing.local.collector.service_graph import build_map
    from tracing.local.collector.traces import assemble

    events, sfn = boto3.client("events"), boto3.client("stepfunctions")
    bus = f"orders-{new_id()}"
    events.create_event_bus(Name=bus)
    machine = sfn.create_state_machine(
        name=f"fulfil-{new_id()}", definition=DEFINITION, roleArn=ROLE
    )["stateMachineArn"]
    tracing.configure(backend=backend)

    @tracing.handler
    def producer(event: Any, context: Any) -> None:
        events.put_events(
            Entries=[{"Source": "o", "DetailType": "d", "Detail": "{}", "EventBusName": bus}]
        )
        sfn.start_execution(stateMachineArn=machine, input="{}")

    @tracing.handler
    def target(event: Any, context: Any) -> None:
        if event.get("fail"):
            raise RuntimeError("target failed")

    root = new_trace_id()
    monkeypatch.setenv("_X_AMZN_TRACE_ID", f"Root={root};Parent={new_id()};Sampled=1")
    producer({}, testing.FakeContext())
    documents = daemon.sync()
    [invocation] = [d for d in documents if d["name"] == "## producer"]
    put_events, start = invocation["subsegments"]
    monkeypatch.setenv("_X_AMZN_TRACE_ID", f"Root={root};Parent={put_events['id']};Sampled=1")
    target({}, testing.FakeContext())
    monkeypatch.setenv("_X_AMZN_TRACE_ID", f"Root={root};Parent={start['id']};Sampled=1")
    with pytest.raises(RuntimeError, match="target failed"):
        target({"fail": True}, testing.FakeContext())
    documents += daemon.sync()
    service_map = build_map([assemble(documents)])
    edges = {(e.source, e.target): e.stats for e in service_map.edges.values()}
    function = ("service", "orders-api")
    assert set(edges) == {
        (("client", "client"), function),
        (function, ("bus", bus)),
        (function, ("state_machine", machine.rsplit(":", 1)[1])),
        (("bus", bus), function),
        (("state_machine", machine.rsplit(":", 1)[1]), function),
    }
    assert edges[(("client", "client"), function)].count == 1  # the targets are no client's
    assert edges[(("bus", bus), function)].rate("faults") == 0.0
    assert edges[(("state_machine", machine.rsplit(":", 1)[1]), function)].rate("faults") == 1.0


@pytest.mark.usefixtures("in_lambda", "env")
def test_a_service_outside_the_table_gets_every_field_of_the_generic_list(
    backend: str, daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    glue = boto3.client("glue")
    database = f"db_{new_id()}"
    glue.create_database(DatabaseInput={"Name": database})
    glue.create_table(DatabaseName=database, TableInput={"Name": "sales"})
    tracing.configure(backend=backend)

    @tracing.handler
    def handler(event: Any, context: Any) -> None:
        glue.get_partitions(DatabaseName=database, TableName="sales")

    _invoke(monkeypatch, handler)
    [call] = _calls(daemon)
    assert (call["name"], call["aws"]["operation"]) == ("glue", "GetPartitions")
    assert call["aws"]["table_name"] == "sales"  # TableName, as for DynamoDB
