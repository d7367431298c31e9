"""The propagation rule through the real awslambdaric, on both backends."""

from __future__ import annotations

from typing import Any

import pytest

from tracing import testing
from tracing._header import new_id, new_trace_id

from .conftest import LaunchFn

pytestmark = pytest.mark.integration

LINEAGE = "Lineage=a87bd80c:3"


def _invoke(function: Any, sampled: str) -> tuple[str, str, dict[str, Any]]:
    root, parent = new_trace_id(), new_id()
    header = f"Root={root};Parent={parent};Sampled={sampled};{LINEAGE}"
    result = function.invoke({}, trace_header=header)
    assert result.ok, result.error
    return root, parent, result.payload


def test_every_outgoing_header_follows_the_rule(
    launch: LaunchFn, aws: Any, daemon: testing.DaemonListener
) -> None:
    url = aws.client("sqs").create_queue(QueueName=f"h-{new_id()}")["QueueUrl"]
    function = launch("headers_app.handler", QUEUE_URL=url)
    root, _, first = _invoke(function, "1")
    unsampled_root, unsampled_parent, second = _invoke(function, "0")
    documents = daemon.sync()
    for document in documents:
        assert testing.check_document(document) == []

    # During init no trace exists: nothing is passed on, on either carrier.
    assert first["init"] == [{"http": None, "message": None}]

    # Sampled: the invocation's trace, the call's own subsegment, its Lineage.
    calls = {
        e["aws"]["operation"]: e["id"]
        for d in documents
        if d["trace_id"] == root and d["name"] == "## handler"
        for e in testing.iter_entities(d)
        if e.get("namespace") == "aws"
    }
    send = f"Root={root};Parent={calls['SendMessage']};Sampled=1;{LINEAGE}"
    get = f"Root={root};Parent={calls['GetParameter']};Sampled=1;{LINEAGE}"
    assert first["wire"] == [{"http": send, "message": send}, {"http": get, "message": None}]

    # Unsampled: its own Root and Parent, Sampled=0, the same Lineage; nothing sent.
    own = f"Root={unsampled_root};Parent={unsampled_parent};Sampled=0;{LINEAGE}"
    assert second["wire"] == [{"http": own, "message": own}, {"http": own, "message": None}]
    assert [d for d in documents if d["trace_id"] == unsampled_root] == []
