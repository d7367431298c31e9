"""tracing.dynamodb pieces that need no network: extract, inject, batches, fuzzing."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tracing
from tracing import dynamodb, testing
from tracing._header import TraceHeader

ROOT = "1-5759e988-bd862e3fe1be46a994272793"
PARENT = "53995c3f42cd8ad8"
HEADER = f"Root={ROOT};Parent={PARENT};Sampled=1"
CONTEXT = {"M": {"AWSTraceHeader": {"S": HEADER}}}
OTHER = {"M": {"traceparent": {"S": f"00-{ROOT[2:10]}{ROOT[11:]}-{'1' * 16}-01"}}}


def _record(
    sequence: str | None, event: str = "INSERT", new: Any = None, old: Any = None
) -> dict[str, Any]:
    change: dict[str, Any] = {}
    if sequence is not None:
        change["SequenceNumber"] = sequence
    if new is not None:
        change["NewImage"] = new
    if old is not None:
        change["OldImage"] = old
    return {"eventName": event, "eventSource": "aws:dynamodb", "dynamodb": change}


def test_extract_reads_the_new_image_then_the_old_one_for_remove() -> None:
    new = {"sku": {"S": "a"}, "_tracing": CONTEXT}
    assert dynamodb.extract(_record("1", new=new)) == (TraceHeader(ROOT, PARENT, "1"), "1")
    assert dynamodb.extract(_record("2", "REMOVE", old=new))[0] == TraceHeader(ROOT, PARENT, "1")
    assert dynamodb.extract(_record("3", "REMOVE", new=new))[0] is None


def test_a_modify_keeping_the_same_context_is_stale() -> None:
    old = {"sku": {"S": "a"}, "_tracing": CONTEXT}
    same = {**old, "n": {"N": "1"}}
    assert dynamodb.extract(_record("1", "MODIFY", new=same, old=old)) == (None, "1")
    rewritten = {**old, "_tracing": OTHER}
    assert dynamodb.extract(_record("2", "MODIFY", new=rewritten, old=old))[0] == TraceHeader(
        ROOT, "1" * 16, "1"
    )


def test_inject_batch_write_copies_and_skips_deletes_and_the_callers_value() -> None:
    put = {"PutRequest": {"Item": {"sku": {"S": "a"}}}}
    mine = {"PutRequest": {"Item": {"sku": {"S": "b"}, "_tracing": {"S": "x"}}}}
    delete = {"DeleteRequest": {"Key": {"sku": {"S": "c"}}}}
    params: dict[str, Any] = {"RequestItems": {"t": [put, mine, delete]}}
    dynamodb.inject(params, TraceHeader(ROOT, PARENT, "1"))
    new_put, kept, kept_delete = params["RequestItems"]["t"]
    assert new_put["PutRequest"]["Item"]["_tracing"] == CONTEXT
    assert put == {"PutRequest": {"Item": {"sku": {"S": "a"}}}}
    assert kept is mine
    assert kept_delete is delete


def test_inject_never_touches_update_item() -> None:
    params: dict[str, Any] = {
        "TableName": "t",
        "Key": {"sku": {"S": "a"}},
        "UpdateExpression": "SET a = :a",
    }
    before = dict(params)
    dynamodb.inject(params, TraceHeader(ROOT, PARENT, "1"))
    assert params == before
    assert "UpdateItem" not in dynamodb.HANDLERS


@pytest.mark.usefixtures("in_lambda", "daemon")
def test_the_hook_follows_the_option_per_table(monkeypatch: pytest.MonkeyPatch) -> None:
    tracing.configure(payload_context=["dynamodb:orders"])
    monkeypatch.setenv("_X_AMZN_TRACE_ID", testing.trace_header())
    tables = ("orders", "arn:aws:dynamodb:us-east-1:1:table/orders", "other")
    puts: list[dict[str, Any]] = [{"TableName": t, "Item": {"sku": {"S": "a"}}} for t in tables]
    batch: dict[str, Any] = {
        "RequestItems": {
            name: [{"PutRequest": {"Item": {"sku": {"S": "a"}}}}] for name in ("orders", "other")
        }
    }

    @tracing.handler
    def write(event: Any, context: Any) -> None:
        for params in puts:
            dynamodb.HANDLERS["PutItem"](params)
        dynamodb.HANDLERS["BatchWriteItem"](batch)

    write({}, testing.FakeContext())
    assert ["_tracing" in p["Item"] for p in puts] == [True, True, False]
    assert "_tracing" in batch["RequestItems"]["orders"][0]["PutRequest"]["Item"]
    assert "_tracing" not in batch["RequestItems"]["other"][0]["PutRequest"]["Item"]


def test_process_batch_stops_at_the_first_failure() -> None:
    seen: list[str] = []

    def fn(record: dict[str, Any]) -> None:
        seen.append(record["dynamodb"]["SequenceNumber"])
        if record["dynamodb"]["SequenceNumber"] == "2":
            raise ValueError("bad")

    event = {"Records": [_record(n) for n in ("1", "2", "3")]}
    assert dynamodb.process_batch(event, fn) == {"batchItemFailures": [{"itemIdentifier": "2"}]}
    assert seen == ["1", "2"]
    with pytest.raises(RuntimeError, match="SequenceNumber"):
        dynamodb.process_batch({"Records": [{"dynamodb": {}}]}, fn)
    with pytest.raises(TypeError):
        dynamodb.process_batch({"Records": [{"eventSource": "aws:kinesis"}]}, fn)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=10,
)
_images = st.one_of(
    _json,
    st.fixed_dictionaries(
        {
            "_tracing": st.one_of(
                _json,
                st.builds(lambda s: {"M": {"AWSTraceHeader": {"S": s}}}, st.text(max_size=90)),
            )
        }
    ),
)
_records = st.one_of(
    _json,
    st.fixed_dictionaries(
        {},
        optional={
            "eventName": st.sampled_from(["INSERT", "MODIFY", "REMOVE", "x"]),
            "eventSourceARN": st.text(max_size=60),
            "dynamodb": st.one_of(
                _json,
                st.fixed_dictionaries(
                    {},
                    optional={
                        "SequenceNumber": st.one_of(st.text(max_size=20), st.integers()),
                        "NewImage": _images,
                        "OldImage": _images,
                    },
                ),
            ),
        },
    ),
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
    with dynamodb.consume(record):
        ran.append(1)
    assert ran == [1]
    with pytest.raises(KeyError), dynamodb.consume(record):
        raise KeyError("boom")
