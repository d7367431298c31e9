"""The otel backend in process: the user's own OTel tracer, links, traceparent, OTLP."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import boto3
import pytest
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

import tracing
from tracing import testing
from tracing._header import new_id, new_trace_id
from tracing.local.runtime.aws import LocalAWS

pytestmark = pytest.mark.usefixtures("in_lambda")


def _invoke(monkeypatch: pytest.MonkeyPatch, fn: Any, event: Any = None) -> tuple[str, str]:
    root, parent = new_trace_id(), new_id()
    monkeypatch.setenv("_X_AMZN_TRACE_ID", f"Root={root};Parent={parent};Sampled=1")
    fn(event or {}, testing.FakeContext())
    return root, parent


def _names(entity: dict[str, Any]) -> list[Any]:
    return [entity["name"], [_names(c) for c in entity.get("subsegments", [])]]


def test_user_tracer_in_init_is_replayed_into_the_first_trace(
    daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure(backend="otel", service="svc")
    tracer = trace.get_tracer("user")
    with tracer.start_as_current_span("user init"), tracing.span("ours", k="v"):
        pass
    thread = threading.Thread(target=lambda: tracer.start_span("from a thread").end())
    thread.start()
    thread.join()

    @tracing.handler
    def handler(event: Any, context: Any) -> None:
        with tracer.start_as_current_span("user work") as span:
            tracing.annotate("sku", "book-1")
            span.set_attribute("detail", "x")

    root, parent = _invoke(monkeypatch, handler)
    init, invocation = daemon.wait_for(2)
    assert (init["name"], init["trace_id"], init["parent_id"]) == ("Init", root, parent)
    assert init["annotations"] == {"ColdStart": True, "InitType": "on-demand"}
    assert _names(init) == ["Init", [["user init", [["ours", []]]], ["from a thread", []]]]
    assert init["subsegments"][0]["subsegments"][0]["annotations"] == {"k": "v"}
    [work] = invocation["subsegments"]
    assert work["annotations"] == {"sku": "book-1"}
    assert work["metadata"] == {"default": {"detail": "x"}}
    for doc in (init, invocation):
        assert testing.check_document(doc) == []


def test_tracing_span_and_user_spans_nest_both_ways(
    daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure(backend="otel")
    tracer = trace.get_tracer("user")

    @tracing.handler
    def handler(event: Any, context: Any) -> None:
        with tracing.span("a"), tracer.start_as_current_span("b"), tracing.span("c"):
            pass

    _invoke(monkeypatch, handler)
    invocation = daemon.wait_for(2)[-1]
    assert _names(invocation) == ["## handler", [["a", [["b", [["c", []]]]]]]]


def test_no_per_invocation_warnings(
    daemon: testing.DaemonListener,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    tracing.configure(backend="otel")
    handler = tracing.handler(lambda event, context: None)
    with caplog.at_level(logging.WARNING):
        for _ in range(5):
            _invoke(monkeypatch, handler)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert len(daemon.wait_for(6)) == 6


def test_bad_backend_options_raise() -> None:
    with pytest.raises(ValueError, match="exporter"):
        tracing.configure(backend="otel", exporter="zipkin")
    tracing.testing.reset()
    with pytest.raises(ValueError, match="botocore_instrumentation"):
        tracing.configure(backend="otel", botocore_instrumentation="all")


def test_traceparent_is_added_only_when_it_fits(
    aws: LocalAWS, daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in aws.env.items():
        monkeypatch.setenv(key, value)
    client = boto3.client("sqs")
    url = client.create_queue(QueueName=f"q-{new_id()}")["QueueUrl"]
    tracing.configure(backend="otel")
    wire: list[dict[str, Any]] = []
    client.meta.events.register(
        "before-send.sqs.SendMessage", lambda request, **_: wire.append(json.loads(request.body))
    )
    ten = {f"a{i}": {"DataType": "String", "StringValue": "v"} for i in range(10)}

    @tracing.handler
    def handler(event: Any, context: Any) -> None:
        client.send_message(QueueUrl=url, MessageBody="small")
        client.send_message(QueueUrl=url, MessageBody="full", MessageAttributes=ten)
        client.send_message(QueueUrl=url, MessageBody="x" * 262_100)

    root, _ = _invoke(monkeypatch, handler)
    calls = daemon.wait_for(2)[-1]["subsegments"]
    small, full, big = wire
    traceparent = small["MessageAttributes"]["traceparent"]["StringValue"]
    assert traceparent == f"00-{root[2:10]}{root[11:]}-{calls[0]['id']}-01"
    assert full["MessageAttributes"] == ten
    assert "MessageAttributes" not in big
    for body, call in zip(wire, calls, strict=True):
        header = body["MessageSystemAttributes"]["AWSTraceHeader"]["StringValue"]
        assert header == f"Root={root};Parent={call['id']};Sampled=1"


def test_consume_accepts_a_traceparent_attribute(
    daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure(backend="otel", service="worker")
    producer_root, producer_span = new_trace_id(), new_id()
    record = {
        "messageId": "m-1",
        "body": "{}",
        "messageAttributes": {
            "traceparent": {
                "stringValue": f"00-{producer_root[2:10]}{producer_root[11:]}-{producer_span}-01",
                "dataType": "String",
            }
        },
    }
    handler = tracing.handler(lambda event, context: tracing.sqs.process_batch(event, print))
    _invoke(monkeypatch, handler, {"Records": [record]})
    docs = daemon.settle()
    [segment] = [d for d in docs if d["trace_id"] == producer_root]
    assert (segment["name"], segment["parent_id"]) == ("worker", producer_span)


class _Receiver(BaseHTTPRequestHandler):
    spans: ClassVar[list[Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                _Receiver.spans.extend(scope_spans.spans)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()
        self.wfile.write(b"")

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture
def otlp(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """A real OTLP/HTTP endpoint on 127.0.0.1, decoding the protobuf it receives."""
    _Receiver.spans = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"http://127.0.0.1:{server.server_port}/v1/traces"
    )
    yield _Receiver.spans
    server.shutdown()
    server.server_close()


def test_otlp_exporter_sends_the_same_tree_with_links(
    otlp: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure(backend="otel", exporter="otlp", service="worker")
    with tracing.span("init work"):
        pass
    producer_root, producer_span = new_trace_id(), new_id()
    record = {
        "messageId": "m-1",
        "body": "{}",
        "attributes": {"AWSTraceHeader": f"Root={producer_root};Parent={producer_span};Sampled=1"},
    }

    def process(record: dict[str, Any]) -> None:
        with tracing.span("save"):
            pass

    handler = tracing.handler(lambda event, context: tracing.sqs.process_batch(event, process))
    root, parent = _invoke(monkeypatch, handler, {"Records": [record]})
    by_name = {span.name: span for span in otlp}
    assert set(by_name) >= {"Init", "init work", "## _lambda_", "SQS message", "worker", "save"}

    def hexid(value: bytes) -> str:
        return value.hex()

    init, invocation = by_name["Init"], by_name["## _lambda_"]
    consumer = by_name["worker"]
    assert hexid(invocation.trace_id) == root[2:10] + root[11:]
    assert hexid(init.parent_span_id) == parent
    assert hexid(by_name["init work"].parent_span_id) == hexid(init.span_id)
    linked = {(hexid(link.trace_id), hexid(link.span_id)) for link in invocation.links}
    assert (root[2:10] + root[11:], hexid(init.span_id)) in linked
    assert (producer_root[2:10] + producer_root[11:], producer_span) in linked
    assert hexid(consumer.trace_id) == producer_root[2:10] + producer_root[11:]
    assert hexid(consumer.parent_span_id) == producer_span
    assert consumer.kind == 5  # SPAN_KIND_CONSUMER
    assert [(hexid(link.span_id)) for link in consumer.links] == [hexid(invocation.span_id)]
    assert hexid(by_name["save"].parent_span_id) == hexid(consumer.span_id)


def test_contrib_botocore_instrumentation_when_asked(
    aws: LocalAWS, daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opentelemetry.instrumentation.botocore import BotocoreInstrumentor

    for key, value in aws.env.items():
        monkeypatch.setenv(key, value)
    client = boto3.client("sqs")
    url = client.create_queue(QueueName=f"q-{new_id()}")["QueueUrl"]
    tracing.configure(backend="otel", botocore_instrumentation="contrib")
    try:
        handler = tracing.handler(lambda e, c: client.send_message(QueueUrl=url, MessageBody="m"))
        root, _ = _invoke(monkeypatch, handler)
        [call] = daemon.wait_for(2)[-1]["subsegments"]
    finally:
        BotocoreInstrumentor().uninstrument()
    assert call["namespace"] == "aws"
    assert call["aws"]["operation"] == "SendMessage"
    message = client.receive_message(QueueUrl=url, MessageSystemAttributeNames=["All"])
    header = message["Messages"][0]["Attributes"]["AWSTraceHeader"]
    assert header == f"Root={root};Parent={call['id']};Sampled=1"


def test_the_given_tracer_provider_is_used(
    daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    provider = TracerProvider()
    tracing.configure(backend="otel", tracer_provider=provider)
    tracer = provider.get_tracer("mine")

    @tracing.handler
    def handler(event: Any, context: Any) -> None:
        with tracer.start_as_current_span("from my provider"):
            pass

    root, _ = _invoke(monkeypatch, handler)
    invocation = daemon.wait_for(2)[-1]
    assert invocation["trace_id"] == root
    assert _names(invocation) == ["## handler", [["from my provider", []]]]


def test_a_non_sdk_tracer_provider_is_refused() -> None:
    with pytest.raises(ValueError, match="TracerProvider"):
        tracing.configure(backend="otel", tracer_provider=trace.NoOpTracerProvider())


@pytest.mark.parametrize("fast_path", [True, False])
def test_nesting_without_otels_context_variable(
    fast_path: bool, daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The public OTel API is the fallback when the SDK keeps its context elsewhere."""
    tracing.configure(backend="otel")
    runtime = tracing._runtime.get_runtime()
    assert runtime is not None
    backend: Any = runtime.backend
    assert backend._context_variable[0] is not None  # the SDK keeps it where 1.x does
    if not fast_path:
        backend._context_variable = (None, None)
    tracer = trace.get_tracer("user")

    @tracing.handler
    def handler(event: Any, context: Any) -> None:
        with (
            tracing.span("a"),
            tracer.start_as_current_span("b"),
            tracing.span("c"),
            tracer.start_as_current_span("d"),
        ):
            pass

    _invoke(monkeypatch, handler)
    invocation = daemon.wait_for(2)[-1]
    assert _names(invocation) == ["## handler", [["a", [["b", [["c", [["d", []]]]]]]]]]


