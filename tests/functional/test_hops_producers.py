"""Hops beyond SQS, on the wire: EventBridge, Step Functions, SNS and Lambda Invoke.

moto's HTTP server answers; what goes out is read as it leaves botocore (a
``before-send`` handler registered last on the client), in traced invocations
on both backends. ``Parent`` is checked against the call's own subsegment as the
UDP listener received it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, unquote

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config

import tracing
from tracing import testing
from tracing._header import from_traceparent, new_id, new_trace_id, parse
from tracing.local.runtime.aws import LocalAWS

#: Two hops, so that the ``|`` botocore quotes in HTTP is exercised.
LINEAGE = "Lineage=a87bd80c:3|68fd508a:1"
ROLE = "arn:aws:iam::123456789012:role/states"


@pytest.fixture(params=["xray", "otel"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Wire:
    """A client made before configure(), and each request it sent: header and body."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.http: list[str | None] = []
        self.bodies: list[bytes] = []
        client.meta.events.register_last("before-send", self._capture)

    def _capture(self, request: Any, **_: Any) -> None:
        value = request.headers.get("X-Amzn-Trace-Id")
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        self.http.append(unquote(value) if isinstance(value, str) else None)
        body = request.body
        self.bodies.append(body if isinstance(body, bytes) else str(body or "").encode())

    def json(self, index: int = -1) -> dict[str, Any]:
        return dict(json.loads(self.bodies[index]))

    def form(self, index: int = -1) -> dict[str, str]:
        return dict(parse_qsl(self.bodies[index].decode()))

    def clear(self) -> None:
        self.http.clear()
        self.bodies.clear()


@pytest.fixture
def aws_env(aws: LocalAWS, monkeypatch: pytest.MonkeyPatch) -> LocalAWS:
    for key, value in aws.env.items():
        monkeypatch.setenv(key, value)
    return aws


@pytest.fixture
def events(aws_env: LocalAWS) -> Wire:
    return Wire(boto3.client("events"))


@pytest.fixture
def states(aws_env: LocalAWS) -> Iterator[tuple[Wire, str]]:
    client = boto3.client("stepfunctions")
    definition = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
    arn = client.create_state_machine(
        name=f"m-{new_id()}", definition=json.dumps(definition), roleArn=ROLE
    )["stateMachineArn"]
    yield Wire(client), arn
    client.delete_state_machine(stateMachineArn=arn)


