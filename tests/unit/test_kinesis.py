"""tracing.kinesis pieces that need no network: extract, inject, batches, fuzzing."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tracing
from tracing import kinesis, testing
from tracing._header import TraceHeader

ROOT = "1-5759e988-bd862e3fe1be46a994272793"
PARENT = "53995c3f42cd8ad8"
HEADER = f"Root={ROOT};Parent={PARENT};Sampled=1"
CONTEXT = json.dumps({"_tracing": {"AWSTraceHeader": HEADER}, "a": 1}).encode()


def _record(sequence: str | None, data: bytes = b"{}", **extra: Any) -> dict[str, Any]:
    inner: dict[str, Any] = {"data": base64.b64encode(data).decode()}
    if sequence is not None:
        inner["sequenceNumber"] = sequence
    return {"kinesis": inner, "eventSource": "aws:kinesis", **extra}


def test_extract_from_a_lambda_record_and_a_get_records_record() -> None:
    assert kinesis.extract(_record("49", CONTEXT)) == (TraceHeader(ROOT, PARENT, "1"), "49")
    assert kinesis.extract({"SequenceNumber": "50", "Data": CONTEXT}) == (
        TraceHeader(ROOT, PARENT, "1"),
        "50",
    )
    assert kinesis.extract({"SequenceNumber": "51", "Data": b"text"}) == (None, "51")


@pytest.mark.parametrize(
    "record", [None, "x", [], {"kinesis": "x"}, {"kinesis": {"sequenceNumber": 5, "data": 5}}]
)
def test_unexpected_shapes_extract_nothing(record: Any) -> None:
    assert kinesis.extract(record) == (None, None)


def test_inject_put_records_copies_the_callers_records() -> None:
    mine = {"Data": b'{"a": 1}', "PartitionKey": "k"}
    params: dict[str, Any] = {
        "StreamName": "s",
        "Records": [mine, {"Data": b"x", "PartitionKey": "k"}],
    }
    kinesis.inject(params, TraceHeader(ROOT, PARENT, "1"))
    assert mine == {"Data": b'{"a": 1}', "PartitionKey": "k"}
    assert json.loads(params["Records"][0]["Data"])["_tracing"] == {"AWSTraceHeader": HEADER}
    assert params["Records"][1]["Data"] == b"x"


def test_inject_without_a_trace_adds_nothing() -> None:
    params: dict[str, Any] = {"Data": b"{}", "PartitionKey": "k"}
    assert kinesis.inject(params) == {"Data": b"{}", "PartitionKey": "k"}


@pytest.mark.usefixtures("in_lambda", "daemon")
@pytest.mark.parametrize(
    ("option", "expect"), [(None, False), ("kinesis:s", True), ("kinesis:t", False)]
)
def test_the_hook_follows_the_option(
    monkeypatch: pytest.MonkeyPatch, option: str | None, expect: bool
) -> None:
    tracing.configure(payload_context=option)
    monkeypatch.setenv("_X_AMZN_TRACE_ID", testing.trace_header())
    params: dict[str, Any] = {"StreamName": "s", "Data": b"{}", "PartitionKey": "k"}
    tracing.handler(lambda e, c: kinesis.HANDLERS["PutRecord"](params))({}, testing.FakeContext())
    assert params["Data"].startswith(b'{"_tracing"') is expect


def _fail_on(*bad: str) -> Any:
    seen: list[str] = []

    def fn(record: dict[str, Any]) -> None:
        seen.append(record["kinesis"].get("sequenceNumber"))
        if record["kinesis"].get("sequenceNumber") in bad:
            raise ValueError("bad")

    fn.seen = seen  # type: ignore[attr-defined]
    return fn


def test_process_batch_stops_at_the_first_failure_and_reports_it_alone() -> None:
    fn = _fail_on("2", "3")
    event = {"Records": [_record(n) for n in ("1", "2", "3", "4")]}
    assert kinesis.process_batch(event, fn) == {"batchItemFailures": [{"itemIdentifier": "2"}]}
    assert fn.seen == ["1", "2"]
    assert kinesis.process_batch({"Records": [_record("1")]}, fn) == {"batchItemFailures": []}


def test_process_batch_without_a_sequence_number_fails_the_batch() -> None:
    fn = _fail_on(None)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="sequenceNumber"):
        kinesis.process_batch({"Records": [_record("1"), _record(None), _record("3")]}, fn)
    assert fn.seen == ["1", None]


@pytest.mark.parametrize(
    "event",
    [None, {}, {"Records": "x"}, [], {"Records": [{"eventSource": "aws:dynamodb"}]}],
)
def test_process_batch_rejects_other_events(event: Any) -> None:
    with pytest.raises(TypeError):
        kinesis.process_batch(event, lambda record: None)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=10,
)
_datas = st.one_of(
    st.binary(max_size=60),
    st.builds(
        lambda value: json.dumps({"_tracing": value, "b": 1}).encode(),
        st.one_of(_json, st.fixed_dictionaries({"AWSTraceHeader": st.text(max_size=90)})),
    ),
)
_records = st.one_of(
    _json,
    st.builds(
        lambda seq, data, arn: {
            "kinesis": {"sequenceNumber": seq, "data": base64.b64encode(data).decode()},
            "eventSourceARN": arn,
        },
        st.one_of(st.text(max_size=30), st.integers()),
        _datas,
        st.text(max_size=60),
    ),
    st.fixed_dictionaries({"SequenceNumber": st.text(max_size=10), "Data": _datas}),
)


@settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(_records)
def test_fuzz_consume_never_changes_the_outcome(
    daemon: testing.DaemonListener, record: Any
) -> None:
    tracing.configure(service="fuzz")
    ran: list[int] = []
    with kinesis.consume(record):
        ran.append(1)
    assert ran == [1]
    with pytest.raises(KeyError), kinesis.consume(record):
        raise KeyError("boom")
