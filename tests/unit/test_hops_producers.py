"""The limits of the hops beyond SQS: EventBridge, Step Functions and SNS carriers."""

from __future__ import annotations

import copy
import logging
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tracing
from tracing import _eventbridge, _sns, _stepfunctions, testing
from tracing._header import TraceHeader, new_id, new_trace_id

ROOT = "1-5759e988-bd862e3fe1be46a994272793"
PARENT = "53995c3f42cd8ad8"
BASE = f"Root={ROOT};Parent={PARENT};Sampled=1"  # 74 characters
TRACEPARENT = f"00-5759e988bd862e3fe1be46a994272793-{PARENT}-01"
#: What a traceparent attribute adds to an SNS message: name, type and value.
ADDED = len("traceparent") + len("String") + len(TRACEPARENT)


def _attrs(count: int) -> dict[str, Any]:
    return {f"a{i}": {"DataType": "String", "StringValue": "v"} for i in range(count)}


# -- EventBridge ------------------------------------------------------------------


def test_put_events_entries_get_the_header_as_copies_and_the_callers_value_stays() -> None:
    mine = {"Source": "s", "DetailType": "d", "TraceHeader": "theirs"}
    bare = {"Source": "s", "DetailType": "d"}
    entries = [bare, mine, "junk"]
    before = copy.deepcopy(entries)
    new = _eventbridge.with_trace_header(entries, BASE)
    assert new == [{**bare, "TraceHeader": BASE}, mine, "junk"]
    assert new is not None
    assert new[1] is mine  # unchanged entries are not copied
    assert entries == before  # nothing of the caller's was mutated


def test_put_events_header_limit_is_500_characters() -> None:
    entry = {"Source": "s", "DetailType": "d"}
    assert _eventbridge.with_trace_header([entry], "x" * 500) == [
        {**entry, "TraceHeader": "x" * 500}
    ]
    assert _eventbridge.with_trace_header([entry], "x" * 501) is None
    assert _eventbridge.with_trace_header([entry], "") is None
    assert _eventbridge.with_trace_header([{**entry, "TraceHeader": "t"}], BASE) is None


@pytest.mark.parametrize(
    "params",
    [{}, {"Entries": None}, {"Entries": "junk"}, {"Entries": [1, None, "x"]}],
)
def test_put_events_handler_never_raises_and_outside_a_trace_writes_nothing(
    params: dict[str, Any],
) -> None:
    before = copy.deepcopy(params)
    _eventbridge.HANDLERS["PutEvents"](params=params)
    assert params == before
    entries = [{"Source": "s", "DetailType": "d"}]
    params = {"Entries": entries}
    _eventbridge.HANDLERS["PutEvents"](params=params)
    assert params["Entries"] is entries
    assert "TraceHeader" not in entries[0]


# -- Step Functions ---------------------------------------------------------------


def _header(*extra: tuple[str, str]) -> TraceHeader:
    return TraceHeader(ROOT, PARENT, "1", tuple(extra))


def test_step_functions_header_kept_whole_up_to_256_characters() -> None:
    lineage = ("Lineage", "a87bd80c:3")
    room = 256 - len(f"{BASE};Lineage=a87bd80c:3;K=")
    header = _header(lineage, ("K", "v" * room))
    assert len(header.to_string()) == 256
    assert _stepfunctions.fit(header) == header.to_string()
    longer = _header(lineage, ("K", "v" * (room + 1)))
    assert _stepfunctions.fit(longer) == f"{BASE};Lineage=a87bd80c:3"


def test_step_functions_too_long_keeps_lineage_then_root_parent_sampled() -> None:
    lineage = ("Lineage", "a87bd80c:3|68fd508a:1")
    header = _header(("K", "v" * 200), lineage)
    assert len(header.to_string()) > 256
    assert _stepfunctions.fit(header) == f"{BASE};Lineage={lineage[1]}"
    long_lineage = _header(("Lineage", "a" * 190))  # 74 + 9 + 190 > 256
    assert _stepfunctions.fit(long_lineage) == BASE
    assert _stepfunctions.fit(_header(("K", "é"))) == BASE  # the field is ASCII only
    assert _stepfunctions.fit(_header(), limit=73) is None  # never a cut value


