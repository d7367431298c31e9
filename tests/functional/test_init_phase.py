"""Which trace Init goes to: a request's trace shows what the request waited for.

On-demand, the first request waited for init: Init is in its trace. Under
provisioned concurrency it did not (init may have run hours before): Init is a
trace of its own and the first invocation names it (``InitTraceId``). Both
backends, in process, against a real UDP listener.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

import tracing
from tracing import testing
from tracing._header import new_id, new_trace_id

pytestmark = pytest.mark.usefixtures("in_lambda")

PROVISIONED = "provisioned-concurrency"


@pytest.fixture(params=["xray", "otel"])
def any_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("TRACING_BACKEND", request.param)
    return str(request.param)


def _invoke(monkeypatch: pytest.MonkeyPatch, fn: Any, sampled: str = "1") -> tuple[str, str]:
    root, parent = new_trace_id(), new_id()
    monkeypatch.setenv("_X_AMZN_TRACE_ID", f"Root={root};Parent={parent};Sampled={sampled}")
    fn({}, testing.FakeContext())
    return root, parent


def _valid(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for doc in docs:
        assert testing.check_document(doc) == [], doc
    return docs


def _names(entity: dict[str, Any]) -> list[Any]:
    return [entity["name"], [_names(c) for c in entity.get("subsegments", [])]]


def _init_work(backend: str) -> None:
    """A span of ours and, on the otel backend, one of the user's own OTel spans."""
    with tracing.span("load config"):
        time.sleep(0.002)
    if backend == "otel":
        from opentelemetry import trace

        with trace.get_tracer("user").start_as_current_span("user init"):
            pass


@pytest.mark.usefixtures("any_backend")
def test_on_demand_init_is_in_the_first_requests_trace(
    daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
    tracing.configure(service="orders")
    with tracing.span("load config"):
        pass
    handler = tracing.handler(lambda event, context: None)
    root, parent = _invoke(monkeypatch, handler)
    init, invocation = _valid(daemon.wait_for(2))
    assert (init["name"], init["trace_id"], init["parent_id"]) == ("Init", root, parent)
    assert invocation["trace_id"] == root
    assert "InitTraceId" not in invocation["annotations"]
    assert invocation["annotations"]["ColdStart"] is True


def test_provisioned_init_is_a_trace_of_its_own_named_by_the_first_invocation(
    daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch, any_backend: str
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_INITIALIZATION_TYPE", PROVISIONED)
    configured = time.time()
    tracing.configure(service="orders")
    _init_work(any_backend)
    handler = tracing.handler(lambda event, context: None)
    init_done = time.time()
    time.sleep(0.3)  # provisioned: the first request comes long after init
    root, parent = _invoke(monkeypatch, handler)
    _invoke(monkeypatch, handler)
    docs = _valid(daemon.wait_for(3))
    [segment] = [d for d in docs if d["name"] == "orders"]
    first, second = [d for d in docs if d["name"].startswith("## ")]
    # Init is not in the request's trace: that trace is the request alone.
    assert [d for d in docs if d["trace_id"] == root] == [first]
    assert (first["trace_id"], first["parent_id"]) == (root, parent)
    # Its own trace, stamped with init's own time, holding init's real timestamps.
    assert segment["trace_id"] != root
    assert "parent_id" not in segment
    assert int(segment["trace_id"][2:10], 16) == int(configured)
    [init] = segment["subsegments"]
    assert init["name"] == "Init"
    assert init["annotations"] == {"ColdStart": True, "InitType": PROVISIONED}
    expected = ["Init", [["load config", []]]]
    if any_backend == "otel":
        expected = ["Init", [["load config", []], ["user init", []]]]
    assert _names(init) == expected
    assert configured <= init["start_time"] <= init["end_time"] <= init_done + 0.01
    assert segment["start_time"] == init["start_time"]
    assert segment["end_time"] == init["end_time"]
    assert first["start_time"] - init["end_time"] > 0.25  # not stretched to the request
    # The first invocation names that trace; no invocation is a cold start.
    assert first["annotations"]["InitTraceId"] == segment["trace_id"]
    assert "InitTraceId" not in second["annotations"]
    assert (first["annotations"]["ColdStart"], second["annotations"]["ColdStart"]) == (
        False,
        False,
    )


@pytest.mark.usefixtures("any_backend")
@pytest.mark.parametrize(("init_trace", "sent"), [("sampled", False), ("always", True)])
def test_provisioned_init_with_an_unsampled_first_invocation_follows_init_trace(
    daemon: testing.DaemonListener,
    monkeypatch: pytest.MonkeyPatch,
    init_trace: str,
    sent: bool,
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_INITIALIZATION_TYPE", PROVISIONED)
    tracing.configure(service="orders", init_trace=init_trace)
    with tracing.span("load config"):
        pass
    handler = tracing.handler(lambda event, context: None)
    root, _ = _invoke(monkeypatch, handler, sampled="0")
    docs = _valid(daemon.settle())
    assert [d["name"] for d in docs] == (["orders"] if sent else [])
    assert all(d["trace_id"] != root for d in docs)


@pytest.mark.usefixtures("any_backend")
def test_provisioned_init_is_never_sent_with_init_trace_off(
    daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_INITIALIZATION_TYPE", PROVISIONED)
    tracing.configure(service="orders", init_trace="off")
    with tracing.span("load config"):
        pass
    handler = tracing.handler(lambda event, context: None)
    root, _ = _invoke(monkeypatch, handler)
    [invocation] = _valid(daemon.settle())
    assert invocation["trace_id"] == root
    assert "InitTraceId" not in invocation["annotations"]


@pytest.mark.usefixtures("any_backend")
def test_provisioned_init_calls_pass_no_trace_on_unless_init_trace_is_always(
    daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whether Init will be sent is not known during init (the first request decides)."""
    from tracing._propagation import outgoing_header

    monkeypatch.setenv("AWS_LAMBDA_INITIALIZATION_TYPE", PROVISIONED)
    tracing.configure(service="orders")
    with tracing.span("load config"):
        assert outgoing_header() is None
