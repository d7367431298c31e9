"""The resource an AWS call names, in its ``aws`` block: the per-service table.

Calls are real botocore calls answered by ``Stubber`` (nothing leaves the
process but the documents, to the test's ``daemon`` listener).
"""

from __future__ import annotations

from typing import Any

import boto3
import botocore.session
import pytest
from botocore.stub import Stubber

import tracing
from tracing import testing
from tracing._aws_calls import (
    _RESOURCES,
    _SERVICE_RESOURCES,
    _first_bus,
    _machine_of_execution,
    _stream_of_arn,
)
from tracing._header import new_id, new_trace_id

#: botocore's service name for each endpoint prefix of the table.
SERVICES = {
    "sqs": "sqs",
    "dynamodb": "dynamodb",
    "s3": "s3",
    "lambda": "lambda",
    "sns": "sns",
    "ssm": "ssm",
    "secretsmanager": "secretsmanager",
    "sts": "sts",
    "kms": "kms",
    "kinesis": "kinesis",
    "events": "events",
    "states": "stepfunctions",
    "streams.dynamodb": "dynamodbstreams",
}
MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:fulfil"


def test_the_table_covers_its_services_and_loses_no_field_of_the_generic_list() -> None:
    assert set(SERVICES) == set(_SERVICE_RESOURCES)
    session = botocore.session.get_session()
    generic = {parameter for parameter, _, _ in _RESOURCES}
    for prefix, name in SERVICES.items():
        model = session.get_service_model(name)
        assert model.endpoint_prefix == prefix
        listed = {parameter for parameter, _, _ in _SERVICE_RESOURCES[prefix]}
        inputs: set[str] = set()
        for operation in model.operation_names:
            shape = model.operation_model(operation).input_shape
            members = set(shape.members) if shape is not None else set()
            # What the generic list would record for this service, the table records.
            assert generic & members <= listed, (prefix, operation)
            inputs |= members
        assert listed <= inputs, prefix  # and names only parameters the service has


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("arn:aws:kinesis:us-east-1:123456789012:stream/clicks", "clicks"),
        ("arn:aws-cn:kinesis:cn-north-1:123456789012:stream/a.b-c_d", "a.b-c_d"),
        ("clicks", None),
        (42, None),
    ],
)
def test_a_kinesis_stream_is_named_from_its_arn(value: object, expected: str | None) -> None:
    assert _stream_of_arn(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("arn:aws:states:us-east-1:123456789012:execution:fulfil:run-1", MACHINE),
        ("arn:aws:states:us-east-1:123456789012:express:fulfil:run-1:x", None),
        ("arn:aws:states:us-east-1:123456789012:execution:fulfil", None),
        (None, None),
    ],
)
def test_an_execution_names_its_state_machine(value: object, expected: str | None) -> None:
    assert _machine_of_execution(value) == expected


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        ([{"Source": "s"}], "default"),
        ([{"EventBusName": ""}], "default"),
        ([{"EventBusName": "orders"}, {"EventBusName": "audit"}], "orders"),
        ([{"EventBusName": 7}], "default"),
        ([], None),
        (["orders"], None),
        ({"EventBusName": "orders"}, None),
    ],
)
def test_put_events_names_the_first_entrys_bus(entries: object, expected: str | None) -> None:
    assert _first_bus(entries) == expected


@pytest.fixture(params=["xray", "otel"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.usefixtures("in_lambda")
def test_stubbed_calls_carry_their_resource_on_both_backends(
    backend: str, daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    clients = {name: boto3.client(name) for name in ("kinesis", "events", "stepfunctions", "glue")}
    answers = {
        "kinesis": ("put_record", {"ShardId": "s", "SequenceNumber": "1"}),
        "events": ("put_events", {"FailedEntryCount": 0, "Entries": []}),
        "stepfunctions": ("stop_execution", {"stopDate": 0}),
        "glue": ("batch_create_partition", {}),
    }
    stubbers = [Stubber(client) for client in clients.values()]
    for stubber, (method, answer) in zip(stubbers, answers.values(), strict=True):
        stubber.add_response(method, answer)
        stubber.activate()
    tracing.configure(backend=backend)

    @tracing.handler
    def handler(event: Any, context: Any) -> None:
        clients["kinesis"].put_record(
            StreamARN="arn:aws:kinesis:us-east-1:123456789012:stream/clicks",
            Data=b"{}",
            PartitionKey="k",
        )
        clients["events"].put_events(Entries=[{"Source": "s", "DetailType": "d", "Detail": "{}"}])
        clients["stepfunctions"].stop_execution(
            executionArn="arn:aws:states:us-east-1:123456789012:execution:fulfil:run-1"
        )
        # A service outside the table: every field of the generic list, as before.
        clients["glue"].batch_create_partition(
            DatabaseName="db", TableName="sales", PartitionInputList=[]
        )

    monkeypatch.setenv("_X_AMZN_TRACE_ID", f"Root={new_trace_id()};Parent={new_id()};Sampled=1")
    handler({}, testing.FakeContext())
    for stubber in stubbers:
        stubber.assert_no_pending_responses()
    [invocation] = [d for d in daemon.sync() if d["name"] == "## handler"]
    blocks = {call["name"]: call["aws"] for call in invocation["subsegments"]}
    assert blocks["kinesis"]["stream_name"] == "clicks"
    assert blocks["events"]["event_bus_name"] == "default"
    assert blocks["states"]["state_machine_arn"] == MACHINE
    assert blocks["glue"]["table_name"] == "sales"
    assert [block["operation"] for block in blocks.values()] == [
        "PutRecord",
        "PutEvents",
        "StopExecution",
        "BatchCreatePartition",
    ]
