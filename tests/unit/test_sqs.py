"""tracing.sqs pieces that need no network: carriers, inject, batches, fuzzing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tracing
from tracing import sqs, testing
from tracing._header import TraceHeader

ROOT = "1-5759e988-bd862e3fe1be46a994272793"
PARENT = "53995c3f42cd8ad8"
HEADER = f"Root={ROOT};Parent={PARENT};Sampled=1"


def test_extract_from_a_lambda_record() -> None:
    record = {"messageId": "m1", "attributes": {"AWSTraceHeader": HEADER}}
    assert sqs.extract(record) == (TraceHeader(ROOT, PARENT, "1"), "m1")


def test_extract_from_a_receive_message_message() -> None:
    message = {"MessageId": "m2", "Attributes": {"AWSTraceHeader": HEADER}}
    assert sqs.extract(message) == (TraceHeader(ROOT, PARENT, "1"), "m2")


def test_extract_from_traceparent_message_attribute() -> None:
    record = {
        "messageId": "m3",
        "messageAttributes": {
            "traceparent": {
                "stringValue": f"00-5759e988bd862e3fe1be46a994272793-{PARENT}-01",
                "dataType": "String",
            }
        },
    }
    assert sqs.extract(record)[0] == TraceHeader(ROOT, PARENT, "1")


def test_extract_from_an_sns_envelope() -> None:
    body = json.dumps(
        {
            "Type": "Notification",
            "MessageId": "sns-1",
            "Message": "hello",
            "MessageAttributes": {"AWSTraceHeader": {"Type": "String", "Value": HEADER}},
        },
        indent=1,
    )
    assert sqs.extract({"messageId": "m4", "body": body})[0] == TraceHeader(ROOT, PARENT, "1")


def test_system_attribute_wins_over_sns_envelope() -> None:
    other = "Root=1-5759e988-000000000000000000000001;Parent=0000000000000001;Sampled=1"
    body = json.dumps(
        {"Type": "Notification", "MessageAttributes": {"AWSTraceHeader": {"Value": other}}}
    )
    record = {"messageId": "m", "body": body, "attributes": {"AWSTraceHeader": HEADER}}
    assert sqs.extract(record)[0] == TraceHeader(ROOT, PARENT, "1")


def _eventbridge(detail: Any, **fields: Any) -> str:
    event = {
        "version": "0",
        "id": "e1",
        "detail-type": "OrderPlaced",
        "source": "shop",
        "account": "123456789012",
        "time": "2026-01-01T00:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": detail,
        **fields,
    }
    return json.dumps(event)


def test_extract_from_an_eventbridge_events_detail() -> None:
    body = _eventbridge({"sku": "a", "_tracing": {"AWSTraceHeader": HEADER}})
    assert sqs.extract({"messageId": "m", "body": body})[0] == TraceHeader(ROOT, PARENT, "1")
    w3c = {"_tracing": {"traceparent": f"00-5759e988bd862e3fe1be46a994272793-{PARENT}-01"}}
    assert sqs.extract({"messageId": "m", "body": _eventbridge(w3c)})[0] == TraceHeader(
        ROOT, PARENT, "1"
    )


@pytest.mark.parametrize(
    "body",
    [
        # Datadog's context: its parent is a Datadog span, which X-Ray never receives.
        _eventbridge(
            {"_datadog": {"traceparent": f"00-5759e988bd862e3fe1be46a994272793-{PARENT}-01"}}
        ),
        # Not an EventBridge event: a plain message that happens to have _tracing.
        json.dumps({"detail-type": "x", "detail": {"_tracing": {"AWSTraceHeader": HEADER}}}),
        json.dumps({"_tracing": {"AWSTraceHeader": HEADER}}),
        _eventbridge({"_tracing": {"AWSTraceHeader": "Root=dummy"}}),
        _eventbridge("text detail"),
        '{"detail-type": ' + "[" * 100_000,
        '{"Type": "Notification", "x": ' + "[" * 100_000,  # was a RecursionError
        _eventbridge({"_tracing": {"AWSTraceHeader": HEADER}, "pad": "x" * 262_144}),
    ],
)
def test_other_bodies_give_no_header(body: str) -> None:
    assert sqs.extract({"messageId": "m", "body": body})[0] is None


def test_the_system_attribute_wins_over_the_eventbridge_detail() -> None:
    other = "Root=1-5759e988-000000000000000000000001;Parent=0000000000000001;Sampled=1"
    body = _eventbridge({"_tracing": {"AWSTraceHeader": other}})
    record = {"messageId": "m", "body": body, "attributes": {"AWSTraceHeader": HEADER}}
    assert sqs.extract(record)[0] == TraceHeader(ROOT, PARENT, "1")


@pytest.mark.parametrize(
    "value",
    ["Root=dummy", "x" * 100_000, f"{HEADER}\n", "Root=1-é", "<script>alert(1)</script>", 5, None],
)
def test_hostile_headers_are_ignored(value: object, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("DEBUG", logger="tracing.sqs"):
        header, message_id = sqs.extract(
            {"messageId": "m", "attributes": {"AWSTraceHeader": value}}
        )
    assert header is None
    assert message_id == "m"
    if value is not None:
        assert len([r for r in caplog.records if "invalid AWSTraceHeader" in r.message]) == 1


@pytest.mark.parametrize("message", [None, "text", [], {"attributes": "x"}, {"Attributes": []}])
def test_unexpected_shapes_extract_nothing(message: Any) -> None:
    assert sqs.extract(message)[0] is None


def test_inject_single_message() -> None:
    params: dict[str, Any] = {"QueueUrl": "u", "MessageBody": "b"}
    assert sqs.inject(params, TraceHeader(ROOT, PARENT, "1")) is params
    assert params["MessageSystemAttributes"] == {
        "AWSTraceHeader": {"DataType": "String", "StringValue": HEADER}
    }


def test_inject_keeps_the_callers_value_and_does_not_mutate_nested_dicts() -> None:
    mine = {"AWSTraceHeader": {"DataType": "String", "StringValue": "Root=mine"}}
    params: dict[str, Any] = {"MessageBody": "b", "MessageSystemAttributes": mine}
    sqs.inject(params, TraceHeader(ROOT, PARENT, "1"))
    assert params["MessageSystemAttributes"] is mine
    assert mine == {"AWSTraceHeader": {"DataType": "String", "StringValue": "Root=mine"}}


def test_inject_batch_entries() -> None:
    first = {"Id": "1", "MessageBody": "a"}
    caller_set = {
        "Id": "2",
        "MessageBody": "b",
        "MessageSystemAttributes": {"AWSTraceHeader": {"DataType": "String", "StringValue": "x"}},
    }
    params: dict[str, Any] = {"QueueUrl": "u", "Entries": [first, caller_set]}
    sqs.inject(params, TraceHeader(ROOT, PARENT, "1"))
    injected, kept = params["Entries"]
    assert injected["MessageSystemAttributes"]["AWSTraceHeader"]["StringValue"] == HEADER
    assert "MessageSystemAttributes" not in first  # the caller's dict is untouched
    assert kept is caller_set


def test_inject_never_touches_message_attributes() -> None:
    attributes = {f"a{i}": {"DataType": "String", "StringValue": "v"} for i in range(10)}
    params: dict[str, Any] = {"MessageBody": "b", "MessageAttributes": attributes}
    sqs.inject(params, TraceHeader(ROOT, PARENT, "1"))
    assert params["MessageAttributes"] is attributes
    assert len(attributes) == 10


def test_inject_without_a_trace_adds_nothing() -> None:
    params: dict[str, Any] = {"MessageBody": "b"}
    assert sqs.inject(params) == {"MessageBody": "b"}


def test_receive_asks_for_the_header_once() -> None:
    params: dict[str, Any] = {"QueueUrl": "u", "AttributeNames": ["SentTimestamp"]}
    sqs._on_receive(params)
    assert params["AttributeNames"] == ["SentTimestamp", "AWSTraceHeader"]
    assert params["MessageSystemAttributeNames"] == ["AWSTraceHeader"]
    assert params["MessageAttributeNames"] == ["traceparent"]
    already = {
        "MessageSystemAttributeNames": ["All"],
        "AttributeNames": ["AWSTraceHeader"],
        "MessageAttributeNames": ["All"],
    }
    sqs._on_receive(already)
    assert already == {
        "MessageSystemAttributeNames": ["All"],
        "AttributeNames": ["AWSTraceHeader"],
        "MessageAttributeNames": ["All"],
    }


def _event(*ids: str | None, fifo: bool = False) -> dict[str, Any]:
    arn = "arn:aws:sqs:us-east-1:123456789012:q" + (".fifo" if fifo else "")
    return {
        "Records": [
            {"messageId": i, "body": i, "eventSourceARN": arn} if i is not None else {"body": "x"}
            for i in ids
        ]
    }


def _fail_on(*bad: str) -> Any:
    seen: list[str] = []

    def fn(record: dict[str, Any]) -> None:
        seen.append(record["body"])
        if record["body"] in bad:
            raise ValueError(record["body"])

    fn.seen = seen  # type: ignore[attr-defined]
    return fn


def test_process_batch_reports_only_failures_and_runs_every_record() -> None:
    fn = _fail_on("b")
    assert sqs.process_batch(_event("a", "b", "c"), fn) == {
        "batchItemFailures": [{"itemIdentifier": "b"}]
    }
    assert fn.seen == ["a", "b", "c"]


def test_process_batch_fifo_stops_at_the_first_failure() -> None:
    fn = _fail_on("b")
    result = sqs.process_batch(_event("a", "b", "c", fifo=True), fn)
    assert result == {"batchItemFailures": [{"itemIdentifier": "b"}, {"itemIdentifier": "c"}]}
    assert fn.seen == ["a", "b"]


def test_process_batch_without_message_id_fails_the_whole_batch() -> None:
    fn = _fail_on("x")
    with pytest.raises(RuntimeError, match="no messageId"):
        sqs.process_batch(_event("a", None), fn)
    assert fn.seen == ["a", "x"]


@pytest.mark.parametrize("event", [None, {}, {"Records": "x"}, []])
def test_process_batch_rejects_non_sqs_events(event: Any) -> None:
    with pytest.raises(TypeError, match="Records"):
        sqs.process_batch(event, lambda record: None)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=10,
)
_header_text = st.one_of(
    st.text(max_size=120),
    st.builds(
        lambda root, parent, sampled: f"Root={root};Parent={parent};Sampled={sampled}",
        st.sampled_from([ROOT, "dummy", "1-" + "f" * 33]),
        st.sampled_from([PARENT, "x" * 16, ""]),
        st.sampled_from(["0", "1", "?", "2"]),
    ),
)
_records = st.one_of(
    _json,
    st.fixed_dictionaries(
        {},
        optional={
            "messageId": st.one_of(st.text(max_size=40), st.integers()),
            "MessageId": st.text(max_size=40),
            "attributes": st.one_of(
                _json, st.fixed_dictionaries({"AWSTraceHeader": st.one_of(_header_text, _json)})
            ),
            "Attributes": st.fixed_dictionaries({"AWSTraceHeader": _header_text}),
            "messageAttributes": st.one_of(
                _json,
                st.fixed_dictionaries(
                    {"traceparent": st.fixed_dictionaries({"stringValue": st.text(max_size=60)})}
                ),
            ),
            "body": st.one_of(
                st.text(max_size=80),
                st.builds(
                    lambda h: json.dumps(
                        {
                            "Type": "Notification",
                            "MessageAttributes": {"AWSTraceHeader": {"Value": h}},
                        }
                    ),
                    _header_text,
                ),
            ),
            "eventSourceARN": st.text(max_size=60),
        },
    ),
)


# NOTE: one listener for all the examples, on purpose (hence the health check
# suppressed): configure() keeps its first configuration, so every example sends
# to the listener of the first. Without one, 1,500 examples went to 127.0.0.1:2000,
# into whatever daemon the developer runs there.
@settings(
    max_examples=1500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(_records)
def test_fuzz_consume_never_changes_the_outcome(
    daemon: testing.DaemonListener, record: Any
) -> None:
    tracing.configure(service="fuzz")
    ran: list[int] = []
    with sqs.consume(record) as span:
        ran.append(1)
    assert ran == [1]
    assert span is not None
    header, _ = sqs.extract(record)
    if header is not None:
        assert header.root.startswith("1-")
    with pytest.raises(KeyError), sqs.consume(record):
        raise KeyError("boom")
