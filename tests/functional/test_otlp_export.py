"""exporter="otlp-udp" and "otlp": the same trees as the X-Ray documents, nothing lost.

The comparison runs one program once with both emitters side by side (each a
real one, sending to the same real UDP listener), so the X-Ray documents and
the OTLP spans describe the very same spans: the OTLP datagrams, decoded with
the real opentelemetry-proto package and turned into documents by X-Ray's
mapping (``tracing.local.collector.otlp``), must give the same trees.
"""

from __future__ import annotations

import contextlib
import enum
import gzip
import http
import json
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from google.protobuf.json_format import MessageToDict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

import tracing
from tracing import testing
from tracing._header import new_id, new_trace_id
from tracing._runtime import get_runtime
from tracing.exporters.otlp_udp import MAX_DATAGRAM, MAX_REQUEST
from tracing.exporters.xray_udp import UDPEmitter
from tracing.local.collector.otlp import request_documents
from tracing.local.runtime.aws import LocalAWS

from .._emitters import Both, until_sent

pytestmark = pytest.mark.usefixtures("in_lambda")

#: ``make fuzz`` multiplies the generated cases (TRACING_FUZZ_SCALE).
FUZZ_SCALE = int(os.environ.get("TRACING_FUZZ_SCALE", "1"))


def _entities(documents: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every entity by id, with its trace, its parent and its X-Ray fields."""
    out: dict[str, dict[str, Any]] = {}
    for document in documents:
        stack = [(document, document.get("parent_id"))]
        while stack:
            entity, parent = stack.pop()
            children = entity.get("subsegments") or []
            annotations = dict(entity.get("annotations") or {})
            out[entity["id"]] = {
                "name": entity["name"],
                "trace": document["trace_id"],
                "parent": parent,
                "start": round(entity["start_time"], 5),
                "end": round(entity.get("end_time", 0.0), 5),
                "annotations": annotations,
                "flags": [k for k in ("fault", "error", "throttle") if entity.get(k)],
                "namespace": entity.get("namespace"),
                "operation": (entity.get("aws") or {}).get("operation"),
                "exceptions": [
                    e.get("type") for e in (entity.get("cause") or {}).get("exceptions", [])
                ],
            }
            stack.extend((child, entity["id"]) for child in children)
    return out


def _otlp_documents(daemon: testing.DaemonListener) -> list[dict[str, Any]]:
    return [doc for sampled, body in daemon.otlp if sampled for doc in request_documents(body)]


def _program(backend: str, aws: LocalAWS, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, str]:
    for key, value in aws.env.items():
        monkeypatch.setenv(key, value)
    ssm = boto3.client("ssm")
    tracing.configure(backend=backend, exporter="otlp-udp")
    runtime = get_runtime()
    assert runtime is not None
    runtime.emitter = Both(UDPEmitter(runtime.settings.daemon_address), runtime.emitter)
    with tracing.span("load config", source="ssm") as span:
        span.put_metadata("currency", ssm.get_parameter(Name="/app/currency")["Parameter"])
    producer_root, producer_span = new_trace_id(), new_id()
    record = {
        "messageId": "m-1",
        "body": "{}",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:orders",
        "attributes": {"AWSTraceHeader": f"Root={producer_root};Parent={producer_span};Sampled=1"},
    }

    def process(message: dict[str, Any]) -> None:
        with tracing.span("save", sku="b-1"):
            pass

    @tracing.handler
    def handler(event: Any, context: Any) -> Any:
        with tracing.span("work", tier="gold") as work:
            work.put_metadata("order", {"sku": "b-1", "quantity": 2})
            with contextlib.suppress(ssm.exceptions.ParameterNotFound):
                ssm.get_parameter(Name="/app/missing")  # a 4xx: an error, not a fault
            try:
                with tracing.span("flaky"):
                    raise TimeoutError("upstream")
            except TimeoutError:
                pass
            if backend == "otel":
                from opentelemetry import trace

                with trace.get_tracer("user").start_as_current_span("charge") as charge:
                    charge.set_attribute("amount", 42)
                    charge.add_event("retry", {"attempt": 2})
        return tracing.sqs.process_batch(event, process)

    header = f"Root={new_trace_id()};Parent={new_id()};Sampled=1"
    monkeypatch.setenv("_X_AMZN_TRACE_ID", header)
    return handler({"Records": [record]}, testing.FakeContext()), producer_root


@pytest.mark.parametrize("backend", ["xray", "otel"])
def test_otlp_udp_gives_the_trees_of_the_xray_documents(
    backend: str, aws: LocalAWS, daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    result, producer_root = _program(backend, aws, monkeypatch)
    assert result == {"batchItemFailures": []}
    daemon.sync()
    assert daemon.garbage == []
    xray = _entities(daemon.documents)
    otlp = _entities(_otlp_documents(daemon))
    assert set(otlp) == set(xray)
    assert otlp == xray
    names = {entity["name"] for entity in xray.values()}
    assert {"Init", "load config", "## handler", "work", "flaky", "save"} <= names
    consumer = next(e for e in xray.values() if e["annotations"].get("MessageId") == "m-1")
    assert consumer["trace"] == producer_root  # the message's processing, in its producer's trace
    missing = next(e for e in xray.values() if e["operation"] == "GetParameter" and e["flags"])
    assert missing["flags"] == ["error"]


def test_otlp_udp_keeps_kinds_events_and_links(
    aws: LocalAWS, daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    _program("otel", aws, monkeypatch)
    daemon.sync()
    spans = {span.name: span for span in daemon.otlp_spans()}
    assert spans["charge"].kind == 1  # INTERNAL, as the user made it
    assert [event.name for event in spans["charge"].events] == ["retry"]
    assert spans["ssm"].kind == 3
    invocation = spans["## handler"]
    linked = {link.span_id.hex() for link in invocation.links}
    assert spans["Init"].span_id.hex() in linked  # the cold start's init work
    consumers = [s for s in daemon.otlp_spans() if s.kind == 5]
    assert len(consumers) == 1
    assert [link.span_id for link in consumers[0].links] == [invocation.span_id]


@pytest.mark.parametrize("backend", ["xray", "otel"])
def test_nothing_is_lost_at_any_size(
    backend: str, daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure(backend=backend, exporter="otlp-udp", max_spans_per_invocation=5000)

    @tracing.handler
    def handler(event: Any, context: Any) -> None:
        for i in range(3000):
            with tracing.span(f"step {i}") as span:
                span.put_metadata("blob", "x" * (50 if i % 100 else 55_000))

    monkeypatch.setenv("_X_AMZN_TRACE_ID", f"Root={new_trace_id()};Parent={new_id()};Sampled=1")
    handler({}, testing.FakeContext())
    daemon.sync()
    assert daemon.garbage == []
    assert all(len(datagram) <= 65_000 for datagram in daemon.datagrams)
    assert all(len(body) <= MAX_REQUEST for _, body in daemon.otlp)
    spans = daemon.otlp_spans()
    assert sorted(s.name for s in spans if s.name.startswith("step ")) == sorted(
        f"step {i}" for i in range(3000)
    )
    assert len(daemon.otlp) >= 10  # about 450 KB of spans: split, never one huge datagram
    truncated = [s.name for s in spans if any(a.key == "tracing.truncated" for a in s.attributes)]
    assert sorted(truncated) == sorted(f"step {i}" for i in range(0, 3000, 100))


@pytest.mark.parametrize("backend", ["xray", "otel"])
def test_a_timed_out_invocation_is_sent_as_spans_before_the_deadline(
    backend: str, daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure(backend=backend, exporter="otlp-udp", deadline_margin_ms=100)

    @tracing.handler
    def handler(event: Any, context: Any) -> str:
        with tracing.span("slow call"):
            until_sent(daemon)  # the guard fires 100 ms before the 300 ms deadline
        return "late"

    monkeypatch.setenv("_X_AMZN_TRACE_ID", f"Root={new_trace_id()};Parent={new_id()};Sampled=1")
    assert handler({}, testing.FakeContext(timeout_ms=300)) == "late"
    daemon.sync()
    spans = {span.name: span for span in daemon.otlp_spans()}
    for name in ("## handler", "slow call"):
        attributes = {a.key: a.value for a in spans[name].attributes}
        assert attributes["Timeout"].bool_value is True
        assert spans[name].status.code == 2
    assert len([s for s in daemon.otlp_spans() if s.name == "## handler"]) == 1  # sent once


class _Collector(BaseHTTPRequestHandler):
    """An OTLP/HTTP endpoint that keeps what it receives, headers included."""

    received: list[tuple[dict[str, str], bytes]] = []  # noqa: RUF012

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.received.append((dict(self.headers.items()), body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture
def collector(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[dict[str, str], bytes]]]:
    _Collector.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    yield _Collector.received
    server.shutdown()
    server.server_close()


def test_otlp_http_carries_the_real_spans_with_events_links_headers_and_gzip(
    collector: list[tuple[dict[str, str], bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from opentelemetry import trace

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=s%3Dcret,x-team=orders")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
    tracing.configure(backend="otel", exporter="otlp", service="orders")
    tracer = trace.get_tracer("user")
    with tracer.start_as_current_span("warm cache") as span:
        span.add_event("filled", {"entries": 3})
    other = trace.SpanContext(int(new_trace_id()[2:].replace("-", ""), 16), 0xAB, True)

    @tracing.handler
    def handler(event: Any, context: Any) -> None:
        with tracer.start_as_current_span(
            "publish", kind=trace.SpanKind.PRODUCER, links=[trace.Link(other, {"why": "fan-in"})]
        ) as publish:
            publish.add_event("sent", {"bytes": 10})
            publish.set_status(trace.Status(trace.StatusCode.ERROR, "partial"))

    root = new_trace_id()
    monkeypatch.setenv("_X_AMZN_TRACE_ID", f"Root={root};Parent={new_id()};Sampled=1")
    handler({}, testing.FakeContext())
    assert collector  # posted before the handler returned
    headers, _ = collector[-1]
    assert headers["x-api-key"] == "s=cret"
    assert headers["x-team"] == "orders"
    assert headers["Content-Type"] == "application/x-protobuf"
    spans = {}
    for _, raw in collector:
        request = ExportTraceServiceRequest()
        request.ParseFromString(raw)
        resource = {
            a.key: a.value.string_value for a in request.resource_spans[0].resource.attributes
        }
        assert resource["service.name"] == "orders"
        assert resource["cloud.platform"] == "aws_lambda"
        for scope_spans in request.resource_spans[0].scope_spans:
            for span in scope_spans.spans:
                spans[span.name] = (scope_spans.scope.name, span)
    assert {name: scope for name, (scope, _) in spans.items()} == {
        "Init": "tracing",  # the library's own spans
        "## handler": "tracing",
        "warm cache": "user",  # the application's, under the tracer that made them
        "publish": "user",
    }
    warm, publish, init = (spans[name][1] for name in ("warm cache", "publish", "Init"))
    assert [(e.name, e.attributes[0].value.int_value) for e in warm.events] == [("filled", 3)]
    assert warm.parent_span_id == init.span_id  # made at import: under Init, in the first trace
    assert warm.trace_id.hex() == root[2:10] + root[11:]
    assert publish.kind == 4
    assert [(e.name) for e in publish.events] == ["sent"]
    [link] = publish.links
    assert link.span_id == (0xAB).to_bytes(8, "big")
    assert link.attributes[0].value.string_value == "fan-in"
    assert (publish.status.code, publish.status.message) == (2, "partial")


def test_an_unreachable_otlp_endpoint_costs_one_warning_and_never_the_handler(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, refused_port: int
) -> None:
    endpoint = f"http://127.0.0.1:{refused_port}/v1/traces"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", endpoint)
    tracing.configure(backend="otel", exporter="otlp")
    handler = tracing.handler(lambda event, context: "ok")
    for _ in range(3):
        monkeypatch.setenv("_X_AMZN_TRACE_ID", f"Root={new_trace_id()};Parent={new_id()};Sampled=1")
        assert handler({}, testing.FakeContext()) == "ok"
    failures = [r for r in caplog.records if "could not export" in r.getMessage()]
    assert [r.levelname for r in failures] == ["WARNING"]  # once, however often it fails


def test_a_bad_otlp_endpoint_is_refused_at_configure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "ftp://127.0.0.1/v1/traces")
    with pytest.raises(ValueError, match="http"):
        tracing.configure(exporter="otlp")


def test_the_collectors_mapping_makes_a_server_root_a_segment_of_the_service() -> None:
    document = {
        "name": "svc",
        "id": new_id(),
        "trace_id": new_trace_id(),
        "start_time": 1.0,
        "end_time": 2.0,
        "annotations": {"k": "v"},
    }
    from tracing._otlp import Request, resource
    from tracing._otlp_spans import document_spans

    body = Request(resource({"service.name": "svc"}), "tracing").encode(document_spans(document))
    [converted] = request_documents(body)
    assert json.loads(json.dumps(converted))["annotations"] == {"k": "v"}
    assert converted["name"] == "svc"  # a SERVER root: a segment named after the service


@pytest.mark.parametrize("backend", ["xray", "otel"])
def test_unsampled_invocations_go_out_as_t1u_only_when_asked(
    backend: str, daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch, aws: LocalAWS
) -> None:
    monkeypatch.setenv("AWS_XRAY_DAEMON_ADDRESS", daemon.address)
    for name, value in aws.env.items():
        monkeypatch.setenv(name, value)
    tracing.configure(backend=backend, exporter="otlp-udp", send_unsampled=True)
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName=f"t1u-{new_id()}")["QueueUrl"]

    @tracing.handler
    def handler(event: Any, context: Any) -> None:
        with tracing.span("work"):
            if backend == "otel":
                from opentelemetry import trace

                with trace.get_tracer("user").start_as_current_span("user span"):
                    pass
            sqs.send_message(QueueUrl=url, MessageBody="x")

    handler({}, testing.FakeContext())  # the cold one, sampled: Init and all
    daemon.sync()
    daemon.clear()
    assert len(testing.receive_messages(sqs, url, 1)) == 1  # its message, out of the way
    root, parent = new_trace_id(), new_id()
    monkeypatch.setenv(
        "_X_AMZN_TRACE_ID", f"Root={root};Parent={parent};Sampled=0;Lineage=a87bd80c:1"
    )
    handler({}, testing.FakeContext())
    daemon.sync()
    assert daemon.documents == []
    assert [sampled for sampled, _ in daemon.otlp] == [False]  # one T1U datagram
    spans = daemon.otlp_spans(sampled=False)
    names = sorted(s.name for s in spans)
    expected = ["## handler", "sqs", "work"] + (["user span"] if backend == "otel" else [])
    assert names == sorted(expected)
    assert {s.trace_id.hex() for s in spans} == {root[2:10] + root[11:]}
    assert all(s.flags & 0x1 == 0 for s in spans)  # not sampled
    by_name = {s.name: s for s in spans}
    assert by_name["## handler"].parent_span_id.hex() == parent
    # Passed on as unsampled, with the recorded call as the parent, Lineage kept.
    [message] = testing.receive_messages(sqs, url, 1)
    header = message["Attributes"]["AWSTraceHeader"]
    assert header == (
        f"Root={root};Parent={by_name['sqs'].span_id.hex()};Sampled=0;Lineage=a87bd80c:1"
    )


def test_a_slow_unsampled_invocation_is_never_sent_flagged_sampled(
    daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure(exporter="otlp-udp", send_unsampled=True, deadline_margin_ms=100)

    @tracing.handler
    def handler(event: Any, context: Any) -> str:
        with tracing.span("slow call"):
            time.sleep(0.3)  # past the guard's moment (100 ms before the 300 ms deadline)
        return "late"

    header = f"Root={new_trace_id()};Parent={new_id()};Sampled=0"
    monkeypatch.setenv("_X_AMZN_TRACE_ID", header)
    assert handler({}, testing.FakeContext(timeout_ms=300)) == "late"
    daemon.sync()
    assert [sampled for sampled, _ in daemon.otlp] == [False]  # T1U once, by the handler
    names = sorted(s.name for s in daemon.otlp_spans(sampled=False))
    assert names == ["## handler", "slow call"]


def test_otlp_http_sends_unsampled_spans_when_asked(
    collector: list[tuple[dict[str, str], bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.configure(exporter="otlp", send_unsampled=True)
    handler = tracing.handler(lambda event, context: None)
    monkeypatch.setenv("_X_AMZN_TRACE_ID", f"Root={new_trace_id()};Parent={new_id()};Sampled=0")
    handler({}, testing.FakeContext())
    spans = [
        span
        for _, body in collector
        for resource in ExportTraceServiceRequest.FromString(body).resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]
    assert [(s.name, s.flags & 0x1) for s in spans] == [("## _lambda_", 0)]


def test_send_unsampled_needs_an_otlp_exporter() -> None:
    with pytest.raises(ValueError, match="OTLP exporter"):
        tracing.configure(send_unsampled=True)


# -- the application's OTel spans, as OpenTelemetry's own encoder writes them ---------


class Tier(str, enum.Enum):
    GOLD = "gold"


def _by_scope(bodies: list[bytes]) -> dict[str, dict[str, Any]]:
    """Span name -> (its scope as a dict, the span) over every request."""
    out: dict[str, Any] = {}
    for body in bodies:
        for resource_spans in ExportTraceServiceRequest.FromString(body).resource_spans:
            for scope_spans in resource_spans.scope_spans:
                scope = MessageToDict(scope_spans.scope, preserving_proto_field_name=True)
                for span in scope_spans.spans:
                    out[span.name] = ({**scope, "schema_url": scope_spans.schema_url}, span)
    return out


def _comparable(span: Any) -> dict[str, Any]:
    fields = MessageToDict(span, preserving_proto_field_name=True)
    fields["flags"] = span.flags & ~0xFF  # ours carry the sampled bit too (deliberate)
    for link in fields.get("links", []):
        link["flags"] = int(link["flags"]) & ~0xFF
        link.pop("trace_state", None)  # OTel Python's encoder leaves it out (deliberate)
    if not fields.get("status"):
        fields.pop("status", None)  # UNSET: OTel writes an empty Status, we write none
    return fields


@pytest.mark.parametrize("exporter", ["otlp-udp", "otlp"])
def test_the_users_otel_span_is_written_as_opentelemetrys_encoder_writes_it(
    exporter: str,
    daemon: testing.DaemonListener,
    collector: list[tuple[dict[str, str], bytes]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.trace import SpanLimits, TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    provider = TracerProvider(
        span_limits=SpanLimits(max_event_attributes=1, max_link_attributes=1, max_events=1)
    )
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracing.configure(backend="otel", exporter=exporter, tracer_provider=provider)
    tracer = provider.get_tracer("my.lib", "9.9", "https://opentelemetry.io/schemas/1.21.0")
    other = trace.SpanContext(0x5759E988BD862E3FE1BE46A994272793, 0xAB, True)

    @tracing.handler
    def handler(event: Any, context: Any) -> None:
        with tracer.start_as_current_span(
            "charge",
            attributes={
                "payload": b"\x00\xff",
                "limits": {"cpu": 2, "tags": ["a", "b"], "raw": b"\x01"},
                "http.response.status_code": http.HTTPStatus.NOT_FOUND,
                "tier": Tier.GOLD,
                "ok": True,
            },
            links=[trace.Link(other, {"why": "fan-in", "payload": b"\x02", "n": 3})],
        ) as span:
            span.add_event("first")  # the oldest, over max_events: counted as dropped
            span.add_event("retry", {"attempt": 2, "blob": b"\x03", "extra": "x"})

    monkeypatch.setenv("_X_AMZN_TRACE_ID", f"Root={new_trace_id()};Parent={new_id()};Sampled=1")
    handler({}, testing.FakeContext())
    daemon.sync()
    bodies = (
        [body for _, body in daemon.otlp] if exporter == "otlp-udp" else [b for _, b in collector]
    )
    ours = _by_scope(bodies)
    [theirs_scope] = encode_spans(memory.get_finished_spans()).resource_spans[0].scope_spans
    [theirs] = theirs_scope.spans
    scope, charge = ours["charge"]
    assert scope == {
        "name": "my.lib",
        "version": "9.9",
        "schema_url": "https://opentelemetry.io/schemas/1.21.0",
    }
    assert ours["## handler"][0]["name"] == "tracing"  # the library's own, in its own scope
    assert _comparable(charge) == _comparable(theirs)
    attributes = {a.key: a.value for a in charge.attributes}
    assert attributes["payload"].bytes_value == b"\x00\xff"
    assert attributes["http.response.status_code"].int_value == 404
    assert attributes["tier"].string_value == "gold"
    assert [kv.key for kv in attributes["limits"].kvlist_value.values] == ["cpu", "tags", "raw"]
    assert charge.dropped_events_count == 1
    assert [(e.name, e.dropped_attributes_count) for e in charge.events] == [("retry", 2)]
    assert charge.links[0].dropped_attributes_count == 2


# -- nothing lost, whatever the size -------------------------------------------------


@pytest.mark.parametrize(
    ("case", "key_length", "value_length"),
    [
        ("a 100 KB status", 0, 0),
        ("300-character keys", 300, 1000),
        ("150-character keys", 150, 800),
    ],
)
def test_an_oversize_otel_span_arrives_in_a_datagram_within_the_limit(
    case: str,
    key_length: int,
    value_length: int,
    daemon: testing.DaemonListener,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from opentelemetry import trace

    tracing.configure(backend="otel", exporter="otlp-udp")

    @tracing.handler
    def handler(event: Any, context: Any) -> None:
        with trace.get_tracer("my.lib").start_as_current_span("big") as span:
            if not key_length:
                span.set_status(trace.Status(trace.StatusCode.ERROR, "x" * 100_000))
            for i in range(60 if key_length else 0):
                span.set_attribute(f"{i:03}" + "k" * (key_length - 3), "v" * value_length)

    monkeypatch.setenv("_X_AMZN_TRACE_ID", f"Root={new_trace_id()};Parent={new_id()};Sampled=1")
    handler({}, testing.FakeContext())
    daemon.sync()
    runtime = get_runtime()
    assert runtime is not None
    assert runtime.emitter.failed == 0
    assert daemon.garbage == []
    assert max(len(datagram) for datagram in daemon.datagrams) <= MAX_DATAGRAM == 64_000
    [big] = [span for span in daemon.otlp_spans() if span.name == "big"]
    attributes = {a.key: a.value.string_value for a in big.attributes}
    note = json.loads(attributes["tracing.truncated"])
    if key_length:
        assert big.dropped_attributes_count == 60 - (len(attributes) - 1)
        assert len(note["attributes"]) >= 1
    else:
        assert big.status.code == 2
        assert big.status.message == "x" * len(big.status.message)
        assert note["status"] == 100_000


def _fuzz_span(index: int, name: str, status: str, attributes: list[tuple[str, str]]) -> bytes:
    from tracing import _otlp

    return _otlp.span_message(
        bytes(16),
        index.to_bytes(8, "big"),
        None,
        name,
        1,
        1,
        2,
        b"".join(_otlp.attribute(k, v) for k, v in attributes),
        status=_otlp.STATUS_ERROR if status else _otlp.STATUS_UNSET,
        status_message=status,
    )


_sizes = st.one_of(st.integers(0, 40), st.integers(0, 100_000))
_texts = st.builds(lambda n, c: c * n, _sizes, st.sampled_from(["a", "é", "✓", "\U0001f600"]))


@settings(
    max_examples=40 * FUZZ_SCALE,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)
@given(
    spans=st.lists(
        st.tuples(_texts, _texts, st.lists(st.tuples(_texts, _texts), max_size=30)),
        min_size=1,
        max_size=6,
    ),
    scoped=st.booleans(),
)
def test_every_otlp_datagram_fits_and_every_span_arrives(
    spans: list[tuple[str, str, list[tuple[str, str]]]],
    scoped: bool,
    daemon: testing.DaemonListener,
) -> None:
    from tracing import _otlp
    from tracing.exporters.otlp_udp import OTLPUDPEmitter

    emitter = OTLPUDPEmitter(daemon.address, {"service.name": "fuzz"})
    scope = _otlp.scope_fields("my.lib", "1.0") if scoped else None
    bodies = [
        _otlp.scoped(_fuzz_span(i + 1, *spec), scope if i % 2 else None)
        for i, spec in enumerate(spans)
    ]
    daemon.sync()
    already = len(daemon.datagrams)
    emitter._send(bodies, True)
    daemon.sync()
    emitter.close()
    assert emitter.failed == 0
    assert all(len(datagram) <= MAX_DATAGRAM for datagram in daemon.datagrams[already:])
    received = [
        span.span_id
        for _, body in daemon.otlp[-(len(daemon.datagrams) - already) :]
        for resource_spans in ExportTraceServiceRequest.FromString(body).resource_spans
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
    ]
    assert sorted(received) == [(i + 1).to_bytes(8, "big") for i in range(len(spans))]


# -- OpenTelemetry's service name ------------------------------------------------------


@pytest.mark.parametrize("backend", ["xray", "otel"])
@pytest.mark.parametrize("exporter", ["xray-udp", "otlp-udp", "otlp"])
@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OTEL_SERVICE_NAME", "orders-otel"),
        ("OTEL_RESOURCE_ATTRIBUTES", "team=payments,service.name=orders-otel"),
    ],
)
def test_opentelemetrys_service_name_names_the_service_on_every_path(
    backend: str,
    exporter: str,
    variable: str,
    value: str,
    daemon: testing.DaemonListener,
    collector: list[tuple[dict[str, str], bytes]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(variable, value)  # AWS_LAMBDA_FUNCTION_NAME=orders-api (in_lambda)
    tracing.configure(backend=backend, exporter=exporter)
    handler = tracing.handler(lambda event, context: None)
    monkeypatch.setenv("_X_AMZN_TRACE_ID", f"Root={new_trace_id()};Parent={new_id()};Sampled=1")
    handler({}, testing.FakeContext())
    daemon.sync()
    if exporter == "xray-udp":
        [invocation] = [d for d in daemon.documents if d["name"].startswith("## ")]
        assert invocation["annotations"]["Service"] == "orders-otel"
        return
    bodies = [b for _, b in daemon.otlp] if exporter == "otlp-udp" else [b for _, b in collector]
    requests = [ExportTraceServiceRequest.FromString(body) for body in bodies]
    resources = {
        a.value.string_value
        for request in requests
        for resource_spans in request.resource_spans
        for a in resource_spans.resource.attributes
        if a.key == "service.name"
    }
    assert resources == {"orders-otel"}
    [invocation] = [s for s in _by_scope(bodies).values() if s[1].name.startswith("## ")]
    service = {a.key: a.value.string_value for a in invocation[1].attributes}["Service"]
    assert service == "orders-otel"


def test_a_datagram_that_cannot_fit_is_counted_never_sent_over_the_limit(
    daemon: testing.DaemonListener, caplog: pytest.LogCaptureFixture
) -> None:
    from tracing import _otlp
    from tracing.exporters.otlp_udp import OTLPUDPEmitter

    # A resource that alone fills a datagram (OTEL_RESOURCE_ATTRIBUTES gone wild).
    emitter = OTLPUDPEmitter(daemon.address, {"service.name": "svc", "huge": "x" * 70_000})
    span = _otlp.span_message(bytes(16), bytes(8), None, "s", 1, 1, 2)
    daemon.sync()
    already = len(daemon.datagrams)
    emitter._send([span], True)
    emitter._send([span, span], True)
    daemon.sync()
    emitter.close()
    assert daemon.datagrams[already:] == []
    assert emitter.failed == 3  # one per datagram it would have taken
    assert len([r for r in caplog.records if "OTLP datagram" in r.getMessage()]) == 1
