"""The propagation rule, on every carrier, on both backends (moto's HTTP server).

What goes out is read on the wire: the HTTP ``X-Amzn-Trace-Id`` header as
botocore sends it (a ``before-send`` handler registered last sees the final
request), and the ``AWSTraceHeader`` system attribute of the ``SendMessage``
request body.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

import boto3
import pytest

import tracing
from tracing import testing
from tracing._header import new_id, new_trace_id, parse
from tracing.local.runtime.aws import LocalAWS

LINEAGE = "Lineage=a87bd80c:3"


@pytest.fixture(params=["xray", "otel"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Wire:
    """Clients made before configure(), and what they put on the wire."""

    def __init__(self, aws: LocalAWS) -> None:
        self.sqs, self.ssm = boto3.client("sqs"), boto3.client("ssm")
        self.url = self.sqs.create_queue(QueueName=f"q-{new_id()}")["QueueUrl"]
        self.http: list[str | None] = []
        self.bodies: list[dict[str, Any]] = []
        for client in (self.sqs, self.ssm):
            client.meta.events.register_last("before-send", self._capture)

    def _capture(self, request: Any, **_: Any) -> None:
        value = request.headers.get("X-Amzn-Trace-Id")
        if isinstance(value, bytes):  # botocore encodes headers when it prepares them
            value = value.decode("latin-1")
        self.http.append(unquote(value) if isinstance(value, str) else None)
        body = request.body
        if isinstance(body, bytes) and body.startswith(b"{"):
            self.bodies.append(json.loads(body))
        else:
            self.bodies.append({})

    def clear(self) -> None:
        self.http.clear()
        self.bodies.clear()

    def send(self, body: str = "m") -> str | None:
        """Send a message; return its AWSTraceHeader as sent (None when there is none)."""
        self.sqs.send_message(QueueUrl=self.url, MessageBody=body)
        system = self.bodies[-1].get("MessageSystemAttributes") or {}
        value = (system.get("AWSTraceHeader") or {}).get("StringValue")
        return value if isinstance(value, str) else None


@pytest.fixture
def wire(aws: LocalAWS, monkeypatch: pytest.MonkeyPatch) -> Wire:
    for key, value in aws.env.items():
        monkeypatch.setenv(key, value)
    return Wire(aws)


@pytest.fixture
def in_lambda(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("LAMBDA_TASK_ROOT", str(tmp_path))
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "producer")


def _lambda(monkeypatch: pytest.MonkeyPatch, tmp_path: Any, sampled: str) -> tuple[str, str]:
    """The header of an invocation (Lambda's environment is set by ``in_lambda``)."""
    root, parent = new_trace_id(), new_id()
    monkeypatch.setenv(
        "_X_AMZN_TRACE_ID", f"Root={root};Parent={parent};Sampled={sampled};{LINEAGE}"
    )
    return root, parent


def _aws_calls(documents: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        e["aws"]["operation"]: e
        for d in documents
        for e in testing.iter_entities(d)
        if e.get("namespace") == "aws"
    }


@pytest.mark.usefixtures("in_lambda")
def test_a_sampled_invocation_passes_its_trace_and_lineage_on_every_carrier(
    backend: str,
    wire: Wire,
    daemon: testing.DaemonListener,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> None:
    tracing.configure(backend=backend)
    handler = tracing.handler(lambda e, c: (wire.send(), wire.ssm.get_parameter(Name="/app/x")))
    root, _ = _lambda(monkeypatch, tmp_path, "1")
    wire.clear()
    handler({}, testing.FakeContext())
    calls = _aws_calls(daemon.sync())
    send, get = calls["SendMessage"], calls["GetParameter"]
    message = wire.bodies[0]["MessageSystemAttributes"]["AWSTraceHeader"]["StringValue"]
    assert message == f"Root={root};Parent={send['id']};Sampled=1;{LINEAGE}"
    assert wire.http == [message, f"Root={root};Parent={get['id']};Sampled=1;{LINEAGE}"]


@pytest.mark.usefixtures("in_lambda")
def test_an_unsampled_invocation_passes_its_own_trace_unsampled_with_lineage(
    backend: str,
    wire: Wire,
    daemon: testing.DaemonListener,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> None:
    tracing.configure(backend=backend)

    @tracing.handler
    def handler(event: Any, context: Any) -> str | None:
        with tracing.span("inner"):
            return wire.send()

    root, parent = _lambda(monkeypatch, tmp_path, "0")
    wire.clear()
    expected = f"Root={root};Parent={parent};Sampled=0;{LINEAGE}"
    assert handler({}, testing.FakeContext()) == expected
    assert wire.http == [expected]
    assert daemon.sync() == []


@pytest.mark.usefixtures("in_lambda")
def test_inside_consume_in_lambda_the_producers_trace_with_the_invocations_lineage(
    backend: str,
    wire: Wire,
    daemon: testing.DaemonListener,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> None:
    tracing.configure(backend=backend)
    producer, producer_parent = new_trace_id(), new_id()
    upstream = f"Root={producer};Parent={producer_parent};Sampled=1;Lineage=0000aaaa:9"
    message = {"MessageId": new_id(), "Attributes": {"AWSTraceHeader": upstream}}
    event = testing.lambda_sqs_event([message])

    @tracing.handler
    def handler(event: Any, context: Any) -> list[str | None]:
        sent: list[str | None] = []
        tracing.sqs.process_batch(event, lambda record: sent.append(wire.send("next hop")))
        return sent

    _lambda(monkeypatch, tmp_path, "1")
    wire.clear()
    [sent] = handler(event, testing.FakeContext())
    header = parse(sent)
    assert header is not None
    assert (header.root, header.sampled, header.extra) == (
        producer,
        "1",
        (("Lineage", "a87bd80c:3"),),
    )
    send = _aws_calls([d for d in daemon.sync() if d["trace_id"] == producer])["SendMessage"]
    assert header.parent == send["id"]


def test_a_worker_passes_the_messages_own_lineage(
    backend: str, wire: Wire, daemon: testing.DaemonListener
) -> None:
    tracing.configure(backend=backend, service="worker")
    producer = new_trace_id()
    message = {
        "MessageId": new_id(),
        "Attributes": {
            "AWSTraceHeader": f"Root={producer};Parent={new_id()};Sampled=1;Lineage=0000aaaa:9"
        },
    }
    with tracing.sqs.consume(message):
        sent = wire.send()
    header = parse(sent)
    assert header is not None
    assert (header.root, header.extra) == (producer, (("Lineage", "0000aaaa:9"),))
    assert wire.http == [sent]


def test_init_passes_nothing_unless_init_is_its_own_trace(
    backend: str,
    wire: Wire,
    daemon: testing.DaemonListener,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> None:
    monkeypatch.setenv("LAMBDA_TASK_ROOT", str(tmp_path))
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "producer")
    tracing.configure(backend=backend)
    wire.clear()
    assert wire.send() is None
    assert wire.http == [None]  # no trace exists yet: no header at all
    testing.reset()

    tracing.configure(backend=backend, init_trace="always")
    with tracing.span("warm"):
        sent = wire.send()
    header = parse(sent)
    assert header is not None
    handler = tracing.handler(lambda e, c: None)
    _lambda(monkeypatch, tmp_path, "1")
    handler({}, testing.FakeContext())
    documents = daemon.sync()
    [init_trace] = [d for d in documents if d["trace_id"] == header.root]  # it exists
    assert [e["name"] for e in testing.iter_entities(init_trace)][:3] == [
        "producer",
        "Init",
        "warm",
    ]
    send = _aws_calls([init_trace])["SendMessage"]
    assert (header.parent, header.sampled) == (send["id"], "1")
    [invocation] = [d for d in documents if d["name"] == "## _lambda_"]
    assert invocation["annotations"]["InitTraceId"] == header.root


@pytest.mark.usefixtures("in_lambda", "daemon")
def test_a_callers_own_header_is_never_replaced(
    backend: str, wire: Wire, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    mine = f"Root={new_trace_id()};Parent={new_id()};Sampled=1"
    wire.ssm.meta.events.register(
        "before-call.ssm.GetParameter",
        lambda params, **_: params["headers"].__setitem__("X-Amzn-Trace-Id", mine),
    )
    tracing.configure(backend=backend)
    handler = tracing.handler(lambda e, c: wire.ssm.get_parameter(Name="/app/x"))
    _lambda(monkeypatch, tmp_path, "1")
    wire.clear()
    handler({}, testing.FakeContext())
    assert wire.http == [mine]


def test_otel_propagation_writes_the_same_header(
    wire: Wire, daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from opentelemetry import propagate, trace

    monkeypatch.setenv("LAMBDA_TASK_ROOT", str(tmp_path))
    tracing.configure(backend="otel")
    at_import: dict[str, str] = {}
    propagate.inject(at_import)
    tracer = trace.get_tracer("user")

    @tracing.handler
    def handler(event: Any, context: Any) -> tuple[dict[str, str], str]:
        with tracer.start_as_current_span("client call") as span:
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            return carrier, f"{span.get_span_context().span_id:016x}"

    root, _ = _lambda(monkeypatch, tmp_path, "1")
    carrier, span_id = handler({}, testing.FakeContext())
    assert at_import == {}  # during init no trace exists: nothing is passed on
    assert carrier["X-Amzn-Trace-Id"] == f"Root={root};Parent={span_id};Sampled=1;{LINEAGE}"
    assert carrier["traceparent"].split("-")[2] == span_id
