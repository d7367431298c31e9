"""Traced functions in the real awslambdaric runtime, against moto's HTTP server."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tracing import testing
from tracing._header import new_id, new_trace_id

from .conftest import LaunchFn

pytestmark = pytest.mark.integration


def _header(sampled: str = "1") -> tuple[str, str, str]:
    root, parent = new_trace_id(), new_id()
    return root, parent, f"Root={root};Parent={parent};Sampled={sampled}"


def _checked(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for doc in docs:
        assert testing.check_document(doc) == [], doc
    return docs


def _tree(entity: dict[str, Any]) -> list[Any]:
    return [entity["name"], [_tree(child) for child in entity.get("subsegments", [])]]


def test_cold_start_replays_init_work_into_the_first_trace(
    launch: LaunchFn, daemon: testing.DaemonListener
) -> None:
    function = launch("traced_app.handler")
    root, parent, header = _header()
    result = function.invoke({}, trace_header=header)
    assert result.ok, result.error
    assert result.payload["currency"] == "EUR"
    init, invocation = _checked(daemon.wait_for(2))

    assert (init["name"], init["trace_id"], init["parent_id"]) == ("Init", root, parent)
    assert init["annotations"] == {"ColdStart": True, "InitType": "on-demand"}
    assert _tree(init) == [
        "Init",
        [["load config", [["ssm", []]]], ["ssm", []], ["sdk warmup", []]],
    ]
    load_config = init["subsegments"][0]
    assert load_config["annotations"] == {"source": "ssm"}
    assert load_config["metadata"] == {
        "default": {"loaded": {"currency": "EUR", "limit": "Infinity"}}
    }
    get_parameter = init["subsegments"][0]["subsegments"][0]
    assert get_parameter["namespace"] == "aws"
    assert get_parameter["aws"]["operation"] == "GetParameter"
    assert init["subsegments"][1]["aws"]["operation"] == "DescribeParameters"
    assert init["subsegments"][2]["annotations"] == {"cache": "warm"}
    assert init["end_time"] <= result.payload["init_done"]

    assert invocation["name"] == "## handler"
    assert (invocation["trace_id"], invocation["parent_id"]) == (root, parent)
    assert invocation["annotations"] == {"ColdStart": True, "Service": "traced-app"}
    assert _tree(invocation) == ["## handler", [["work", [["ssm", []]]]]]
    work = invocation["subsegments"][0]
    assert work["annotations"] == {"mode": "ok"}
    assert work["metadata"] == {"default": {"event": {}}}

    second = function.invoke({}, trace_header=_header()[2])
    assert second.ok
    docs = _checked(daemon.wait_for(3))
    assert len(docs) == 3
    assert docs[2]["name"] == "## handler"
    assert docs[2]["annotations"]["ColdStart"] is False

    logs = function.logs
    assert "discarded" not in logs
    assert "cannot find the current segment" not in logs


def test_init_end_does_not_move_after_a_pause(
    launch: LaunchFn, daemon: testing.DaemonListener
) -> None:
    function = launch("traced_app.handler")
    time.sleep(1.0)
    result = function.invoke({}, trace_header=_header()[2])
    assert result.ok
    init, invocation = daemon.wait_for(2)
    assert init["end_time"] <= result.payload["init_done"]
    assert invocation["start_time"] - init["end_time"] >= 1.0


def test_unsampled_first_invocation_sends_nothing(
    launch: LaunchFn, daemon: testing.DaemonListener
) -> None:
    function = launch("traced_app.handler")
    assert function.invoke({}, trace_header=_header("0")[2]).ok
    assert daemon.settle() == []
    assert function.invoke({}, trace_header=_header()[2]).ok
    [invocation] = _checked(daemon.wait_for(1))
    assert invocation["name"] == "## handler"
    assert invocation["annotations"]["ColdStart"] is False


def test_invocation_without_trace_header_is_not_traced(
    launch: LaunchFn, daemon: testing.DaemonListener
) -> None:
    function = launch("traced_app.handler")
    assert function.invoke({}, trace_header=_header()[2]).ok
    assert len(daemon.wait_for(2)) == 2
    result = function.invoke({})
    assert result.ok
    assert result.payload["trace"] is None
    assert len(daemon.settle()) == 2


def test_exception_is_a_fault_and_reaches_the_runtime_unchanged(
    launch: LaunchFn, daemon: testing.DaemonListener
) -> None:
    function = launch("traced_app.handler")
    result = function.invoke({"mode": "raise"}, trace_header=_header()[2])
    assert not result.ok
    assert result.error is not None
    assert result.error["errorType"] == "ValueError"
    assert result.error["errorMessage"] == "card declined"
    invocation = _checked(daemon.wait_for(2))[1]
    assert invocation["fault"] is True
    assert invocation["cause"]["exceptions"][0]["type"] == "ValueError"
    assert invocation["subsegments"][0]["name"] == "charge"
    assert invocation["subsegments"][0]["fault"] is True


def test_deadline_hit_still_sends_the_trace(
    launch: LaunchFn, daemon: testing.DaemonListener
) -> None:
    timeout_s = 1.0
    function = launch("traced_app.handler", timeout_s=timeout_s)
    root, _, header = _header()
    result = function.invoke({"mode": "sleep", "seconds": 5}, trace_header=header)
    assert result.timed_out
    init, invocation = _checked(daemon.wait_for(2))
    assert init["name"] == "Init"
    assert invocation["trace_id"] == root
    assert invocation["fault"] is True
    assert invocation["annotations"]["Timeout"] is True
    # Closed by the guard before the deadline (it arrived: sent before the kill).
    assert invocation["end_time"] - invocation["start_time"] < timeout_s
    slow = invocation["subsegments"][0]
    assert slow["name"] == "slow step"
    assert slow["annotations"]["Timeout"] is True
    assert [c["name"] for c in slow["subsegments"]] == ["ssm"]
    assert "Timeout" not in slow["subsegments"][0].get("annotations", {})


def test_provisioned_concurrency_is_not_a_cold_start(
    aws: Any, daemon: testing.DaemonListener, backend: str
) -> None:
    """As Powertools reports it: initialised ahead of any request, so no ColdStart.
    No request waited for Init: it is a trace of its own, which the first
    invocation names (InitTraceId), with init's own timestamps."""
    from tracing.local.runtime import LocalLambda

    from .conftest import FIXTURES

    function = LocalLambda(
        "traced_app.handler",
        code_dir=FIXTURES,
        function_name="traced-app",
        init_type="provisioned-concurrency",
        env={**aws.env, "TRACING_BACKEND": backend},
        xray_daemon_address=daemon.address,
    )
    with function:
        time.sleep(0.5)  # provisioned: the request comes long after init
        root, _, header = _header()
        assert function.invoke({}, trace_header=header).ok
        assert function.invoke({}, trace_header=_header()[2]).ok
        documents = _checked(daemon.wait_for(3))
    [segment] = [d for d in documents if d["name"] == "traced-app"]
    [init] = [s for s in segment["subsegments"] if s["name"] == "Init"]
    first, second = [d for d in documents if d["name"] == "## handler"]
    assert [d for d in documents if d["trace_id"] == root] == [first]
    assert first["annotations"]["InitTraceId"] == segment["trace_id"]
    assert init["annotations"] == {"ColdStart": True, "InitType": "provisioned-concurrency"}
    assert first["start_time"] - init["end_time"] > 0.4  # not stretched
    assert first["annotations"]["ColdStart"] is False
    assert second["annotations"]["ColdStart"] is False