def test_pool_tasks_record_under_the_invocation_and_unrelated_threads_record_nothing(
    daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task submitted in an invocation records under it (``_hooks.py``, thread hand-off), as does
    a thread handed the OTel context (OTel's own way); a thread started outside
    any invocation belongs to none: its OTel root span is not recorded."""
    from concurrent.futures import ThreadPoolExecutor

    from opentelemetry import context as otel_context

    tracing.configure(backend="otel")
    tracer = trace.get_tracer("user")

    def plain(name: str) -> None:
        with tracer.start_as_current_span(name), tracing.span(f"{name} inner"):
            pass

    def carried(ctx: otel_context.Context) -> None:
        token = otel_context.attach(ctx)
        try:
            with tracer.start_as_current_span("carried"):
                pass
        finally:
            otel_context.detach(token)

    go, done = threading.Event(), threading.Event()

    def unrelated() -> None:
        go.wait(5)
        plain("unrelated")
        done.set()

    background = threading.Thread(target=unrelated)  # before any invocation
    background.start()

    @tracing.handler
    def handler(event: Any, context: Any) -> None:
        with ThreadPoolExecutor(2) as pool:
            pool.submit(plain, "plain").result()
            with tracing.span("work"):
                pool.submit(carried, otel_context.get_current()).result()
        go.set()
        done.wait(5)  # the unrelated thread works while the invocation runs

    for sampled in ("1", "0"):
        root, parent = new_trace_id(), new_id()
        monkeypatch.setenv("_X_AMZN_TRACE_ID", f"Root={root};Parent={parent};Sampled={sampled}")
        handler({}, testing.FakeContext())
    background.join(5)
    docs = daemon.sync()
    names = [e["name"] for d in docs for e in testing.iter_entities(d)]
    assert "unrelated" not in names
    assert "unrelated inner" not in names
    [invocation] = [d for d in docs if d["name"] == "## handler"]  # the sampled one
    assert _names(invocation) == [
        "## handler",
        [["plain", [["plain inner", []]]], ["work", [["carried", []]]]],
    ]


def test_the_invocation_seen_through_otel_follows_otel_semantics(
    daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """record_exception describes without failing; set_attribute is metadata."""
    tracing.configure(backend="otel")

    @tracing.handler
    def handler(event: Any, context: Any) -> str:
        current = trace.get_current_span()
        current.set_attribute("faas.trigger", "http")
        try:
            {}["missing"]
        except KeyError as exc:
            current.record_exception(exc)
        return "handled"

    assert _invoke(monkeypatch, handler)
    [invocation] = [d for d in daemon.sync() if d["name"] == "## handler"]
    assert "fault" not in invocation
    assert invocation["cause"]["exceptions"][0]["type"] == "KeyError"
    assert invocation["metadata"]["default"] == {"faas.trigger": "http"}
    assert "faas_trigger" not in invocation["annotations"]


# -- OTel's propagation API beside AWS's X-Ray propagators ---------------------------

_LINEAGE = "Lineage=a87bd80c:1"


def _span_context(context: Any) -> Any:
    return trace.get_current_span(context).get_span_context()


def _provider_for(provider: str) -> dict[str, Any]:
    """``own``: the backend makes its provider; ``beside``: the application's (ADOT's)."""
    if provider == "own":
        return {}
    from opentelemetry.sdk.trace import TracerProvider

    return {"tracer_provider": TracerProvider()}


@pytest.fixture
def global_textmap(monkeypatch: pytest.MonkeyPatch) -> Any:
    """OTel's propagation module; its global textmap is put back after the test."""
    from opentelemetry import propagate

    monkeypatch.setattr(propagate, "_HTTP_TEXT_FORMAT", propagate.get_global_textmap())
    return propagate


@pytest.mark.parametrize("provider", ["own", "beside"])
def test_the_swapped_xray_lambda_propagator_extracts_as_aws_does(
    daemon: testing.DaemonListener,
    monkeypatch: pytest.MonkeyPatch,
    global_textmap: Any,
    provider: str,
) -> None:
    """``OTEL_PROPAGATORS=tracecontext,xray-lambda`` (ADOT's layer): the swap keeps
    Lineage on inject, and extraction stays AWS's, ``_X_AMZN_TRACE_ID`` fallback
    included."""
    from opentelemetry.context import Context
    from opentelemetry.propagators.aws.aws_xray_propagator import AwsXRayLambdaPropagator
    from opentelemetry.propagators.composite import CompositePropagator
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    propagate = global_textmap
    # What OTel loads for that variable (its entry points), set before configure().
    aws = CompositePropagator([TraceContextTextMapPropagator(), AwsXRayLambdaPropagator()])
    propagate.set_global_textmap(aws)
    tracing.configure(backend="otel", **_provider_for(provider))
    assert propagate.get_global_textmap() is not aws  # swapped

    lambda_root, lambda_parent = new_trace_id(), new_id()
    monkeypatch.setenv(
        "_X_AMZN_TRACE_ID", f"Root={lambda_root};Parent={lambda_parent};Sampled=1;{_LINEAGE}"
    )
    other_root, other_parent = new_trace_id(), new_id()
    carriers: list[dict[str, str]] = [
        {},
        {"X-Amzn-Trace-Id": f"Root={other_root};Parent={other_parent};Sampled=1"},
        {"traceparent": f"00-{other_root[2:10]}{other_root[11:]}-{other_parent}-01"},
        {"X-Amzn-Trace-Id": "garbage"},
    ]
    for carrier in carriers:
        expected = _span_context(aws.extract(carrier, Context()))
        assert _span_context(propagate.extract(carrier, Context())) == expected, carrier
    # The plain call, where nothing is current (a new thread): Lambda's own context.
    extracted: list[Any] = []
    thread = threading.Thread(target=lambda: extracted.append(propagate.extract({})))
    thread.start()
    thread.join()
    lambda_context = _span_context(extracted[0])
    assert lambda_context.is_valid
    assert (f"{lambda_context.trace_id:032x}", f"{lambda_context.span_id:016x}") == (
        lambda_root[2:10] + lambda_root[11:],
        lambda_parent,
    )

    carrier: dict[str, str] = {}

    @tracing.handler
    def handler(event: Any, context: Any) -> None:
        propagate.inject(carrier)

    root, _ = _invoke(monkeypatch, handler)
    assert carrier["X-Amzn-Trace-Id"].startswith(f"Root={root};")


@pytest.mark.parametrize("provider", ["own", "beside"])
@pytest.mark.parametrize("when", ["before", "after", "bound", "in the handler", "lambda"])
def test_an_xray_propagator_the_application_sets_keeps_lineage(
    daemon: testing.DaemonListener,
    monkeypatch: pytest.MonkeyPatch,
    global_textmap: Any,
    caplog: pytest.LogCaptureFixture,
    provider: str,
    when: str,
) -> None:
    """``set_global_textmap(AwsXRayPropagator())``, at any time, by any reference."""
    from opentelemetry.propagators.aws.aws_xray_propagator import (
        AwsXRayLambdaPropagator,
        AwsXRayPropagator,
    )

    propagate = global_textmap
    # `from opentelemetry.propagate import set_global_textmap` at the top of a module.
    bound_set = propagate.set_global_textmap
    aws: Any = AwsXRayLambdaPropagator() if when == "lambda" else AwsXRayPropagator()
    if when == "before":
        propagate.set_global_textmap(aws)
    tracing.configure(backend="otel", **_provider_for(provider))
    if when in ("after", "lambda"):
        propagate.set_global_textmap(aws)
    elif when == "bound":
        bound_set(aws)
    carriers: list[dict[str, str]] = []

    @tracing.handler
    def handler(event: Any, context: Any) -> None:
        if when == "in the handler":
            propagate.set_global_textmap(aws)
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        carriers.append(carrier)

    for _ in range(2):
        root, parent = new_trace_id(), new_id()
        monkeypatch.setenv("_X_AMZN_TRACE_ID", f"Root={root};Parent={parent};Sampled=1;{_LINEAGE}")
        with caplog.at_level(logging.WARNING):
            handler({}, testing.FakeContext())
        header = carriers[-1]["X-Amzn-Trace-Id"]
        assert header.startswith(f"Root={root};Parent=")
        assert header.endswith(f";Sampled=1;{_LINEAGE}")
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_a_textmap_that_cannot_be_looked_into_is_logged_once(
    monkeypatch: pytest.MonkeyPatch, global_textmap: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from opentelemetry.propagators.composite import CompositePropagator

    propagate = global_textmap
    own_get, own_set = propagate.get_global_textmap, propagate.set_global_textmap

    class Opaque(CompositePropagator):
        """A composite from some future SDK: members kept in another shape."""

        def __init__(self) -> None:
            super().__init__([])
            self._propagators = iter(())  # type: ignore[assignment]

    tracing.configure(backend="otel")
    with caplog.at_level(logging.WARNING, logger="tracing"):
        for _ in range(2):
            propagate.set_global_textmap(Opaque())
            propagate.inject({})
    [record] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert record.name == "tracing.backends.otel"
    assert "Lineage" in record.getMessage()
    assert record.args  # lazy %-formatting
    tracing.testing.reset()  # OTel's own functions are put back
    assert (propagate.get_global_textmap, propagate.set_global_textmap) == (own_get, own_set)
