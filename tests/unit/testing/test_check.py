"""``tracing.testing.check_document`` rejects what X-Ray rejects."""

from __future__ import annotations

import math
import time
from typing import Any

import pytest

from tracing import testing
from tracing._header import new_id, new_trace_id
from tracing.exporters.xray_udp import HEADER


def _doc(**fields: Any) -> dict[str, Any]:
    now = time.time()
    doc: dict[str, Any] = {
        "name": "orders-api",
        "id": new_id(),
        "trace_id": new_trace_id(),
        "start_time": now,
        "end_time": now + 1,
    }
    doc.update(fields)
    return doc


def test_a_valid_document_passes() -> None:
    doc = _doc(
        annotations={"ColdStart": True, "n": 1, "ratio": 0.5},
        metadata={"default": {"order": {"items": [1, 2]}}},
        cause={"working_directory": "/", "exceptions": [{"id": new_id(), "type": "E"}]},
        subsegments=[_doc(name="Ünïcode näme 1", namespace="aws", aws={"operation": "Get"})],
    )
    assert testing.check_document(doc) == []


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"annotations": {"ratio": math.nan}}, "not JSON"),
        ({"metadata": {"default": {"x": math.inf}}}, "not JSON"),
        ({"metadata": {"default": {"x": 10**400}}}, "beyond a float64"),
        ({"metadata": {"default": {1: "x"}}}, "not a string"),
        ({"metadata": {"default": 5}}, "must be an object"),
        ({"metadata": {"AWS.xray": {}}}, "reserved"),
        ({"annotations": {"has space": 1}}, "annotation key"),
        ({"annotations": {"k" * 501: 1}}, "annotation key"),
        ({"annotations": {"list": [1]}}, "has type list"),
        ({"annotations": {"long": "v" * 1001}}, "over 1000"),
        ({"annotations": {f"k{i}": i for i in range(51)}}, "more than 50"),
        ({"name": "tab\there"}, "refuses"),
        ({"name": "back\\slash"}, "refuses"),
        ({"name": "x" * 201}, "1-200"),
        ({"name": ""}, "1-200"),
        ({"id": "XYZ"}, "bad id"),
        ({"trace_id": "1-abc"}, "bad trace_id"),
        ({"trace_id": new_trace_id(time.time() - 31 * 86400)}, "older than 30 days"),
        ({"trace_id": new_trace_id(time.time() + 3600)}, "future"),
        ({"type": "subsegment"}, "without a parent_id"),
        ({"parent_id": "1234"}, "bad parent_id"),
        ({"in_progress": True}, "exactly one"),
        ({"end_time": 1.0}, "ends before"),
        ({"fault": "yes"}, "must be a boolean"),
        ({"namespace": "db"}, "namespace"),
        ({"cause": "short"}, "16 characters"),
        ({"cause": {"exceptions": [{"message": "no id"}]}}, "16-character id"),
        ({"cause": {"exceptions": [{"id": "a" * 16, "stack": [{"line": "1"}]}]}}, "integer"),
        ({"user": "u" * 251}, "user"),
        ({"metadata": {"default": {"blob": "x" * 70_000}}}, "bytes, over"),
    ],
)
def test_each_rule(fields: dict[str, Any], problem: str) -> None:
    problems = testing.check_document(_doc(**fields))
    assert any(problem in p for p in problems), problems


def test_nested_entities_are_checked_too() -> None:
    doc = _doc(subsegments=[_doc(subsegments=[_doc(annotations={"r": math.inf}, id="bad")])])
    problems = testing.check_document(doc)
    assert any("bad id" in p for p in problems)
    assert any("not JSON" in p for p in problems)


def test_parse_datagram_is_strict() -> None:
    assert testing.parse_datagram(HEADER + b'{"a": 1}') == {"a": 1}
    assert testing.parse_datagram(HEADER + b'{"a": NaN}') is None
    assert testing.parse_datagram(HEADER + b'{"a": -Infinity}') is None
    assert testing.parse_datagram(HEADER + b"[1]") is None
    assert testing.parse_datagram(b'{"a": 1}') is None
    assert testing.parse_datagram(HEADER + b"\xff") is None


def test_listener_counts_non_strict_documents_as_garbage() -> None:
    import socket

    with testing.DaemonListener() as daemon, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        host, _, port = daemon.address.rpartition(":")
        s.sendto(HEADER + b'{"ratio": NaN}', (host, int(port)))
        s.sendto(HEADER + b'{"ok": 1}', (host, int(port)))
        assert daemon.sync() == [{"ok": 1}]
        assert daemon.garbage == [HEADER + b'{"ratio": NaN}']