@pytest.fixture
def topic(aws_env: LocalAWS) -> Iterator[tuple[Wire, str, Any, str]]:
    """An SNS topic with an SQS queue subscribed (envelope delivery)."""
    sns, sqs = boto3.client("sns"), boto3.client("sqs")
    arn = sns.create_topic(Name=f"t-{new_id()}")["TopicArn"]
    url = sqs.create_queue(QueueName=f"q-{new_id()}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=queue_arn["Attributes"]["QueueArn"])
    yield Wire(sns), arn, sqs, url
    sqs.delete_queue(QueueUrl=url)
    sns.delete_topic(TopicArn=arn)


def _invocation(monkeypatch: pytest.MonkeyPatch, sampled: str = "1") -> tuple[str, str]:
    """Set the invocation's ``_X_AMZN_TRACE_ID``; return its Root and Parent."""
    root, parent = new_trace_id(), new_id()
    monkeypatch.setenv(
        "_X_AMZN_TRACE_ID", f"Root={root};Parent={parent};Sampled={sampled};{LINEAGE}"
    )
    return root, parent


def _calls(documents: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """AWS call subsegments received, by operation."""
    calls: dict[str, list[dict[str, Any]]] = {}
    for document in documents:
        for entity in testing.iter_entities(document):
            if entity.get("namespace") == "aws":
                calls.setdefault(entity["aws"]["operation"], []).append(entity)
    return calls


def _entries(source: str = "orders", count: int = 1, **extra: Any) -> list[dict[str, Any]]:
    return [
        {"Source": source, "DetailType": "placed", "Detail": json.dumps({"n": i}), **extra}
        for i in range(count)
    ]


# -- EventBridge PutEvents --------------------------------------------------------


@pytest.mark.usefixtures("in_lambda")
def test_put_events_entries_carry_the_call_as_parent_with_lineage(
    backend: str, events: Wire, daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure(backend=backend)
    mine = f"Root={new_trace_id()};Parent={new_id()};Sampled=1"
    entries = [*_entries(count=2), *_entries(TraceHeader=mine)]
    originals = json.loads(json.dumps(entries))

    @tracing.handler
    def handler(event: Any, context: Any) -> Any:
        return events.client.put_events(Entries=entries)

    root, _ = _invocation(monkeypatch)
    response = handler({}, testing.FakeContext())
    assert response["FailedEntryCount"] == 0
    [call] = _calls(daemon.sync())["PutEvents"]
    expected = f"Root={root};Parent={call['id']};Sampled=1;{LINEAGE}"
    sent = events.json()["Entries"]
    assert [e.get("TraceHeader") for e in sent] == [expected, expected, mine]
    assert events.http == [expected]  # the same value as the HTTP header
    assert entries == originals  # the caller's entries were not touched


@pytest.mark.usefixtures("in_lambda")
def test_put_events_unsampled_passes_its_own_root_unsampled(
    backend: str, events: Wire, daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure(backend=backend)
    handler = tracing.handler(lambda e, c: events.client.put_events(Entries=_entries()))
    root, parent = _invocation(monkeypatch, sampled="0")
    handler({}, testing.FakeContext())
    [entry] = events.json()["Entries"]
    assert entry["TraceHeader"] == f"Root={root};Parent={parent};Sampled=0;{LINEAGE}"
    assert daemon.sync() == []


def test_put_events_at_init_and_outside_an_invocation_carry_nothing(
    backend: str,
    events: Wire,
    daemon: testing.DaemonListener,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> None:
    tracing.configure(backend=backend)  # a worker: no Lambda environment
    events.client.put_events(Entries=_entries())
    monkeypatch.setenv("LAMBDA_TASK_ROOT", str(tmp_path))
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "producer")
    testing.reset()
    tracing.configure(backend=backend)  # in Lambda, during init
    events.client.put_events(Entries=_entries())
    handler = tracing.handler(lambda e, c: events.client.put_events(Entries=_entries()))
    _invocation(monkeypatch)
    handler({}, testing.FakeContext())
    traced = [events.json(i)["Entries"][0].get("TraceHeader") for i in range(3)]
    assert traced[:2] == [None, None]
    assert traced[2] is not None  # the same client, inside the invocation


def test_put_events_in_a_worker_passes_the_messages_trace_and_lineage(
    backend: str, events: Wire, daemon: testing.DaemonListener
) -> None:
    tracing.configure(backend=backend, service="worker")
    producer = new_trace_id()
    message = {
        "MessageId": new_id(),
        "Attributes": {
            "AWSTraceHeader": f"Root={producer};Parent={new_id()};Sampled=1;Lineage=0000aaaa:9"
        },
    }
    with tracing.sqs.consume(message):
        events.client.put_events(Entries=_entries())
    [call] = _calls([d for d in daemon.sync() if d["trace_id"] == producer])["PutEvents"]
    [entry] = events.json()["Entries"]
    assert entry["TraceHeader"] == (
        f"Root={producer};Parent={call['id']};Sampled=1;Lineage=0000aaaa:9"
    )


@pytest.mark.usefixtures("in_lambda", "daemon")
def test_put_events_takes_a_500_character_header_and_leaves_out_a_longer_one(
    backend: str, events: Wire, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure(backend=backend)
    handler = tracing.handler(lambda e, c: events.client.put_events(Entries=_entries()))
    sent: list[str | None] = []
    for size in (500, 501):  # EventBridge's limit; a header may be up to 512
        root, parent = new_trace_id(), new_id()
        extra = f"K0={'v' * 209};K1={'v' * (size - 291)}"
        monkeypatch.setenv("_X_AMZN_TRACE_ID", f"Root={root};Parent={parent};Sampled=1;{extra}")
        handler({}, testing.FakeContext())
        [entry] = events.json()["Entries"]
        sent.append(entry.get("TraceHeader"))
        header = parse(events.http[-1])
        assert header is not None  # the HTTP header carries all of it either way
        assert (header.root, len(header.to_string())) == (root, size)
    assert sent[0] == events.http[0]
    assert sent[1] is None  # the request stays valid


# -- Step Functions ---------------------------------------------------------------


@pytest.mark.usefixtures("in_lambda")
def test_start_execution_carries_the_call_as_parent_with_lineage(
    backend: str,
    states: tuple[Wire, str],
    daemon: testing.DaemonListener,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wire, arn = states
    tracing.configure(backend=backend)
    mine = f"Root={new_trace_id()};Parent={new_id()};Sampled=1"

    @tracing.handler
    def handler(event: Any, context: Any) -> list[str]:
        started = [
            wire.client.start_execution(stateMachineArn=arn, input="{}"),
            wire.client.start_execution(stateMachineArn=arn, traceHeader=mine),
        ]
        return [s["executionArn"] for s in started]

    root, _ = _invocation(monkeypatch)
    executions = handler({}, testing.FakeContext())
    first, _ = _calls(daemon.sync())["StartExecution"]
    expected = f"Root={root};Parent={first['id']};Sampled=1;{LINEAGE}"
    assert [wire.json(i).get("traceHeader") for i in range(2)] == [expected, mine]
    assert wire.http[0] == expected
    described = [wire.client.describe_execution(executionArn=e) for e in executions]
    assert [d["traceHeader"] for d in described] == [expected, mine]  # as AWS keeps them


@pytest.mark.usefixtures("in_lambda")
def test_start_sync_execution_carries_it_too_and_unsampled_says_so(
    backend: str,
    refused_port: int,
    daemon: testing.DaemonListener,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # moto does not implement StartSyncExecution: the request is captured on its
    # way to a port of ours that refuses it. No "sync-" host prefix, which would
    # name a host that does not exist.
    config = Config(inject_host_prefix=False, retries={"total_max_attempts": 1})
    endpoint = f"http://127.0.0.1:{refused_port}"
    wire = Wire(boto3.client("stepfunctions", endpoint_url=endpoint, config=config))
    arn = "arn:aws:states:us-east-1:123456789012:stateMachine:express"
    tracing.configure(backend=backend)

    @tracing.handler
    def handler(event: Any, context: Any) -> None:
        with pytest.raises(botocore.exceptions.EndpointConnectionError):
            wire.client.start_sync_execution(stateMachineArn=arn)

    root, _ = _invocation(monkeypatch)
    handler({}, testing.FakeContext())
    [call] = _calls(daemon.sync())["StartSyncExecution"]
    assert wire.json()["traceHeader"] == f"Root={root};Parent={call['id']};Sampled=1;{LINEAGE}"

    wire.clear()
    daemon.clear()
    root, parent = _invocation(monkeypatch, sampled="0")
    handler({}, testing.FakeContext())
    assert wire.json()["traceHeader"] == f"Root={root};Parent={parent};Sampled=0;{LINEAGE}"
    assert daemon.sync() == []


def test_start_execution_at_init_carries_nothing(
    backend: str,
    states: tuple[Wire, str],
    daemon: testing.DaemonListener,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> None:
    wire, arn = states
    monkeypatch.setenv("LAMBDA_TASK_ROOT", str(tmp_path))
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "producer")
    tracing.configure(backend=backend)
    wire.client.start_execution(stateMachineArn=arn)
    assert "traceHeader" not in wire.json()
    assert wire.http == [None]


@pytest.mark.usefixtures("in_lambda", "daemon")
def test_start_execution_shortens_a_long_header_to_a_valid_one_keeping_lineage(
    backend: str, states: tuple[Wire, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    wire, arn = states
    tracing.configure(backend=backend)
    handler = tracing.handler(lambda e, c: wire.client.start_execution(stateMachineArn=arn))
    root, parent = new_trace_id(), new_id()
    long = ";".join(f"K{i}={'v' * 100}" for i in range(2))  # over 256 with the rest
    monkeypatch.setenv(
        "_X_AMZN_TRACE_ID", f"Root={root};Parent={parent};Sampled=1;{long};{LINEAGE}"
    )
    handler({}, testing.FakeContext())
    sent = wire.json()["traceHeader"]
    assert len(sent) <= 256
    header = parse(sent)
    assert header is not None
    assert (header.root, header.sampled, header.extra) == (
        root,
        "1",
        (("Lineage", LINEAGE.split("=", 1)[1]),),
    )
    assert header.parent == parse(wire.http[0]).parent  # type: ignore[union-attr]


# -- SNS --------------------------------------------------------------------------


def _attributes(form: dict[str, str], prefix: str = "") -> dict[str, str]:
    """String message attributes of a query-protocol Publish (``prefix`` for a batch entry)."""
    found: dict[str, str] = {}
    for key, name in form.items():
        if key.startswith(f"{prefix}MessageAttributes.entry.") and key.endswith(".Name"):
            found[name] = form.get(f"{key[:-5]}.Value.StringValue", "")
    return found


def _envelopes(sqs: Any, url: str, count: int) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    while len(messages) < count:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        messages.extend(got.get("Messages", []))
    return messages


@pytest.mark.usefixtures("in_lambda")
def test_publish_adds_traceparent_on_otel_only_and_the_http_header_on_both(
    backend: str,
    topic: tuple[Wire, str, Any, str],
    daemon: testing.DaemonListener,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wire, arn, sqs, url = topic
    tracing.configure(backend=backend)
    nine = {f"a{i}": {"DataType": "String", "StringValue": "v"} for i in range(9)}
    ten = {**nine, "a9": {"DataType": "String", "StringValue": "v"}}
    theirs = {"traceparent": {"DataType": "String", "StringValue": f"00-{'1' * 32}-{'2' * 16}-01"}}
    given = json.loads(json.dumps([nine, ten, theirs]))

    @tracing.handler
    def handler(event: Any, context: Any) -> None:
        wire.client.publish(TopicArn=arn, Message="nine", MessageAttributes=nine)
        wire.client.publish(TopicArn=arn, Message="ten", MessageAttributes=ten)
        wire.client.publish(TopicArn=arn, Message="theirs", MessageAttributes=theirs)

    root, _ = _invocation(monkeypatch)
    handler({}, testing.FakeContext())
    calls = _calls(daemon.sync())["Publish"]
    assert wire.http == [f"Root={root};Parent={c['id']};Sampled=1;{LINEAGE}" for c in calls]
    sent = [_attributes(wire.form(i)) for i in range(3)]
    assert [len(s) for s in sent[:2]] == ([10, 10] if backend == "otel" else [9, 10])
    assert "traceparent" not in sent[1]  # ten already: none added
    assert sent[2] == {"traceparent": theirs["traceparent"]["StringValue"]}
    assert [nine, ten, theirs] == given  # the caller's dicts were not touched
    # Through the subscription, the SQS consumer finds the publisher's context
    # (LocalAWS passes the HTTP header on as AWSTraceHeader, as SNS does).
    by_body = {json.loads(m["Body"])["Message"]: m for m in _envelopes(sqs, url, 3)}
    header, _ = tracing.sqs.extract(by_body["nine"])
    assert header is not None
    assert str(header) == wire.http[0]
    delivered = json.loads(by_body["nine"]["Body"])["MessageAttributes"]
    if backend == "xray":
        assert "traceparent" not in sent[0]
        assert "traceparent" not in delivered
        return
    w3c = from_traceparent(sent[0]["traceparent"])
    assert w3c is not None
    assert (w3c.root, w3c.parent, w3c.sampled) == (root, calls[0]["id"], "1")
    assert delivered["traceparent"] == {"Type": "String", "Value": sent[0]["traceparent"]}


@pytest.mark.usefixtures("in_lambda", "daemon")
def test_publish_batch_adds_traceparent_only_where_the_size_allows(
    topic: tuple[Wire, str, Any, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    wire, arn, _, _ = topic
    tracing.configure(backend="otel")
    big = "x" * 131_030  # two fit in 256 KiB, with one traceparent but not two

    @tracing.handler
    def handler(event: Any, context: Any) -> None:
        wire.client.publish_batch(
            TopicArn=arn,
            PublishBatchRequestEntries=[
                {"Id": "a", "Message": big},
                {"Id": "b", "Message": big},
            ],
        )
        wire.client.publish_batch(
            TopicArn=arn,
            PublishBatchRequestEntries=[
                {"Id": "c", "Message": "small"},
                {"Id": "d", "Message": "s"},
            ],
        )
        wire.client.publish(TopicArn=arn, Message="y" * (262_144 - 20))

    root, _ = _invocation(monkeypatch)
    handler({}, testing.FakeContext())
    prefix = "PublishBatchRequestEntries.member.{}."
    big_batch = [_attributes(wire.form(0), prefix.format(i)) for i in (1, 2)]
    assert ["traceparent" in a for a in big_batch] == [True, False]
    small = [_attributes(wire.form(1), prefix.format(i)) for i in (1, 2)]
    parents = {from_traceparent(a["traceparent"]) for a in small}
    assert len(parents) == 1
    assert parents.pop().root == root  # type: ignore[union-attr]
    assert _attributes(wire.form(2)) == {}  # 256 KiB with it: left out


@pytest.mark.usefixtures("in_lambda", "daemon")
def test_publish_unsampled_passes_its_own_trace_and_nothing_at_init(
    topic: tuple[Wire, str, Any, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    wire, arn, _, _ = topic
    tracing.configure(backend="otel")
    wire.client.publish(TopicArn=arn, Message="at import")
    handler = tracing.handler(lambda e, c: wire.client.publish(TopicArn=arn, Message="m"))
    root, parent = _invocation(monkeypatch, sampled="0")
    handler({}, testing.FakeContext())
    assert _attributes(wire.form(0)) == {}
    w3c = from_traceparent(_attributes(wire.form(1))["traceparent"])
    assert w3c is not None
    assert (w3c.root, w3c.parent, w3c.sampled) == (root, parent, "0")


# -- Lambda Invoke ----------------------------------------------------------------


@pytest.mark.usefixtures("in_lambda")
@pytest.mark.parametrize("invocation_type", ["RequestResponse", "Event"])
def test_invoke_http_header_follows_the_rule_with_lineage(
    backend: str,
    invocation_type: str,
    aws_env: LocalAWS,
    daemon: testing.DaemonListener,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wire = Wire(boto3.client("lambda", config=Config(retries={"total_max_attempts": 1})))
    tracing.configure(backend=backend)

    @tracing.handler
    def handler(event: Any, context: Any) -> None:
        with pytest.raises(botocore.exceptions.ClientError):  # no such function in moto
            wire.client.invoke(FunctionName="next", InvocationType=invocation_type, Payload=b"{}")

    root, _ = _invocation(monkeypatch)
    handler({}, testing.FakeContext())
    [call] = _calls(daemon.sync())["Invoke"]
    assert wire.http == [f"Root={root};Parent={call['id']};Sampled=1;{LINEAGE}"]

    wire.clear()
    root, parent = _invocation(monkeypatch, sampled="0")
    handler({}, testing.FakeContext())
    assert wire.http == [f"Root={root};Parent={parent};Sampled=0;{LINEAGE}"]
