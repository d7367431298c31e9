"""Pure logic of the local event sources: batch checkpoints and Lineage."""

from __future__ import annotations

from typing import Any

from tracing.local.runtime import InvokeResult
from tracing.local.runtime._streams import _failures, _jsonable
from tracing.local.runtime.event_source import (
    Delivery,
    _function_hash,
    describe_delivery,
    lineage_count,
    next_lineage,
)

BATCH = ["11", "12", "13"]


def _result(ok: bool, payload: Any = None) -> InvokeResult:
    return InvokeResult("request-id", ok, payload, None if ok else {"errorType": "E"}, 1.0, False)


def test_a_batch_is_done_up_to_its_lowest_failed_record() -> None:
    assert _failures(_result(True, None), BATCH, True) == 3
    assert _failures(_result(True, {"batchItemFailures": []}), BATCH, True) == 3
    failed = {"batchItemFailures": [{"itemIdentifier": "13"}, {"itemIdentifier": "12"}]}
    assert _failures(_result(True, failed), BATCH, True) == 1
    assert _failures(_result(True, failed), BATCH, False) == 3  # not reported: success


def test_an_error_or_an_unknown_identifier_fails_the_whole_batch() -> None:
    assert _failures(_result(False), BATCH, True) == 0
    for items in ([{"itemIdentifier": "99"}], [{"itemIdentifier": None}], [{}], ["12"]):
        assert _failures(_result(True, {"batchItemFailures": items}), BATCH, True) == 0


def test_next_lineage_counts_the_function_and_keeps_the_others() -> None:
    arn = "arn:aws:lambda:us-east-1:123456789012:function:f"
    mine = _function_hash(arn)
    root = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    header = f"{root};Lineage=0badcafe:3|{mine}:2"
    count, pairs = lineage_count(header, arn)
    assert count == 2
    assert next_lineage(pairs, arn, count) == f"0badcafe:3|{mine}:3"
    assert next_lineage({}, arn, 0) == f"{mine}:1"


def test_records_become_json_as_lambda_sends_them() -> None:
    import datetime

    when = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    record = {"B": b"\x00\x01", "when": when, "list": [b"a"], "n": {"N": "1"}}
    assert _jsonable(record) == {
        "B": "AAE=",
        "when": when.timestamp(),
        "list": ["YQ=="],
        "n": {"N": "1"},
    }


def test_describe_names_stops_and_discarded_records() -> None:
    delivery = Delivery(
        invocations=[
            (
                _result(True),
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
            )
        ],
        stopped=[{"id": "event-1"}],
        discarded=[{"eventID": "shardId-000000000000:7"}],
    )
    assert describe_delivery(delivery).splitlines() == [
        "invocation 1: Lineage=- ok",
        "stopped message event-1: recursive loop detected",
        "discarded record shardId-000000000000:7: retries exhausted",
    ]