def test_step_functions_handler_keeps_the_callers_value_and_never_raises() -> None:
    params: dict[str, Any] = {"stateMachineArn": "arn", "traceHeader": ""}
    _stepfunctions.HANDLERS["StartExecution"](params=params)
    assert params["traceHeader"] == ""  # even an empty one is the caller's
    params = {"stateMachineArn": "arn"}
    _stepfunctions.HANDLERS["StartSyncExecution"](params=params)
    assert "traceHeader" not in params  # outside a trace
    _stepfunctions.HANDLERS["StartExecution"](params=None)  # botocore never does; no raise


# -- SNS --------------------------------------------------------------------------


def test_sns_traceparent_only_with_fewer_than_10_attributes() -> None:
    nine, ten = {"Message": "m", "MessageAttributes": _attrs(9)}, {"MessageAttributes": _attrs(10)}
    before = copy.deepcopy([nine, ten])
    [nine_out, ten_out], skipped = _sns.add_traceparent([nine, ten], TRACEPARENT, batch=False)
    assert nine_out["MessageAttributes"]["traceparent"] == {
        "DataType": "String",
        "StringValue": TRACEPARENT,
    }
    assert len(nine_out["MessageAttributes"]) == 10
    assert ten_out is ten
    assert skipped == 1
    assert [nine, ten] == before


def test_sns_callers_traceparent_is_kept_and_is_no_skip() -> None:
    entry = {"MessageAttributes": {"traceparent": {"DataType": "String", "StringValue": "x"}}}
    assert _sns.add_traceparent([entry], TRACEPARENT, batch=False) == ([entry], 0)


def test_sns_message_size_counts_body_subject_and_attributes() -> None:
    attributes = {"k": {"DataType": "Binary", "BinaryValue": b"\x00" * 10}}
    fixed = len("s") + len("k") + len("Binary") + 10
    limit = _sns.MAX_MESSAGE_BYTES - ADDED - fixed
    body = "x" * (limit - 2) + "é"  # UTF-8 bytes count, not characters
    fits = {"Message": body, "Subject": "s", "MessageAttributes": attributes}
    over = {**fits, "Message": body + "x"}
    [out], skipped = _sns.add_traceparent([fits], TRACEPARENT, batch=False)
    assert "traceparent" in out["MessageAttributes"]
    assert skipped == 0
    assert _sns.add_traceparent([over], TRACEPARENT, batch=False) == ([over], 1)


def test_sns_batch_total_counts_every_message() -> None:
    half = (_sns.MAX_MESSAGE_BYTES - ADDED) // 2
    entries = [{"Id": "a", "Message": "x" * half}, {"Id": "b", "Message": "x" * half}]
    new, skipped = _sns.add_traceparent(entries, TRACEPARENT, batch=True)
    assert ["MessageAttributes" in e for e in new] == [True, False]
    assert skipped == 1
    # Each alone fits: outside a batch both would get it.
    alone = [_sns.add_traceparent([e], TRACEPARENT, batch=False)[1] for e in entries]
    assert alone == [0, 0]


def test_sns_malformed_entries_are_left_to_botocore() -> None:
    entries: list[Any] = ["junk", {"MessageAttributes": ["a"]}, {"MessageAttributes": {"a": 1}}]
    assert _sns.add_traceparent(entries, TRACEPARENT, batch=True) == (entries, 0)


message_attributes = st.dictionaries(
    st.text(min_size=1, max_size=8),
    st.fixed_dictionaries(
        {"DataType": st.sampled_from(["String", "Number", "Binary"])},
        optional={"StringValue": st.text(max_size=40), "BinaryValue": st.binary(max_size=40)},
    ),
    max_size=12,
)
messages = st.fixed_dictionaries(
    {"Message": st.text(max_size=50) | st.integers(0, 270_000).map(lambda n: "x" * n)},
    optional={"MessageAttributes": message_attributes, "Subject": st.text(max_size=20)},
)


