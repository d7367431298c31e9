"""Differential: our OTLP against OpenTelemetry's own encoder, on spans the real SDK made.

Hypothesis builds OTel spans through the real SDK (``TracerProvider``, several
tracers with their instrumentation scopes, versions, schema URLs and
attributes; a resource; ``SpanLimits`` small enough to force drops): trees of
spans of every kind, with attributes of every type the SDK accepts (bool, int,
float, str, bytes, sequences, nested mappings, int and str subclasses, Enums),
events and links with attributes, statuses, trace state from a remote parent.
The spans go out through the library (``backend="otel"``) on both export paths
that write OTLP: the ``otlp-udp`` datagrams (to a UDP listener of the test) and
the ``otlp`` HTTP bodies (to an HTTP server of the test). The same SDK spans,
taken from an in-memory exporter on the same provider, are encoded by
``opentelemetry.exporter.otlp.proto.common.trace_encoder.encode_spans``. All
three requests are decoded with ``opentelemetry-proto`` and compared field by
field, span by span, grouped by instrumentation scope.

Where the library differs on purpose, only that field is normalised
(``_normalised``), and the reason is written there:

* ``flags`` of spans and links: ours carry the W3C sampled bit as well;
* ``Link.trace_state``: ours is written, OTel Python's encoder leaves it out;
* the resource: ours is the library's own (Lambda's attributes, the service
  name by the library's rules, no ``telemetry.sdk.*``) with the provider's
  attributes merged in; checked for that, not compared;
* spans made during init are re-stamped into the first invocation's trace by
  design (tested in ``tests/functional/test_otlp_export.py``): the spans here
  are made outside Lambda, where nothing is re-stamped.

Generated values stay where OTel's encoder can write them: integers within
int64 and text without lone surrogates (OTel's encoder drops such an
attribute; ours writes it as text, see ``test_otlp.py``).

``make test`` runs 300 examples; ``make fuzz`` many more
(``TRACING_OTLP_DIFFERENTIAL_EXAMPLES``).
"""

from __future__ import annotations

import contextlib
import enum
import gzip
import http
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from google.protobuf.json_format import MessageToDict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

import tracing
from tracing import testing
from tracing._header import new_id, new_trace_id
from tracing._runtime import get_runtime
from tracing._scrub import scrub_text, scrub_url
from tracing.exporters.otlp_http import OTLPHTTPEmitter

from .._emitters import Both

EXAMPLES = int(os.environ.get("TRACING_OTLP_DIFFERENTIAL_EXAMPLES", "300"))


# -- values the SDK accepts -----------------------------------------------------------


class Tier(str, enum.Enum):
    GOLD = "gold"
    SILVER = "silver"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Label(str):
    """A plain str subclass."""


class Count(int):
    """A plain int subclass."""


class Ratio(float):
    """A plain float subclass."""


_ENUMS: list[Any] = [*Tier, *Level, http.HTTPStatus.NOT_FOUND, http.HTTPStatus.OK]
if hasattr(enum, "StrEnum"):  # Python 3.11+
    _ENUMS += list(enum.StrEnum("Color", ["RED", "BLUE"]))

texts = st.text(max_size=24)
keys = st.text(min_size=1, max_size=12)
int64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
scalars = st.one_of(
    st.booleans(),
    int64,
    st.floats(),  # NaN and the infinities included
    texts,
    st.binary(max_size=16),
    st.sampled_from(_ENUMS),
    st.builds(Label, texts),
    st.builds(Count, int64),
    st.builds(Ratio, st.floats()),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(keys, inner, max_size=4),
    ),
    max_leaves=8,
)
attribute_sets = st.dictionaries(keys, values, max_size=6)


# -- spans ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LinkSpec:
    trace_id: int
    span_id: int
    remote: bool
    sampled: bool
    state: tuple[tuple[str, str], ...]
    attributes: dict[str, Any]


@dataclass(frozen=True)
class SpanSpec:
    tracer: int
    name: str
    kind: SpanKind
    attributes: dict[str, Any]
    events: tuple[tuple[str, dict[str, Any], int | None], ...]
    links: tuple[LinkSpec, ...]
    status: tuple[StatusCode, str | None] | None
    children: tuple[SpanSpec, ...]


@dataclass(frozen=True)
class Program:
    scopes: tuple[tuple[str, str | None, str | None, dict[str, Any]], ...]
    resource: dict[str, Any]
    create_resource: bool
    limits: dict[str, int]
    remote_parent: tuple[int, int, tuple[tuple[str, str], ...]] | None
    under_core: bool
    roots: tuple[SpanSpec, ...]


