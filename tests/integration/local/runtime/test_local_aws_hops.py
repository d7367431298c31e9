"""LocalAWS carries the trace header between services where AWS does.

SQS ``SendMessageBatch``, SNS -> SQS, EventBridge -> SQS and Step Functions'
``traceHeader``; the header is sent as botocore sends it from a Lambda function
(``X-Amzn-Trace-Id``), and the last test has a real function send it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tracing import testing
from tracing._header import new_id, new_trace_id
from tracing.local.runtime import LocalLambda
from tracing.local.runtime.aws import LocalAWS

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).parent / "fixtures"


def _header(sampled: str = "1", **extra: str) -> str:
    text = f"Root={new_trace_id()};Parent={new_id()};Sampled={sampled}"
    return text + "".join(f";{k}={v}" for k, v in extra.items())


def _with_header(client: Any, header: str) -> Any:
    def add(request: Any, **_: Any) -> None:
        request.headers["X-Amzn-Trace-Id"] = header

    client.meta.events.register("before-send.*.*", add)
    return client


def _queue(aws: LocalAWS) -> tuple[str, str]:
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName=f"hops-{new_id()}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return url, arn["Attributes"]["QueueArn"]


def _received(aws: LocalAWS, url: str, count: int) -> dict[str, str | None]:
    """Body -> AWSTraceHeader of ``count`` messages (bounded waits)."""
    messages = testing.receive_messages(aws.client("sqs"), url, count)
    assert len(messages) == count
    return {m["Body"]: (m.get("Attributes") or {}).get("AWSTraceHeader") for m in messages}


def test_send_message_batch_keeps_each_entrys_header_else_gives_the_requests(
    aws: LocalAWS,
) -> None:
    url, _ = _queue(aws)
    request, own = _header(Lineage="0badcafe:2"), _header()
    sqs = _with_header(aws.client("sqs"), request)
    sqs.send_message_batch(
        QueueUrl=url,
        Entries=[
            {"Id": "a", "MessageBody": "plain"},
            {
                "Id": "b",
                "MessageBody": "own",
                "MessageSystemAttributes": {
                    "AWSTraceHeader": {"DataType": "String", "StringValue": own}
                },
            },
        ],
    )
    sqs.send_message(QueueUrl=url, MessageBody="single")
    assert _received(aws, url, 3) == {"plain": request, "own": own, "single": request}


def test_sns_publish_reaches_sqs_subscribers_as_aws_trace_header(aws: LocalAWS) -> None:
    url, arn = _queue(aws)
    raw_url, raw_arn = _queue(aws)
    sns = aws.client("sns")
    topic = sns.create_topic(Name=f"hops-{new_id()}")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    sns.subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=raw_arn,
        Attributes={"RawMessageDelivery": "true"},
    )
    header = _header(Lineage="0badcafe:4")
    _with_header(sns, header)
    sns.publish(TopicArn=topic, Message="one")
    sns.publish_batch(TopicArn=topic, PublishBatchRequestEntries=[{"Id": "1", "Message": "two"}])

    enveloped = _received(aws, url, 2)
    assert sorted(json.loads(body)["Message"] for body in enveloped) == ["one", "two"]
    assert set(enveloped.values()) == {header}
    assert _received(aws, raw_url, 2) == {"one": header, "two": header}
    assert [n.trace_header for n in aws.journal.notifications if n.topic_arn == topic] == [
        header,
        header,
    ]

    # Without a header (a publisher outside Lambda, no tracer) nothing is invented.
    aws.client("sns").publish(TopicArn=topic, Message="three")
    assert _received(aws, raw_url, 1) == {"three": None}


def test_eventbridge_entries_reach_sqs_targets_with_their_own_trace_header(
    aws: LocalAWS,
) -> None:
    url, arn = _queue(aws)
    events = aws.client("events")
    source = f"orders.{new_id()}"
    rule = f"rule-{new_id()}"
    events.put_rule(Name=rule, EventPattern=json.dumps({"source": [source]}))
    events.put_targets(Rule=rule, Targets=[{"Id": "queue", "Arn": arn}])
    request, entry = _header(), _header(sampled="0", Lineage="0badcafe:1")
    _with_header(events, request)
    reply = events.put_events(
        Entries=[
            {"Source": source, "DetailType": "t", "Detail": '{"n": "entry"}', "TraceHeader": entry},
            {"Source": source, "DetailType": "t", "Detail": '{"n": "request"}'},
            {"Source": source, "DetailType": "t", "Detail": '{"n": "junk"}', "TraceHeader": "junk"},
        ]
    )
    assert reply["FailedEntryCount"] == 0
    got = {
        json.loads(body)["detail"]["n"]: header for body, header in _received(aws, url, 3).items()
    }
    # The entry's TraceHeader overrides the request's; an invalid one is dropped.
    assert got == {"entry": entry, "request": request, "junk": None}
    recorded = {
        e.event["detail"]["n"]: e for e in aws.journal.events if e.event["source"] == source
    }
    assert {n: e.trace_header for n, e in recorded.items()} == got
    assert {e.bus for e in recorded.values()} == {"default"}


def test_step_functions_keeps_the_trace_header_an_execution_started_with(
    aws: LocalAWS,
) -> None:
    sfn = aws.client("stepfunctions")
    definition = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
    machine = sfn.create_state_machine(
        name=f"m-{new_id()}",
        definition=json.dumps(definition),
        roleArn="arn:aws:iam::123456789012:role/sfn",
    )["stateMachineArn"]
    header = _header(Lineage="0badcafe:1")
    given = sfn.start_execution(stateMachineArn=machine, traceHeader=header)
    request_header = _header()
    from_request = _with_header(aws.client("stepfunctions"), request_header)
    implicit = from_request.start_execution(stateMachineArn=machine)
    bare = aws.client("stepfunctions").start_execution(stateMachineArn=machine)

    def described(execution: dict[str, Any]) -> Any:
        return sfn.describe_execution(executionArn=execution["executionArn"]).get("traceHeader")

    assert described(given) == header
    assert described(implicit) == request_header  # no traceHeader: the request's header
    assert described(bare) is None


def test_a_function_without_a_tracer_passes_lineage_through_sns_to_sqs(
    aws: LocalAWS, daemon: testing.DaemonListener
) -> None:
    # botocore copies _X_AMZN_TRACE_ID into X-Amzn-Trace-Id: that is all AWS needs.
    url, arn = _queue(aws)
    sns = aws.client("sns")
    topic = sns.create_topic(Name=f"hops-{new_id()}")["TopicArn"]
    sns.subscribe(
        TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"}
    )
    function = LocalLambda(
        "republish_app.handler",
        code_dir=FIXTURES,
        env={**aws.env, "TOPIC_ARN": topic},
        xray_daemon_address=daemon.address,
    )
    header = _header(Lineage="0badcafe:7")
    event = {"Records": [{"Sns": {"Message": "from a function"}}]}
    with function:
        result = function.invoke(event, trace_header=header)
    assert result.ok, result.error
    assert _received(aws, url, 1) == {"from a function": header}
