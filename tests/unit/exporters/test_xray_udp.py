from __future__ import annotations

import copy
import errno
import json
import logging
import socket
from typing import Any

import pytest

from tracing import testing
from tracing._header import new_id, new_trace_id
from tracing.exporters.xray_udp import HEADER, MAX_DATAGRAM, UDPEmitter, encode, split_document

TRACE = new_trace_id()


def _segment(children: int, payload: int = 0) -> dict[str, Any]:
    return {
        "name": "big",
        "id": "53995c3f42cd8ad8",
        "trace_id": TRACE,
        "start_time": 1.0,
        "end_time": 2.0,
        "subsegments": [
            {
                "name": f"child-{i}",
                "id": f"{i:016x}",
                "start_time": 1.0,
                "end_time": 1.5,
                "metadata": {"default": {"blob": "x" * payload}},
            }
            for i in range(children)
        ],
    }


def test_small_document_is_one_datagram() -> None:
    assert split_document(_segment(3)) == [encode(_segment(3))]


def test_five_thousand_children_are_split_and_none_lost() -> None:
    parts = [json.loads(p) for p in split_document(_segment(5000))]
    assert len(parts) > 1
    assert all(len(HEADER) + len(encode(p)) <= MAX_DATAGRAM for p in parts)
    ids = [e["id"] for p in parts for e in testing.iter_entities(p)]
    assert len(ids) == 5001
    assert len(set(ids)) == 5001
    for part in parts[1:]:
        assert part["type"] == "subsegment"
        assert part["trace_id"] == TRACE
        assert part["parent_id"] == "53995c3f42cd8ad8"
    assert all(not testing.check_document(p) for p in parts)


def test_oversized_single_entity_keeps_the_entity_and_notes_truncation() -> None:
    doc = _segment(0)
    doc["metadata"] = {"default": {"blob": "y" * 200_000}}
    [part] = [json.loads(p) for p in split_document(doc)]
    assert part["id"] == "53995c3f42cd8ad8"
    assert part["metadata"]["tracing"]["truncated"]["metadata_bytes"] > 200_000


def test_oversized_children_are_detached_and_truncated() -> None:
    parts = [json.loads(p) for p in split_document(_segment(3, payload=70_000))]
    assert [p["id"] for p in parts] == ["53995c3f42cd8ad8", *(f"{i:016x}" for i in range(3))]


def test_cutting_leaves_the_callers_document_whole_so_a_retry_sends_everything() -> None:
    doc = _segment(3, payload=70_000)
    doc["metadata"] = {"default": {"blob": "y" * 70_000}}
    doc["cause"] = {"exceptions": [{"id": "0123456789abcdef", "message": "m" * 70_000}]}
    before = copy.deepcopy(doc)
    first = split_document(doc)
    assert doc == before
    assert split_document(doc) == first  # what UDPEmitter.send's retry would send


def test_emitter_sends_daemon_datagrams() -> None:
    with testing.DaemonListener() as daemon:
        emitter = UDPEmitter(daemon.address)
        emitter.send(_segment(2))
        [doc] = daemon.wait_for(1)
        emitter.close()
    assert doc["name"] == "big"
    assert daemon.garbage == []
    assert emitter.sent == 1


def test_send_to_nowhere_never_raises() -> None:
    # Nothing listens on this port: on Linux, ECONNREFUSED may surface on a later
    # send. Either way the emitter swallows it.
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    address = f"127.0.0.1:{probe.getsockname()[1]}"
    probe.close()
    emitter = UDPEmitter(address)
    for _ in range(5):
        emitter.send(_segment(1))
    emitter.close()
    assert emitter.sent + emitter.failed == 5


class _FailingSocket:
    def __init__(self, code: int) -> None:
        self.code = code

    def send(self, data: bytes) -> int:
        raise OSError(self.code, "injected")

    def close(self) -> None:
        return None


@pytest.mark.parametrize("code", [errno.EMSGSIZE, errno.ENOBUFS, errno.EPERM])
def test_socket_errors_are_logged_once(
    code: int, caplog: pytest.LogCaptureFixture, daemon: testing.DaemonListener
) -> None:
    emitter = UDPEmitter(daemon.address)
    emitter._sock = _FailingSocket(code)  # type: ignore[assignment]
    with caplog.at_level(logging.DEBUG, logger="tracing.emitter"):
        for _ in range(10):
            emitter.send(_segment(1))
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert emitter.failed == 10


def test_unserializable_values_fall_back_to_repr() -> None:
    doc = _segment(0)
    doc["metadata"] = {"default": {"obj": object()}}
    [part] = split_document(doc)
    assert b"object object at" in part


def test_invalid_values_that_slipped_in_are_converted_not_lost() -> None:
    import math

    cyclic: list[object] = []
    cyclic.append(cyclic)
    doc = {
        "name": "svc",
        "id": new_id(),
        "trace_id": new_trace_id(),
        "start_time": 1.0,
        "end_time": 2.0,
        "annotations": {"ratio": math.nan, "ok": 1},
        "metadata": {"default": {"inf": math.inf, "big": 10**5000, (1, 2): "k", "c": cyclic}},
        "subsegments": [{"name": "child", "id": new_id(), "start_time": 1.0, "end_time": 1.5}],
    }
    parsed = testing.parse_datagram(HEADER + encode(doc))
    assert parsed is not None
    assert parsed["annotations"] == {"ok": 1}
    assert parsed["metadata"]["default"]["inf"] == "Infinity"
    assert parsed["metadata"]["default"]["(1, 2)"] == "k"
    assert parsed["metadata"]["default"]["c"] == ["<cycle>"]
    assert parsed["subsegments"][0]["name"] == "child"
    parsed["trace_id"] = doc["trace_id"]
    assert testing.check_document(parsed) == []


def test_a_structurally_odd_document_still_encodes() -> None:
    doc = {"name": "svc", "id": new_id(), "trace_id": new_trace_id(), "start_time": 1.0}
    doc["subsegments"] = {"not": "a list"}  # type: ignore[assignment]
    doc["end_time"] = float("nan")
    parsed = testing.parse_datagram(HEADER + encode(doc))
    assert parsed is not None
    assert parsed["name"] == "svc"