@settings(max_examples=100, deadline=None)
@given(entries=st.lists(messages, max_size=10), batch=st.booleans())
def test_sns_never_makes_a_valid_message_or_batch_invalid(
    entries: list[dict[str, Any]], batch: bool
) -> None:
    def size(entry: dict[str, Any]) -> int:
        return _sns._size(entry) or 0

    before = copy.deepcopy(entries)
    new, skipped = _sns.add_traceparent(entries, TRACEPARENT, batch=batch)
    assert entries == before
    added = 0
    for old, out in zip(entries, new, strict=True):
        if out is old:
            continue
        added += 1
        attributes = out["MessageAttributes"]
        assert len(attributes) <= _sns.MAX_MESSAGE_ATTRIBUTES
        assert "traceparent" not in (old.get("MessageAttributes") or {})
        assert size(out) == size(old) + ADDED <= _sns.MAX_MESSAGE_BYTES
    eligible = sum(1 for e in entries if "traceparent" not in (e.get("MessageAttributes") or {}))
    assert added + skipped == eligible
    if batch and added:
        assert sum(size(e) for e in new) <= _sns.MAX_MESSAGE_BYTES


def test_sns_handlers_skip_sms_and_push_endpoints_and_never_raise(
    daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("LAMBDA_TASK_ROOT", str(tmp_path))
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "producer")
    tracing.configure(backend="otel")
    publish, batch = _sns.HANDLERS["Publish"], _sns.HANDLERS["PublishBatch"]
    endpoint = "arn:aws:sns:us-east-1:123456789012:endpoint/GCM/app/0f8e4a"

    @tracing.handler
    def handler(event: Any, context: Any) -> list[dict[str, Any]]:
        cases: list[dict[str, Any]] = [
            {"TopicArn": "arn:aws:sns:us-east-1:123456789012:t", "Message": "m"},
            {"PhoneNumber": "+15555550100", "Message": "m"},
            {"TargetArn": endpoint, "Message": "m"},
            {"TopicArn": "t", "Message": "m", "MessageAttributes": "junk"},
        ]
        for params in cases:
            publish(params=params)
        junk: dict[str, Any] = {"PublishBatchRequestEntries": "junk"}
        batch(params=junk)
        return [*cases, junk]

    monkeypatch.setenv("_X_AMZN_TRACE_ID", f"Root={new_trace_id()};Parent={new_id()};Sampled=1")
    topic, sms, push, junk, junk_batch = handler({}, testing.FakeContext())
    assert set(topic["MessageAttributes"]) == {"traceparent"}
    assert "MessageAttributes" not in sms
    assert "MessageAttributes" not in push
    assert junk["MessageAttributes"] == "junk"
    assert junk_batch["PublishBatchRequestEntries"] == "junk"


def test_sns_xray_backend_adds_nothing(
    daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("LAMBDA_TASK_ROOT", str(tmp_path))
    tracing.configure(backend="xray")
    params: dict[str, Any] = {"TopicArn": "t", "Message": "m"}
    handler = tracing.handler(lambda e, c: _sns.HANDLERS["Publish"](params=params))
    monkeypatch.setenv("_X_AMZN_TRACE_ID", f"Root={new_trace_id()};Parent={new_id()};Sampled=1")
    handler({}, testing.FakeContext())
    assert params == {"TopicArn": "t", "Message": "m"}


class Hostile(dict):  # type: ignore[type-arg]
    """Parameters that fail when read (botocore never passes such, a user's handler might)."""

    def get(self, *_: Any) -> Any:
        raise RuntimeError("boom")

    def __contains__(self, _: object) -> bool:
        raise RuntimeError("boom")


def test_a_failure_inside_a_handler_is_one_debug_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="tracing"):
        _eventbridge.HANDLERS["PutEvents"](params=Hostile())
        _stepfunctions.HANDLERS["StartExecution"](params=Hostile())
        _sns.HANDLERS["Publish"](params=Hostile())
        _sns.HANDLERS["PublishBatch"](params=Hostile())
    assert [r.levelno for r in caplog.records] == [logging.DEBUG] * 4
    assert all(r.exc_info is not None for r in caplog.records)
