"""Beside Powertools' Tracer: one tree, through the real awslambdaric.

The function keeps ``Tracer`` (``capture_lambda_handler``, ``capture_method``,
its automatic botocore patch through aws-xray-sdk) and adds ``tracing.handler``,
above or below ``capture_lambda_handler``.
"""

from __future__ import annotations

from typing import Any

import pytest

from tracing import testing
from tracing._header import new_id, new_trace_id, parse
from tracing.local.runtime.aws import LocalAWS

from ..conftest import LaunchFn

pytestmark = pytest.mark.integration


def _entities(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return list(testing.iter_entities(doc))


@pytest.mark.parametrize("handler", ["handler", "outer"])
def test_one_invocation_and_one_span_per_aws_call(
    launch: LaunchFn,
    daemon: testing.DaemonListener,
    aws: LocalAWS,
    handler: str,
) -> None:
    url = aws.client("sqs").create_queue(QueueName=f"pt-{new_id()}")["QueueUrl"]
    function = launch(f"powertools_app.{handler}", QUEUE_URL=url)
    roots = []
    for order in ("o-1", "o-2"):
        root = new_trace_id()
        result = function.invoke(
            {"order": order},
            trace_header=f"Root={root};Parent={new_id()};Sampled=1;Lineage=a87bd80c:1",
        )
        assert result.ok, (result.error, function.logs[-2000:])
        assert result.payload == {"placed": order}
        roots.append(root)
    docs = daemon.settle()
    for doc in docs:
        assert testing.check_document(doc) == [], doc
    [init] = [d for d in docs if d["name"] == "Init"]
    assert "subsegments" not in init  # Powertools' handler subsegment is not init work
    invocations = [d for d in docs if d["name"] != "Init"]
    assert [d["name"] for d in invocations] == [f"## {handler}"] * 2
    assert [d["trace_id"] for d in invocations] == roots
    for doc, cold, order in zip(invocations, (True, False), ("o-1", "o-2"), strict=True):
        names = [e["name"] for e in _entities(doc)]
        assert names.count(f"## {handler}") == 1  # one invocation subsegment
        assert doc["annotations"]["ColdStart"] is cold
        calls = [e for e in _entities(doc) if e.get("namespace") == "aws"]
        assert [c["aws"]["operation"] for c in calls] == ["SendMessage"]
        [validate] = [e for e in _entities(doc) if e["name"] == "validate"]
        [call] = validate["subsegments"]  # recorded once, by the core or the SDK patch
        assert call["aws"]["operation"] == "SendMessage"
        # Powertools' own subsegments and annotations, in the same tree, on both
        # backends (aws-xray-sdk is connected to the core on each).
        assert "## powertools_app.place" in names
        assert doc["annotations"]["order"] == order
        if handler == "handler":  # written after the handler returns: in time only inside
            assert f"{handler} response" in doc["metadata"]["orders"]
    # The message carries the trace on: its call as Parent, Lineage kept.
    sends = {
        d["trace_id"]: next(e for e in _entities(d) if e.get("namespace") == "aws")
        for d in invocations
    }
    messages = testing.receive_messages(aws.client("sqs"), url, 2)
    assert len(messages) == 2
    for message in messages:
        header = message["Attributes"]["AWSTraceHeader"]
        parsed = parse(header)
        assert parsed is not None
        assert parsed.parent == sends[parsed.root]["id"]
        assert header.endswith(";Lineage=a87bd80c:1")
    assert "Traceback" not in function.logs


def test_the_readme_snippet_without_a_service_keeps_powertools_metadata(
    launch: LaunchFn, daemon: testing.DaemonListener
) -> None:
    """``Tracer()`` names no service: Powertools writes its metadata in an empty
    namespace; it lands under the service tracing annotates, on both backends."""
    function = launch("powertools_readme_app.handler")
    roots = []
    for order in ("o-1", "o-2"):
        root = new_trace_id()
        result = function.invoke(
            {"order": order}, trace_header=f"Root={root};Parent={new_id()};Sampled=1"
        )
        assert result.ok, (result.error, function.logs[-2000:])
        assert result.payload == {"placed": order}
        roots.append(root)
    docs = daemon.settle()
    for doc in docs:
        assert testing.check_document(doc) == [], doc
    invocations = [d for d in docs if d["name"] == "## handler"]
    assert [d["trace_id"] for d in invocations] == roots
    for doc, order in zip(invocations, ("o-1", "o-2"), strict=True):
        service = doc["annotations"]["Service"]
        assert service == "traced-app"  # AWS_LAMBDA_FUNCTION_NAME
        assert doc["metadata"][service]["handler response"] == {"placed": order}
        [place] = [e for e in _entities(doc) if e["name"] == "## powertools_readme_app.place_order"]
        assert place["metadata"] == {
            service: {
                "order": {"order": order},
                "powertools_readme_app.place_order response": {"placed": order},
            }
        }
    assert "Traceback" not in function.logs
