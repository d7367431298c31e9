"""The resource an AWS call names, in its ``aws`` block: the per-service table.

The table against botocore's own service models, and its ARN readers; the calls
themselves are made against moto's server in ``tests/functional/test_aws_resources.py``.
"""

from __future__ import annotations

import botocore.session
import pytest

from tracing._aws_calls import (
    _RESOURCES,
    _SERVICE_RESOURCES,
    _first_bus,
    _machine_of_execution,
    _stream_of_arn,
)

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
