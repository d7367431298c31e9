"""A W3C ``traceparent`` in an API Gateway, ALB or function URL event.

The rule (docs/hops.md, "Incoming HTTP"): Lambda's own sampled header continues
the X-Ray trace; a ``traceparent`` from another trace is linked
(``incoming_traceparent="link"``, the default), continued when the user asks
(``"continue"``), or ignored (``"ignore"``); Lambda's ``Sampled=0`` is never the
parent of recorded work. Read on the wire: the documents a real UDP listener
receives (X-Ray documents, and OTLP spans for the links) and the
``X-Amzn-Trace-Id`` header of an AWS call made by the handler, as botocore sends
it to moto's HTTP server.
"""

from __future__ import annotations

import contextlib
from typing import Any
from urllib.parse import unquote

import boto3
import pytest

import tracing
from tracing import testing
from tracing._header import new_id
from tracing.local.runtime.aws import LocalAWS

LINEAGE = "Lineage=a87bd80c:2"
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
CALLER_ROOT = "1-4bf92f35-77b34da6a3ce929d0e0e4736"


def _traceparent(flags: str = "01") -> str:
    return f"00-{CALLER_TRACE}-{CALLER_SPAN}-{flags}"


def _http_api_event(traceparent: str | None) -> dict[str, Any]:
    """An HTTP API (payload 2.0) or function URL event: header names lowercased."""
    headers = {"content-type": "application/json", "user-agent": "curl/8.5"}
    if traceparent is not None:
        headers["traceparent"] = traceparent
    return {"version": "2.0", "routeKey": "POST /orders", "headers": headers, "body": "{}"}


def _rest_event(name: str, traceparent: str) -> dict[str, Any]:
    """A REST API (payload 1.0) event: names as the caller spelt them."""
    return {
        "resource": "/orders",
        "httpMethod": "POST",
        "headers": {"Content-Type": "application/json", name: traceparent},
        "multiValueHeaders": {"Content-Type": ["application/json"], name: [traceparent]},
        "body": "{}",
    }