state_entries = st.lists(
    st.tuples(
        st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True),
        st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True),
    ),
    max_size=3,
    unique_by=lambda entry: entry[0],
).map(tuple)
ids = st.integers(min_value=1, max_value=2**64 - 1)
links = st.builds(
    LinkSpec,
    st.integers(min_value=1, max_value=2**128 - 1),
    ids,
    st.booleans(),
    st.booleans(),
    state_entries,
    attribute_sets,
)
statuses = st.one_of(
    st.none(),
    st.just((StatusCode.UNSET, None)),
    st.just((StatusCode.OK, None)),
    st.tuples(
        st.just(StatusCode.ERROR),
        st.one_of(st.none(), texts, st.just("failed: https://u:p@api.example.com/x?token=1")),
    ),
)
events = st.tuples(
    texts, attribute_sets, st.one_of(st.none(), st.integers(min_value=0, max_value=2**63))
)


def _spans(tracers: int) -> st.SearchStrategy[SpanSpec]:
    def node(children: st.SearchStrategy[tuple[SpanSpec, ...]]) -> st.SearchStrategy[SpanSpec]:
        return st.builds(
            SpanSpec,
            st.integers(min_value=0, max_value=tracers - 1),
            texts,
            st.sampled_from(list(SpanKind)),
            attribute_sets,
            st.lists(events, max_size=3).map(tuple),
            st.lists(links, max_size=2).map(tuple),
            statuses,
            children,
        )

    leaf = node(st.just(()))
    middle = node(st.lists(leaf, max_size=2).map(tuple))
    return node(st.lists(st.one_of(leaf, middle), max_size=3).map(tuple))


scope_attributes = st.dictionaries(keys, scalars, max_size=3)
scopes = st.lists(
    st.tuples(
        st.from_regex(r"[a-z][a-z0-9._]{0,20}", fullmatch=True),
        st.one_of(st.none(), st.from_regex(r"[0-9]{1,2}\.[0-9]{1,2}", fullmatch=True)),
        st.one_of(st.none(), st.just("https://opentelemetry.io/schemas/1.21.0")),
        scope_attributes,
    ),
    min_size=1,
    max_size=3,
).map(tuple)
limits = st.fixed_dictionaries(
    {},
    optional={
        "max_span_attributes": st.integers(min_value=0, max_value=4),
        "max_events": st.integers(min_value=0, max_value=2),
        "max_links": st.integers(min_value=0, max_value=1),
        "max_event_attributes": st.integers(min_value=0, max_value=2),
        "max_link_attributes": st.integers(min_value=0, max_value=2),
        "max_attribute_length": st.integers(min_value=1, max_value=8),
    },
)


@st.composite
def programs(draw: st.DrawFn) -> Program:
    chosen = draw(scopes)
    return Program(
        scopes=chosen,
        resource=draw(st.dictionaries(keys, st.one_of(texts, int64, st.booleans()), max_size=3)),
        create_resource=draw(st.booleans()),
        limits=draw(limits),
        remote_parent=draw(
            st.one_of(
                st.none(),
                st.tuples(st.integers(min_value=1, max_value=2**128 - 1), ids, state_entries),
            )
        ),
        under_core=draw(st.booleans()),
        roots=draw(st.lists(_spans(len(chosen)), min_size=1, max_size=2).map(tuple)),
    )


def _run(program: Program, tracers: list[trace.Tracer]) -> None:
    parent_context = None
    if program.remote_parent is not None:
        trace_id, span_id, state = program.remote_parent
        remote = SpanContext(
            trace_id, span_id, True, TraceFlags(TraceFlags.SAMPLED), TraceState(list(state))
        )
        parent_context = trace.set_span_in_context(trace.NonRecordingSpan(remote))

    def start(spec: SpanSpec, context: Any) -> None:
        span_links = [
            Link(
                SpanContext(
                    link.trace_id,
                    link.span_id,
                    link.remote,
                    TraceFlags(TraceFlags.SAMPLED if link.sampled else TraceFlags.DEFAULT),
                    TraceState(list(link.state)),
                ),
                link.attributes,
            )
            for link in spec.links
        ]
        tracer = tracers[spec.tracer]
        with tracer.start_as_current_span(
            spec.name,
            context=context,
            kind=spec.kind,
            attributes=spec.attributes,
            links=span_links,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            for name, attributes, timestamp in spec.events:
                span.add_event(name, attributes, timestamp)
            if spec.status is not None:
                span.set_status(Status(*spec.status))
            for child in spec.children:
                start(child, None)

    for root in program.roots:
        start(root, parent_context)


# -- decoding and comparing ---------------------------------------------------------


def _normalised(request: ExportTraceServiceRequest) -> dict[str, dict[str, dict[str, Any]]]:
    """Spans by scope (name, version, attributes, schema URL), then by span id."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            scope = repr(
                (
                    MessageToDict(scope_spans.scope, preserving_proto_field_name=True),
                    scope_spans.schema_url,
                )
            )
            for span in scope_spans.spans:
                fields = MessageToDict(span, preserving_proto_field_name=True)
                # Deliberate: our flags carry the W3C trace flags (the sampled bit)
                # in their low byte, as the proto defines; OTel Python writes only
                # the parent's remoteness bits.
                fields["flags"] = span.flags & ~0xFF
                for link, message in zip(fields.get("links", []), span.links, strict=True):
                    link["flags"] = message.flags & ~0xFF
                    # Deliberate: OTel Python's encoder leaves a link's trace state out.
                    link.pop("trace_state", None)
                if not fields.get("status"):
                    # An UNSET status without description: OTel writes an empty
                    # message, we write none; both decode the same.
                    fields.pop("status", None)
                _secrets_rule(fields)
                out.setdefault(scope, {})[span.span_id.hex()] = fields
    return out


def _secrets_rule(fields: dict[str, Any]) -> None:
    """Deliberate: the URL-secret rule (``tracing/_scrub.py``) on both sides.

    We cut a URL's credentials and query from the status description, from
    ``url.full``/``http.url`` and from exception events' text; OTel writes them
    as given. Applied to both decoded sides (it is idempotent), so only that
    difference is forgiven.
    """
    status = fields.get("status")
    if isinstance(status, dict) and isinstance(status.get("message"), str):
        status["message"] = scrub_text(status["message"])
    for holder in [fields, *fields.get("events", [])]:
        for item in holder.get("attributes", []):
            value = item.get("value", {}).get("string_value")
            if value is None:
                continue
            if item["key"] in ("url.full", "http.url"):
                item["value"]["string_value"] = scrub_url(value)
            elif item["key"] in ("exception.message", "exception.stacktrace"):
                item["value"]["string_value"] = scrub_text(value)


def _merged(bodies: list[bytes]) -> ExportTraceServiceRequest:
    merged = ExportTraceServiceRequest()
    for body in bodies:
        merged.MergeFromString(body)
    return merged


def _resource_attributes(request: ExportTraceServiceRequest) -> list[dict[str, Any]]:
    return [
        {a["key"]: a["value"] for a in MessageToDict(r.resource).get("attributes", [])}
        for r in request.resource_spans
    ]


class _Collector(BaseHTTPRequestHandler):
    received: list[bytes] = []  # noqa: RUF012

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.received.append(body)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture
def collector() -> Iterator[str]:
    _Collector.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/v1/traces"
    server.shutdown()
    server.server_close()


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(program=programs())
def test_both_otlp_paths_write_what_opentelemetrys_encoder_writes(
    program: Program, daemon: testing.DaemonListener, collector: str
) -> None:
    check(program, daemon, collector)


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def check(program: Program, daemon: testing.DaemonListener, collector: str) -> None:
    """Run ``program`` and compare the three requests (see the module doc)."""
    testing.reset()
    daemon.sync()
    already = len(daemon.otlp)  # DaemonListener.clear() leaves ``otlp`` as it is
    _Collector.received = []
    resource = (Resource.create if program.create_resource else Resource)(program.resource)
    provider = TracerProvider(resource=resource, span_limits=SpanLimits(**program.limits))
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracers = [
        provider.get_tracer(name, version, schema_url, scope_attributes)
        for name, version, schema_url, scope_attributes in program.scopes
    ]
    # Under a core span: the spans are made in a Lambda invocation (the user's
    # spans nest under the library's ``## handler``, written by its writer for
    # foreign children); otherwise in a worker, where they are roots of their own.
    lambda_env = {
        "LAMBDA_TASK_ROOT": os.getcwd(),
        "AWS_LAMBDA_FUNCTION_NAME": "differential",
        "_X_AMZN_TRACE_ID": f"Root={new_trace_id()};Parent={new_id()};Sampled=1",
    }
    with _environment(lambda_env if program.under_core else {}):
        tracing.configure(backend="otel", exporter="otlp-udp", tracer_provider=provider)
        runtime = get_runtime()
        assert runtime is not None
        udp = runtime.emitter
        http_emitter = OTLPHTTPEmitter(udp.resource_attributes, {"url": collector})
        runtime.emitter = Both(udp, http_emitter)
        try:
            if program.under_core:

                @tracing.handler
                def handler(event: Any, context: Any) -> None:
                    _run(program, tracers)

                handler({}, testing.FakeContext())
            else:
                _run(program, tracers)
            tracing.flush()
        finally:
            testing.reset()
            provider.shutdown()

    finished = memory.get_finished_spans()
    theirs = _normalised(encode_spans(finished))
    [their_resource] = _resource_attributes(encode_spans(finished))
    daemon.sync()
    assert daemon.garbage == []
    for path, bodies in (
        ("otlp-udp", [body for sampled, body in daemon.otlp[already:] if sampled]),
        ("otlp", _Collector.received),
    ):
        request = _merged(bodies)
        ours = _normalised(request)
        # The library's own spans, in its own scope: the invocation (and Init).
        core = ours.pop(repr(({"name": "tracing"}, "")), {})
        names = sorted(span["name"] for span in core.values())
        assert names == (["## handler", "Init"] if program.under_core else []), (path, names)
        assert ours == theirs, path
        # Deliberate: one resource, the library's own, with the provider's
        # attributes merged in (its service.name kept unless OTel's placeholder).
        for our_resource in _resource_attributes(request):
            for key, value in their_resource.items():
                if key == "service.name" and value.get("stringValue", "").startswith(
                    "unknown_service"
                ):
                    continue
                assert our_resource[key] == value, (path, key)