ALB = {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/t/1"}}


def _alb_event(traceparent: str, multi_value: bool) -> dict[str, Any]:
    """An ALB event: ``headers``, or only ``multiValueHeaders`` when the target
    group has multi-value headers on (names lowercased either way)."""
    event: dict[str, Any] = {"requestContext": ALB, "httpMethod": "POST", "body": "{}"}
    if multi_value:
        event["multiValueHeaders"] = {"user-agent": ["curl/8.5"], "traceparent": [traceparent]}
    else:
        event["headers"] = {"user-agent": "curl/8.5", "traceparent": traceparent}
    return event


@pytest.fixture(params=["xray", "otel"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def in_lambda(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("LAMBDA_TASK_ROOT", str(tmp_path))
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "orders-api")


class Calls:
    """An SSM client made before configure(); the trace header of each request."""

    def __init__(self) -> None:
        self.client = boto3.client("ssm")
        self.headers: list[str | None] = []
        self.client.meta.events.register_last("before-send", self._capture)

    def _capture(self, request: Any, **_: Any) -> None:
        value = request.headers.get("X-Amzn-Trace-Id")
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        self.headers.append(unquote(value) if isinstance(value, str) else None)

    def handler(self) -> Any:
        def handle(event: Any, context: Any) -> dict[str, int]:
            with contextlib.suppress(self.client.exceptions.ParameterNotFound):
                self.client.get_parameter(Name="/orders/missing")
            return {"statusCode": 200}

        return tracing.handler(handle)


@pytest.fixture
def calls(aws: LocalAWS, monkeypatch: pytest.MonkeyPatch) -> Calls:
    for key, value in aws.env.items():
        monkeypatch.setenv(key, value)
    return Calls()


def _invoke(
    monkeypatch: pytest.MonkeyPatch, calls: Calls, event: dict[str, Any], sampled: str = "1"
) -> tuple[str, str]:
    header = testing.trace_header(sampled=sampled == "1", Lineage="a87bd80c:2")
    monkeypatch.setenv("_X_AMZN_TRACE_ID", header)
    assert calls.handler()(event, testing.FakeContext()) == {"statusCode": 200}
    fields = dict(part.split("=", 1) for part in header.split(";"))
    return fields["Root"], fields["Parent"]


def _work(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The invocation's documents: ``Init`` goes to Lambda's trace whatever happens."""
    return [d for d in documents if d["name"] != "Init"]


def _invocation(documents: list[dict[str, Any]]) -> dict[str, Any]:
    [found] = [e for d in documents for e in testing.iter_entities(d) if e["name"] == "## handle"]
    return found


pytestmark = pytest.mark.usefixtures("in_lambda")


def test_a_caller_outside_aws_is_linked_and_lambdas_trace_continues(
    backend: str, calls: Calls, daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure(backend=backend)
    root, parent = _invoke(monkeypatch, calls, _http_api_event(_traceparent()))
    documents = daemon.sync()
    invocation = _invocation(documents)
    assert {d["trace_id"] for d in documents} == {root}
    assert invocation["parent_id"] == parent
    assert invocation["annotations"]["LinkedTraceId"] == CALLER_ROOT
    [sent] = calls.headers
    assert sent is not None
    assert sent.startswith(f"Root={root};")
    assert sent.endswith(f";Sampled=1;{LINEAGE}")


def test_the_link_reaches_otlp_as_a_span_link(
    backend: str, calls: Calls, daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure(backend=backend, exporter="otlp-udp")
    _invoke(monkeypatch, calls, _http_api_event(_traceparent()))
    daemon.sync()
    [span] = [s for s in daemon.otlp_spans() if s.name == "## handle"]
    links = {(link.trace_id.hex(), link.span_id.hex()) for link in span.links}
    assert (CALLER_TRACE, CALLER_SPAN) in links


def test_a_traceparent_of_lambdas_own_trace_is_no_link(
    backend: str, calls: Calls, daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure(backend=backend)
    header = testing.trace_header()
    root = header.split(";")[0][len("Root=") :]
    same = f"00-{root[2:10]}{root[11:]}-{new_id()}-01"
    monkeypatch.setenv("_X_AMZN_TRACE_ID", header)
    calls.handler()(_http_api_event(same), testing.FakeContext())
    assert "LinkedTraceId" not in _invocation(daemon.sync())["annotations"]


def test_continue_puts_the_invocation_in_the_callers_trace_with_lambdas_lineage(
    backend: str, calls: Calls, daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure(backend=backend, incoming_traceparent="continue")
    root, _ = _invoke(monkeypatch, calls, _http_api_event(_traceparent()))
    everything = daemon.sync()
    [init] = [d for d in everything if d["name"] == "Init"]
    assert init["trace_id"] == root  # what Lambda's own trace waited for
    documents = _work(everything)
    [segment] = [d for d in documents if d.get("type") != "subsegment" and "parent_id" in d]
    assert (segment["trace_id"], segment["parent_id"]) == (CALLER_ROOT, CALLER_SPAN)
    assert segment["name"] == "orders-api"
    invocation = _invocation(documents)
    assert invocation["annotations"]["LinkedTraceId"] == root  # back to Lambda's own trace
    assert {d["trace_id"] for d in documents} == {CALLER_ROOT}
    [sent] = calls.headers
    assert sent is not None
    assert sent.startswith(f"Root={CALLER_ROOT};")
    assert sent.endswith(f";Sampled=1;{LINEAGE}")


def test_continue_records_a_sampled_caller_when_lambda_did_not_sample(
    backend: str, calls: Calls, daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure(backend=backend, incoming_traceparent="continue")
    _invoke(monkeypatch, calls, _http_api_event(_traceparent()), sampled="0")
    documents = _work(daemon.sync())
    assert {d["trace_id"] for d in documents} == {CALLER_ROOT}
    assert "LinkedTraceId" not in _invocation(documents)["annotations"]  # nothing to link to


def test_continue_follows_an_unsampled_caller_and_records_nothing(
    backend: str, calls: Calls, daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure(backend=backend, incoming_traceparent="continue")
    _invoke(monkeypatch, calls, _http_api_event(_traceparent("00")))
    assert _work(daemon.sync()) == []
    [sent] = calls.headers
    assert sent is not None
    assert sent.startswith(f"Root={CALLER_ROOT};Parent={CALLER_SPAN};Sampled=0")
    assert sent.endswith(LINEAGE)


def test_lambdas_unsampled_header_is_never_the_parent_of_recorded_work(
    backend: str, calls: Calls, daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure(backend=backend)  # link: Lambda decided, and it said no
    root, parent = _invoke(monkeypatch, calls, _http_api_event(_traceparent()), sampled="0")
    assert daemon.sync() == []
    assert calls.headers == [f"Root={root};Parent={parent};Sampled=0;{LINEAGE}"]


@pytest.mark.parametrize("name", ["traceparent", "Traceparent", "TRACEPARENT"])
def test_a_rest_api_header_is_found_whatever_its_spelling(
    name: str, calls: Calls, daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure()
    _invoke(monkeypatch, calls, _rest_event(name, _traceparent()))
    assert _invocation(daemon.sync())["annotations"]["LinkedTraceId"] == CALLER_ROOT


@pytest.mark.parametrize("multi_value", [False, True], ids=["headers", "multi-value"])
@pytest.mark.parametrize("mode", ["link", "continue"])
def test_an_alb_callers_traceparent_is_read_with_or_without_multi_value_headers(
    backend: str,
    mode: str,
    multi_value: bool,
    calls: Calls,
    daemon: testing.DaemonListener,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tracing.configure(backend=backend, incoming_traceparent=mode)
    root, _ = _invoke(monkeypatch, calls, _alb_event(_traceparent(), multi_value))
    documents = _work(daemon.sync())
    invocation = _invocation(documents)
    if mode == "link":
        assert {d["trace_id"] for d in documents} == {root}
        assert invocation["annotations"]["LinkedTraceId"] == CALLER_ROOT
    else:
        assert {d["trace_id"] for d in documents} == {CALLER_ROOT}
        assert invocation["annotations"]["LinkedTraceId"] == root


def test_two_traceparent_values_are_no_context(
    calls: Calls, daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure()
    event = _alb_event(_traceparent(), multi_value=True)
    event["multiValueHeaders"]["traceparent"].append(_traceparent("00"))
    _invoke(monkeypatch, calls, event)
    assert "LinkedTraceId" not in _invocation(daemon.sync()).get("annotations", {})


@pytest.mark.parametrize(
    "value",
    [
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # zero trace id
        "01-4bf92f3577b34da6a3ce929d0e0e4736",  # too few parts
        "garbage",
        42,
        "00-" + "a" * 5000,  # longer than any header
    ],
)
def test_an_invalid_traceparent_is_ignored_and_changes_nothing(
    value: Any, calls: Calls, daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure(incoming_traceparent="continue")
    root, _ = _invoke(monkeypatch, calls, _http_api_event(value))
    documents = daemon.sync()
    assert {d["trace_id"] for d in documents} == {root}
    assert "LinkedTraceId" not in _invocation(documents)["annotations"]


def test_ignore_reads_no_header(
    calls: Calls, daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRACING_INCOMING_TRACEPARENT", "ignore")
    tracing.configure()
    _invoke(monkeypatch, calls, _http_api_event(_traceparent()))
    assert "LinkedTraceId" not in _invocation(daemon.sync())["annotations"]


def test_a_bad_setting_is_refused() -> None:
    with pytest.raises(ValueError, match="incoming_traceparent"):
        tracing.configure(incoming_traceparent="follow")
