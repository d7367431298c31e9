"""The fault-injection matrix of issue "Reliability and security".

Rule under test (DESIGN.md, "Reliability and security rules"): tracing never
changes the handler's outcome, and a failure inside tracing is logged once.

For every fault, on both backends:

* the handler is run untraced and traced, and each traced outcome must equal the
  untraced one: the same return value, or an exception of the same type, message,
  args and ``__context__`` type. In process the traced caller must also receive the
  very *object* the handler body returned or raised;
* over N >= 5 invocations, a ``tracing*`` logger emits at most one WARNING (and
  exactly one when the UDP emitter recorded a failure: failures are not silent).

Faults about the Lambda lifecycle (deadline, ``SystemExit`` in a real process,
missing trace header, context, a RecursionError in the runtime) run in the real
``awslambdaric`` through ``LocalLambda`` against moto; the untraced baseline there
is the same module with ``TRACING_DISABLED=1``. The others run in process against
a real UDP listener, the untraced baseline being the same function called before
``configure()``. In Lambda, time is part of the outcome (past the deadline the
answer becomes a timeout), so the recursion faults also bound how much slower
tracing makes an invocation than its untraced baseline, measured in the same test
(never against a fixed time: the suite runs on busy machines too).

Faults that only exist on one backend have an analogue on the other:
``exporter-raises`` is a raising ``SpanExporter`` on otel and a raising
``runtime.emitter.send`` on xray; ``processor-on-start-raises`` /
``processor-on-end-raises`` are a user ``SpanProcessor`` raising on otel, and on
xray a metadata value whose ``repr`` raises / an SDK subsegment whose ``to_dict``
raises.

Every test adds a row to ``RESULTS``; ``conftest.py`` prints the table at the end.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import ipaddress
import logging
import os
import socket
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

import tracing
from tracing import testing
from tracing._header import new_id, new_trace_id
from tracing._runtime import Runtime, get_runtime
from tracing._scope import STACK
from tracing.local.runtime import InvokeResult
from tracing.local.runtime.aws import LocalAWS

from .conftest import DEADLINE_TIMEOUT_S, RUNTIME_TIMEOUT_S

if TYPE_CHECKING:
    from .conftest import Runtimes

N = 5
BACKENDS = ("xray", "otel")
#: One row per test: (fault, backend, outcome). Printed by conftest.py.
RESULTS: list[tuple[str, str, str]] = []

Scenario = Callable[["Env"], None]
FAULTS: dict[str, Scenario] = {}


def fault(name: str) -> Callable[[Scenario], Scenario]:
    """Register a scenario under its test id."""

    def register(scenario: Scenario) -> Scenario:
        FAULTS[name] = scenario
        return scenario

    return register


# -- outcomes ----------------------------------------------------------------


@dataclass
class Outcome:
    """What a call returned or raised."""

    raised: bool
    value: Any

    def signature(self) -> tuple[Any, ...]:
        if not self.raised:
            return ("return", self.value)
        exc = self.value
        context = exc.__context__
        if isinstance(exc, RecursionError):
            # Which call hits the limit, and so the message's wording ("... while
            # calling a Python object"), depends on the frames on the stack; any
            # decorator shifts it. The type and the absence of a context are what
            # must not change.
            return ("raise", RecursionError, None if context is None else type(context))
        return ("raise", type(exc), str(exc), exc.args, None if context is None else type(context))

    def describe(self) -> str:
        return f"raises {type(self.value).__name__}" if self.raised else "returns"


def call(fn: Callable[..., Any], event: Any, context: Any) -> Outcome:
    """Call a handler, keeping whatever it raised (SystemExit and friends too)."""
    try:
        return Outcome(False, fn(event, context))
    except BaseException as exc:
        return Outcome(True, exc)


def user_handler(body: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """Wrap a handler body so the test knows the objects it returned or raised."""
    made: list[Any] = []

    @functools.wraps(body)
    def handler(event: Any, context: Any) -> Any:
        try:
            value = body(event, context)
        except BaseException as exc:
            made.append(exc)
            raise
        made.append(value)
        return value

    handler.made = made  # type: ignore[attr-defined]
    return handler


def tracing_warnings(records: list[logging.LogRecord]) -> list[str]:
    return [
        f"{r.name}: {r.getMessage()}"
        for r in records
        if r.name.startswith("tracing") and r.levelno >= logging.WARNING
    ]


# -- documents -----------------------------------------------------------------


def all_entities(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [entity for doc in docs for entity in testing.iter_entities(doc)]


def parent_names(docs: list[dict[str, Any]]) -> dict[str, str | None]:
    """Entity name -> name of its parent, nested or by ``parent_id`` across documents."""
    by_id = {entity["id"]: entity for entity in all_entities(docs)}
    parent_of: dict[str, str] = {}
    for doc in docs:
        if doc.get("parent_id") in by_id:
            parent_of[doc["id"]] = doc["parent_id"]
        for entity in testing.iter_entities(doc):
            for child in entity.get("subsegments", ()):
                parent_of[child["id"]] = entity["id"]
    return {
        by_id[child]["name"]: by_id[parent]["name"] if parent in by_id else None
        for child, parent in parent_of.items()
    }


def invocation_docs(docs: list[dict[str, Any]], name: str = "## handler") -> list[dict[str, Any]]:
    return [doc for doc in docs if doc.get("name") == name]


def valid(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for doc in docs:
        assert testing.check_document(doc) == [], doc.get("name")
    return docs


def header() -> str:
    return f"Root={new_trace_id()};Parent={new_id()};Sampled=1"


# -- the environment of one test -------------------------------------------------


@dataclass
class Env:
    fault: str
    backend: str
    request: pytest.FixtureRequest
    monkeypatch: pytest.MonkeyPatch
    caplog: pytest.LogCaptureFixture
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        self.notes.append(text)

    @property
    def aws(self) -> LocalAWS:
        aws: LocalAWS = self.request.getfixturevalue("aws")
        return aws

    @property
    def runtimes(self) -> Runtimes:
        runtimes: Runtimes = self.request.getfixturevalue("runtimes")
        return runtimes


@dataclass
class Runs:
    """The result of `run_in_process`."""

    runtime: Runtime
    traced: list[Outcome]
    warnings: list[str]
    docs: list[dict[str, Any]]
    durations: list[float]
    daemon: testing.DaemonListener | None


def run_in_process(
    env: Env,
    body: Callable[[Any, Any], Any],
    *,
    daemon_address: str | None = None,
    options: dict[str, Any] | None = None,
    inject: Callable[[Runtime], None] | None = None,
    disabled: bool = False,
    max_slowdown: float | None = None,
) -> Runs:
    """Run ``body`` N times untraced, then N times traced, and compare the outcomes.

    With ``max_slowdown``, the median traced invocation may take at most that many
    times the median untraced one, both measured here in CPU time of the calling
    thread (``time.thread_time``): what tracing costs, which a busy machine does
    not change, where it stretches wall time, and more for a long call than for a
    short one (a 1 ms call runs within its time slice, a 100 ms one is shared).
    In Lambda, the function's CPU time is its wall time. The median ignores one
    invocation caught by a collection. An invocation alone 5x past the bound fails
    at once, so a pathologically slow library does not slow the suite down.
    """
    env.request.getfixturevalue("in_lambda")
    daemon: testing.DaemonListener | None = None
    if daemon_address is None:
        daemon = env.request.getfixturevalue("daemon")
    else:
        env.monkeypatch.setenv("AWS_XRAY_DAEMON_ADDRESS", daemon_address)
    handler = user_handler(body)
    made: list[Any] = handler.made  # type: ignore[attr-defined]

    assert get_runtime() is None  # the baseline runs with tracing never configured
    untraced: list[Outcome] = []
    untraced_cpu: list[float] = []
    for n in range(N):
        started = time.thread_time()
        untraced.append(call(handler, {"n": n}, testing.FakeContext()))
        untraced_cpu.append(time.thread_time() - started)
    made.clear()
    baseline = max(statistics.median(untraced_cpu), 1e-5)  # a coarse clock reads 0

    env.monkeypatch.setenv("TRACING_BACKEND", env.backend)
    if disabled:
        env.monkeypatch.setenv("TRACING_DISABLED", "1")
    tracing.configure(**(options or {}))
    runtime = get_runtime()
    assert runtime is not None
    if inject is not None:
        inject(runtime)
    traced_fn = tracing.handler(handler)

    env.caplog.clear()
    traced: list[Outcome] = []
    durations: list[float] = []
    traced_cpu: list[float] = []
    for n in range(N):
        env.monkeypatch.setenv("_X_AMZN_TRACE_ID", header())
        stack_before, otel_before = STACK.get(), trace.get_current_span()
        started, started_cpu = time.monotonic(), time.thread_time()
        traced.append(call(traced_fn, {"n": n}, testing.FakeContext()))
        traced_cpu.append(time.thread_time() - started_cpu)
        durations.append(time.monotonic() - started)
        if max_slowdown is not None:
            assert traced_cpu[-1] < 5 * max_slowdown * baseline, (
                f"invocation {n}: {traced_cpu[-1] * 1000:.1f} ms of CPU traced, "
                f"{baseline * 1000:.2f} ms untraced (median)"
            )
        # Nothing of the invocation leaks into the caller's context.
        assert STACK.get() == stack_before
        assert trace.get_current_span() is otel_before
        if daemon is not None:
            # Read everything before the next invocation sends: the listener's
            # socket then holds one invocation's datagrams at most, however late
            # its thread is scheduled on a busy machine.
            daemon.sync()
    warnings = tracing_warnings(env.caplog.records)
    if max_slowdown is not None:
        traced_ms, untraced_ms = statistics.median(traced_cpu) * 1000, baseline * 1000
        env.note(f"median CPU {traced_ms:.1f} ms traced, {untraced_ms:.2f} ms untraced")
        assert traced_ms < max_slowdown * untraced_ms, (
            f"tracing made the invocation {traced_ms / untraced_ms:.0f}x slower in CPU time "
            f"({traced_ms:.1f} ms, untraced {untraced_ms:.2f} ms; at most {max_slowdown:.0f}x); "
            "in Lambda that can turn the outcome into a timeout"
        )

    for n, (before, after) in enumerate(zip(untraced, traced, strict=True)):
        assert after.signature() == before.signature(), f"invocation {n}: traced != untraced"
        assert after.value is made[n], f"invocation {n}: not the object the handler made"
    assert len(warnings) <= 1, warnings
    emitter = runtime.emitter
    if getattr(emitter, "failed", 0):
        assert len(warnings) == 1, "the emitter failed without a warning"
    docs = valid(daemon.settle()) if daemon is not None else []
    env.note(f"same outcome ({traced[0].describe()}) x{N}")
    env.note(f"tracing warnings {len(warnings)}")
    return Runs(runtime, traced, warnings, docs, durations, daemon)


# -- daemon unreachable ------------------------------------------------------------


def simple_body(event: dict[str, Any], context: Any) -> dict[str, Any]:
    n = event["n"]
    with tracing.span(f"work-{n}"):
        tracing.annotate("n", n)
    return {"n": n, "ok": True}


def closed_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@fault("daemon-refuses")
def daemon_refuses(env: Env) -> None:
    runs = run_in_process(env, simple_body, daemon_address=f"127.0.0.1:{closed_udp_port()}")
    emitter = runs.runtime.emitter
    # The first datagram leaves; the port-unreachable ICMP turns later sends into
    # ECONNREFUSED, which must be logged once and then only counted.
    assert emitter.failed >= 1
    assert emitter.sent + emitter.failed == N + 1  # the Init and every invocation tried...
    # ...on a socket that never waits: a refused or full socket cannot hold the
    # handler up, however slow the machine (what a time bound would try to show).
    assert emitter._sock is not None
    assert emitter._sock.gettimeout() == 0.0
    env.note(f"sent {emitter.sent}, refused {emitter.failed}")


def _unresolvable(env: Env, address: str) -> None:
    resolutions: list[str] = []

    def inject(runtime: Runtime) -> None:
        emitter, resolve = runtime.emitter, runtime.emitter._resolve

        def counted() -> tuple[int, Any]:
            resolutions.append(emitter.address[0])
            return resolve()

        emitter._resolve = counted  # type: ignore[method-assign]

    runs = run_in_process(env, simple_body, daemon_address=address, inject=inject)
    emitter = runs.runtime.emitter
    assert emitter.sent == 0
    assert emitter.failed >= N  # every document was attempted...
    assert emitter._sock is None  # no socket was ever opened: no network at all
    # ...and the resolver asked once: a slow resolver may hold up one invocation,
    # never every one (what a time bound would try to show, on a busy machine).
    assert len(resolutions) == 1
    env.note(f"{emitter.failed} documents dropped after {len(resolutions)} resolution attempt")


@fault("daemon-unresolvable")
def daemon_unresolvable(env: Env) -> None:
    # A 70-character label is rejected by the IDNA codec before getaddrinfo(), so
    # this sub-case never reaches a name server, wherever it is.
    _unresolvable(env, "a" * 70 + ".invalid:2000")


def _off_machine_nameservers() -> list[str]:
    try:
        lines = Path("/etc/resolv.conf").read_text().splitlines()
    except OSError:
        return []
    servers = [line.split()[1] for line in lines if line.startswith("nameserver ")]
    return [s for s in servers if not ipaddress.ip_address(s.split("%")[0]).is_loopback]


@fault("daemon-nxdomain")
def daemon_nxdomain(env: Env) -> None:
    remote = _off_machine_nameservers()
    if remote:
        pytest.skip(f"resolving nowhere.invalid would query {', '.join(remote)}, off this machine")
    _unresolvable(env, "nowhere.invalid:2000")


# -- send() raises ---------------------------------------------------------------------


class FailingSocket:
    """Stands in for the emitter's UDP socket: every send raises ``OSError(err)``."""

    def __init__(self, err: int) -> None:
        self.err = err
        self.calls = 0

    def send(self, *args: Any) -> int:
        self.calls += 1
        raise OSError(self.err, os.strerror(self.err))

    sendto = send

    def close(self) -> None:
        return None


def _send_raises(env: Env, err: int) -> None:
    sock = FailingSocket(err)

    def inject(runtime: Runtime) -> None:
        runtime.emitter._sock = sock  # type: ignore[assignment]

    runs = run_in_process(env, simple_body, inject=inject)
    assert sock.calls >= N + 1  # the Init and every invocation were attempted
    assert runs.runtime.emitter.sent == 0
    assert len(runs.warnings) == 1
    assert os.strerror(err) in runs.warnings[0]
    assert runs.docs == []
    env.note(f"{sock.calls} sends failed, 1 warning")


@fault("send-emsgsize")
def send_emsgsize(env: Env) -> None:
    _send_raises(env, errno.EMSGSIZE)


@fault("send-enobufs")
def send_enobufs(env: Env) -> None:
    _send_raises(env, errno.ENOBUFS)


@fault("send-eperm")
def send_eperm(env: Env) -> None:
    _send_raises(env, errno.EPERM)


# -- documents over 64 KB -------------------------------------------------------------

CHILDREN = 5000


@fault("oversize-children")
def oversize_children(env: Env) -> None:
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        n = event["n"]
        with tracing.span(f"parent-{n}"):
            for i in range(CHILDREN):
                with tracing.span(f"child-{n}-{i}"):
                    pass
        return {"n": n, "children": CHILDREN}

    # NOTE: 5,000 children make ~4,400 datagrams per invocation (one per detached
    # child), about 5.5 MiB of the listener's receive buffer (the kernel counts
    # ~1.3 KiB per small datagram). The listener is a thread of this process,
    # unlike a real daemon: on a busy machine it may not run at all while an
    # invocation sends. run_in_process syncs after each invocation, so the buffer
    # holds one invocation at most: all of it where the kernel gives 8 MiB
    # (rmem_max 4 MiB) or more. Where it gives less (Linux's default rmem_max is
    # 208 KiB), what the kernel dropped is counted, and must account for every
    # datagram missing: the library itself loses none.
    runs = run_in_process(env, handler, options={"max_spans_per_invocation": 6000})
    assert runs.daemon is not None
    sent, received = runs.runtime.emitter.sent, len(runs.daemon.datagrams)
    dropped = runs.daemon.dropped
    env.note(f"{sent} datagrams sent, {received} received, {dropped} dropped by the kernel")
    assert runs.runtime.emitter.failed == 0
    missing = sent - received
    assert 0 <= missing <= (dropped or 0), (
        f"{missing} datagrams lost between socket and listener, "
        f"{dropped} dropped by the kernel (the listener's receive buffer was full)"
    )
    parents = parent_names(runs.docs)
    names = [entity["name"] for entity in all_entities(runs.docs)]
    children = [name for name in names if name.startswith("child-")]
    # None lost (each datagram the kernel dropped held one detached child)...
    assert N * CHILDREN - missing <= len(children) <= N * CHILDREN
    assert len(set(children)) == len(children)  # ...none sent twice
    for n in range(N):  # the first datagrams of each invocation go to an empty buffer
        assert parents[f"parent-{n}"] == "## handler"
    for child in children:
        assert parents[child] == "parent-" + child.split("-")[1]
    env.note(f"{len(children)}/{N * CHILDREN} children received")


@fault("oversize-metadata")
def oversize_metadata(env: Env) -> None:
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        n = event["n"]
        with tracing.span(f"big-{n}"):
            tracing.annotate("n", n)
            tracing.metadata("blob", "x" * 200_000)
        return {"n": n}

    runs = run_in_process(env, handler)
    by_name = {entity["name"]: entity for entity in all_entities(runs.docs)}
    for n in range(N):
        big = by_name[f"big-{n}"]  # the entity arrives...
        assert big["annotations"] == {"n": n}
        note = big["metadata"]["default"]["blob"]  # ...with a note of the value's size
        assert note == "<200002 bytes: over the 60000 bytes of metadata a span keeps>"
    assert len(invocation_docs(runs.docs)) == N
    env.note(f"{N}/{N} big entities received, the oversized value replaced by a note")


# -- exporters and processors that raise ------------------------------------------------


class RaisingExporter(SpanExporter):
    def __init__(self) -> None:
        self.calls = 0

    def export(self, spans: Any) -> SpanExportResult:
        self.calls += 1
        raise RuntimeError("exporter exploded")

    def shutdown(self) -> None:
        return None


class RaisingProcessor(SpanProcessor):
    """A user's span processor that raises in ``on_start`` or ``on_end``."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.calls = 0

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        if self.where == "start":
            self.calls += 1
            raise RuntimeError("user processor on_start exploded")

    def on_end(self, span: Any) -> None:
        if self.where == "end":
            self.calls += 1
            raise RuntimeError("user processor on_end exploded")


def user_provider(env: Env, processor: SpanProcessor) -> TracerProvider:
    """A user's own TracerProvider with ``processor``, handed to ``configure()``."""
    from opentelemetry.sdk.extension.aws.trace import AwsXRayIdGenerator

    provider = TracerProvider(id_generator=AwsXRayIdGenerator(), shutdown_on_exit=False)
    provider.add_span_processor(processor)
    env.request.addfinalizer(provider.shutdown)
    return provider


def aws_body(env: Env, provider: TracerProvider | None = None) -> Callable[[Any, Any], Any]:
    """A handler body making an AWS call (moto) inside a span.

    With ``provider`` (otel), the call is made inside a span of the user's own
    tracer too, so the user's processors and exporters see it.
    """
    ssm = env.aws.client("ssm")  # created before configure(), as module-level clients are

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        n = event["n"]
        with tracing.span(f"work-{n}"):
            if provider is None:
                value = ssm.get_parameter(Name="/app/currency")["Parameter"]["Value"]
            else:
                with provider.get_tracer("user").start_as_current_span(f"user-{n}"):
                    value = ssm.get_parameter(Name="/app/currency")["Parameter"]["Value"]
        return {"n": n, "currency": value}

    return handler


@fault("exporter-raises")
def exporter_raises(env: Env) -> None:
    body = aws_body(env)
    if env.backend == "otel":
        exporter = RaisingExporter()
        provider = user_provider(env, SimpleSpanProcessor(exporter))
        runs = run_in_process(env, aws_body(env, provider), options={"tracer_provider": provider})
        assert exporter.calls >= N
        otel_errors = [r for r in env.caplog.records if r.name.startswith("opentelemetry")]
        env.note(f"user exporter raised {exporter.calls}x (OTel SDK logged {len(otel_errors)})")
        docs = invocation_docs(runs.docs)
        assert len(docs) == N
        assert all(parent_names(runs.docs)[f"work-{n}"] == "## handler" for n in range(N))
        return
    calls: list[dict[str, Any]] = []

    def raising_send(document: dict[str, Any]) -> None:
        calls.append(document)
        raise RuntimeError("emitter exploded")

    def raising_send_encoded(body: bytes) -> None:
        calls.append({"encoded": body})
        raise RuntimeError("emitter exploded")

    def inject(runtime: Runtime) -> None:
        runtime.emitter.send = raising_send  # type: ignore[method-assign]
        runtime.emitter.send_encoded = raising_send_encoded  # type: ignore[method-assign]

    run_in_process(env, body, inject=inject)
    assert len(calls) >= N
    env.note(f"emitter.send raised {len(calls)}x")


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("repr exploded")


@fault("processor-on-start-raises")
def processor_on_start_raises(env: Env) -> None:
    """otel: the user's processor raises in on_start; xray analogue: a metadata repr raises."""
    if env.backend == "otel":
        processor = RaisingProcessor("start")
        provider = user_provider(env, processor)
        runs = run_in_process(env, aws_body(env, provider), options={"tracer_provider": provider})
        assert processor.calls >= N
        env.note(f"on_start raised {processor.calls}x")
        assert len(invocation_docs(runs.docs)) == N
        return
    ssm = env.aws.client("ssm")

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        n = event["n"]
        with tracing.span(f"work-{n}"):
            tracing.metadata("bad", BadRepr())
            value = ssm.get_parameter(Name="/app/currency")["Parameter"]["Value"]
        return {"n": n, "currency": value}

    runs = run_in_process(env, handler)
    env.note(f"invocation documents received: {len(invocation_docs(runs.docs))}/{N}")


@fault("processor-on-end-raises")
def processor_on_end_raises(env: Env) -> None:
    """otel: the user's processor raises in on_end; xray analogue: an SDK to_dict raises."""
    if env.backend == "otel":
        processor = RaisingProcessor("end")
        provider = user_provider(env, processor)
        runs = run_in_process(env, aws_body(env, provider), options={"tracer_provider": provider})
        assert processor.calls >= N
        env.note(f"on_end raised {processor.calls}x")
    else:
        from aws_xray_sdk.core import xray_recorder
        from aws_xray_sdk.core.models.subsegment import Subsegment

        class ExplodingSubsegment(Subsegment):  # type: ignore[misc]
            def to_dict(self) -> dict[str, Any]:
                raise RuntimeError("to_dict exploded")

        def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
            n = event["n"]
            with tracing.span(f"work-{n}"):
                parent = xray_recorder.get_trace_entity()
                if parent is not None:
                    sub = ExplodingSubsegment(f"exploding-{n}", "local", parent)
                    parent.add_subsegment(sub)
                    sub.close()
            return {"n": n}

        runs = run_in_process(env, handler)
    names = {entity["name"] for entity in all_entities(runs.docs)}
    assert len(invocation_docs(runs.docs)) == N  # the invocations are still sent
    env.note(f"work spans received: {sum(f'work-{n}' in names for n in range(N))}/{N}")


# -- a span left open --------------------------------------------------------------------


@fault("span-left-open")
def span_left_open(env: Env) -> None:
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        n = event["n"]
        tracing.span(f"leaked-{n}").__enter__()  # never exited
        with tracing.span(f"after-{n}"):
            pass
        return {"n": n}

    runs = run_in_process(env, handler)
    docs = invocation_docs(runs.docs)
    assert len(docs) == N
    for doc in docs:  # nothing of one invocation shows up in another
        suffixes = {e["name"].rsplit("-", 1)[1] for e in testing.iter_entities(doc)[1:]}
        assert len(suffixes) <= 1, suffixes
    parents = parent_names(runs.docs)
    received = [n for n in range(N) if f"after-{n}" in parents]
    env.note(f"'after' spans received {len(received)}/{N}")
    # The work done after the unclosed span is still part of the trace.
    assert received == list(range(N))


# -- BaseException from the handler ---------------------------------------------------------


def _base_exception(env: Env, exc_type: type[BaseException]) -> None:
    def handler(event: dict[str, Any], context: Any) -> None:
        n = event["n"]
        with tracing.span(f"step-{n}"):
            raise exc_type(f"stop {n}")

    runs = run_in_process(env, handler)
    docs = invocation_docs(runs.docs)
    assert len(docs) == N
    for doc in docs:
        assert doc["fault"] is True
        assert doc["cause"]["exceptions"][0]["type"] == exc_type.__name__


@fault("systemexit")
def systemexit(env: Env) -> None:
    _base_exception(env, SystemExit)


@fault("keyboardinterrupt")
def keyboardinterrupt(env: Env) -> None:
    _base_exception(env, KeyboardInterrupt)


@fault("generatorexit")
def generatorexit(env: Env) -> None:
    _base_exception(env, GeneratorExit)


# -- asyncio and threads ------------------------------------------------------------------


@fault("asyncio-tasks")
def asyncio_tasks(env: Env) -> None:
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        n = event["n"]

        async def task(k: int) -> int:
            with tracing.span(f"task-{n}-{k}"):
                for j in range(3):
                    await asyncio.sleep(0)
                    with tracing.span(f"step-{n}-{k}-{j}"):
                        await asyncio.sleep(0)
            return k

        async def main() -> list[int]:
            with tracing.span(f"gather-{n}"):
                return list(await asyncio.gather(*(task(k) for k in range(4))))

        return {"n": n, "tasks": asyncio.run(main())}

    runs = run_in_process(env, handler)
    parents = parent_names(runs.docs)
    for n in range(N):
        assert parents[f"gather-{n}"] == "## handler"
        for k in range(4):
            assert parents[f"task-{n}-{k}"] == f"gather-{n}"
            for j in range(3):
                assert parents[f"step-{n}-{k}-{j}"] == f"task-{n}-{k}"
    env.note("every task span under its own parent")


def _thread_handler(bind: bool) -> Callable[[Any, Any], Any]:
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        n = event["n"]

        def work(k: int) -> int:
            with tracing.span(f"thread-{n}-{k}"):
                return k * k

        with tracing.span(f"fan-out-{n}"), ThreadPoolExecutor(max_workers=4) as pool:
            squares = list(pool.map(tracing.in_current_trace(work) if bind else work, range(4)))
        with tracing.span(f"after-{n}"):
            pass
        return {"n": n, "squares": squares}

    return handler


@fault("threads-default")
def threads_default(env: Env) -> None:
    """Default: a pool task runs in a copy of the submitting context (``_hooks.py``)."""
    runs = run_in_process(env, _thread_handler(bind=False))
    parents = parent_names(runs.docs)
    for n in range(N):
        for k in range(4):
            assert parents.get(f"thread-{n}-{k}") == f"fan-out-{n}"
        assert parents[f"after-{n}"] == "## handler"
    env.note("pool tasks: thread spans under the submitting span, with no help")


@fault("threads-in-current-trace")
def threads_in_current_trace(env: Env) -> None:
    runs = run_in_process(env, _thread_handler(bind=True))
    parents = parent_names(runs.docs)
    for n in range(N):
        for k in range(4):
            assert parents.get(f"thread-{n}-{k}") == f"fan-out-{n}"
        assert parents[f"after-{n}"] == "## handler"
    env.note("tracing.in_current_trace: thread spans under the submitting span")


# -- recursion ------------------------------------------------------------------------------


#: How many times more CPU tracing may make a recursing invocation take than the
#: same body untraced, both measured in the test (``run_in_process``). About 2x
#: near the limit here (the handler walks its own stack at each level, untraced
#: too) and 90x for a RecursionError (~500 spans each see the exception go by,
#: which untraced costs nothing): about 90 ms, on an idle machine as on a busy one
#: (where the wall time went past 600 ms). Generous for other CPUs and Pythons;
#: what they catch is a cost growing with the depth at each level (a stack
#: formatted per span), hundreds of times more, which in Lambda turns the outcome
#: into a timeout.
MAX_SLOWDOWN_NEAR_LIMIT = 20.0
MAX_SLOWDOWN_RECURSION_ERROR = 500.0


def frame_depth() -> int:
    frame: FrameType | None = sys._getframe(1)
    depth = 0
    while frame is not None:
        depth += 1
        frame = frame.f_back
    return depth


@fault("recursion-near-limit")
def recursion_near_limit(env: Env) -> None:
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        target = sys.getrecursionlimit() - 50

        @tracing.span("level")
        def level() -> bool:
            return True if frame_depth() >= target else level()

        return {"n": event["n"], "bottom": level()}

    runs = run_in_process(env, handler, max_slowdown=MAX_SLOWDOWN_NEAR_LIMIT)
    sizes = {len(testing.iter_entities(doc)) for doc in invocation_docs(runs.docs)}
    env.note(f"invocation documents received {len(invocation_docs(runs.docs))}/{N}")
    env.note(f"entities per document {sorted(sizes)}")


@fault("recursion-error")
def recursion_error(env: Env) -> None:
    """The handler hits RecursionError itself; every level's span sees it go by."""

    def handler(event: dict[str, Any], context: Any) -> None:
        @tracing.span("dive")
        def dive(k: int) -> int:
            return dive(k + 1)

        dive(0)

    runs = run_in_process(env, handler, max_slowdown=MAX_SLOWDOWN_RECURSION_ERROR)
    assert all(isinstance(o.value, RecursionError) for o in runs.traced)
    env.note(f"slowest traced invocation {max(runs.durations) * 1000:.0f} ms")


# -- TRACING_DISABLED ---------------------------------------------------------------------


@fault("tracing-disabled")
def tracing_disabled(env: Env) -> None:
    runs = run_in_process(env, simple_body, disabled=True)
    assert tracing.handler(simple_body) is simple_body
    assert runs.docs == []
    assert runs.runtime.emitter.sent == 0
    env.note("no documents")


# -- the real runtime ----------------------------------------------------------------------

#: Baselines of the untraced runtime, per fault (they do not depend on the backend).
_BASELINES: dict[str, list[tuple[Any, ...]]] = {}


def runtime_signature(result: InvokeResult) -> tuple[Any, ...]:
    error = result.error or {}
    message = str(error.get("errorMessage", "")).replace(result.request_id, "<request-id>")
    if error.get("errorType") == "RecursionError":  # wording depends on the stack depth
        message = message.replace(" while calling a Python object", "")
    payload = result.payload if result.ok else None
    return (result.ok, payload, error.get("errorType"), message, result.timed_out)


def _maybe_header(wanted: bool) -> str | None:
    return header() if wanted else None


def run_in_runtime(
    env: Env,
    plan: list[tuple[dict[str, Any], bool]],
    baseline_check: Callable[[list[tuple[Any, ...]]], None] | None = None,
    timeout_s: float = RUNTIME_TIMEOUT_S,
) -> tuple[list[InvokeResult], list[dict[str, Any]]]:
    """Invoke the untraced and the traced runtime with ``plan`` and compare.

    ``plan`` is a list of (event, with a trace header). ``baseline_check`` can
    assert what the untraced runtime answered, before the comparison. Returns the
    traced results and the documents received during them.
    """
    if env.fault not in _BASELINES:
        untraced, silent = env.runtimes.untraced(timeout_s)
        _BASELINES[env.fault] = [
            runtime_signature(untraced.invoke(event, trace_header=_maybe_header(h)))
            for event, h in plan
        ]
        assert silent.settle(quiet=0.05) == []  # TRACING_DISABLED sends nothing
    baseline = _BASELINES[env.fault]

    function, daemon = env.runtimes.traced(env.backend, timeout_s)
    daemon.settle(quiet=0.1)
    daemon.clear()
    log_start = len(function.logs)
    traced = [function.invoke(event, trace_header=_maybe_header(h)) for event, h in plan]
    docs = valid(daemon.settle())
    logs = function.logs[log_start:]
    first = traced[0]
    shown = "ok" if first.ok else (first.error or {}).get("errorType")
    env.note(f"first traced invocation: {shown} in {first.duration_ms:.0f} ms")
    if baseline_check is not None:
        baseline_check(baseline)
    for n, (result, expected) in enumerate(zip(traced, baseline, strict=True)):
        assert runtime_signature(result) == expected, f"invocation {n}"

    warnings = [line for line in logs.splitlines() if line.startswith("TRACING-LOG\tWARNING")]
    assert len(warnings) <= 1, warnings
    env.note(f"same outcome as untraced x{len(plan)} in awslambdaric")
    env.note(f"tracing warnings {len(warnings)}")
    return traced, docs


@fault("missing-header")
def missing_header(env: Env) -> None:
    plan = [({"fault": "work", "n": n}, False) for n in range(N)]
    run_in_runtime(env, plan)
    _, daemon = env.runtimes.traced(env.backend)
    assert daemon.settle(quiet=0.05) == []  # untraced invocations send nothing
    # ...while the same process does trace an invocation that has a header.
    function, _ = env.runtimes.traced(env.backend)
    assert function.invoke({"fault": "work", "n": 9}, trace_header=header()).ok
    [doc] = invocation_docs(daemon.wait_for(1), "## work")
    assert [e["name"] for e in testing.iter_entities(doc)] == ["## work", "work", "ssm"]
    env.note("no documents without a header")


@fault("context-without-remaining-time")
def context_without_remaining_time(env: Env) -> None:
    plan = [({"fault": "work", "n": n, "bare_context": True}, True) for n in range(N)]
    results, docs = run_in_runtime(env, plan)
    assert all(result.payload["context"] == "BareContext" for result in results)
    docs = invocation_docs(docs, "## work")
    assert len(docs) == N
    assert all(not doc.get("fault") for doc in docs)
    env.note(f"{len(docs)}/{N} documents, not guarded")


@fault("deadline-nested-span")
def deadline_nested_span(env: Env) -> None:
    plan = [({"fault": "deadline", "n": 0, "seconds": 3}, True)]
    plan += [({"fault": "work", "n": n}, True) for n in range(1, N)]
    results, docs = run_in_runtime(env, plan, timeout_s=DEADLINE_TIMEOUT_S)
    assert results[0].timed_out
    [late] = invocation_docs(docs, "## deadline")
    assert late["fault"] is True
    assert late["annotations"]["Timeout"] is True
    # Closed by the guard before the deadline (it arrived: sent before the kill).
    assert late["end_time"] - late["start_time"] < DEADLINE_TIMEOUT_S
    [outer] = late["subsegments"]
    [inner] = outer["subsegments"]
    assert (outer["name"], inner["name"]) == ("outer", "inner")
    assert inner["annotations"]["Timeout"] is True
    assert [child["name"] for child in inner["subsegments"]] == ["ssm"]
    assert len(invocation_docs(docs, "## work")) == N - 1  # the next cold start is traced
    env.note("timeout sent by the guard before the kill")


@fault("systemexit-runtime")
def systemexit_runtime(env: Env) -> None:
    plan = [({"fault": "system_exit", "n": 0, "code": 3}, True)]
    plan += [({"fault": "work", "n": n}, True) for n in range(1, N)]
    results, docs = run_in_runtime(env, plan)
    assert results[0].error is not None
    assert results[0].error["errorType"] == "Runtime.ExitError"
    [exiting] = invocation_docs(docs, "## system_exit")
    assert exiting["fault"] is True
    assert exiting["cause"]["exceptions"][0]["type"] == "SystemExit"
    assert [child["name"] for child in exiting["subsegments"]] == ["exiting"]
    assert len(invocation_docs(docs, "## work")) == N - 1
    env.note("trace sent before the process exited")


@fault("recursion-error-runtime")
def recursion_error_runtime(env: Env) -> None:
    """RecursionError in awslambdaric (limit 1000): still a RecursionError, not a timeout."""
    plan = [({"fault": "recursion_error", "n": 0}, True)]
    plan += [({"fault": "work", "n": n}, True) for n in range(1, N)]

    def untraced_is_a_recursion_error(baseline: list[tuple[Any, ...]]) -> None:
        # Lambda accepts the runtime's X-Ray error-cause header up to 1 MiB (as
        # awslambdaric assumes); ~1,000 frames make it larger than 64 KiB.
        assert baseline[0][2] == "RecursionError", f"untraced runtime answered {baseline[0]}"

    results, docs = run_in_runtime(env, plan, untraced_is_a_recursion_error)
    assert results[0].error is not None
    assert results[0].error["errorType"] == "RecursionError"
    [doc] = invocation_docs(docs, "## recursion_error")
    assert doc["fault"] is True
    assert "Timeout" not in doc.get("annotations", {})


# -- the matrix -----------------------------------------------------------------------------


@pytest.fixture
def env(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    fault_name: str,
    backend: str,
) -> Iterator[Env]:
    current = Env(fault_name, backend, request, monkeypatch, caplog)
    try:
        yield current
    finally:
        RESULTS.append((fault_name, backend, "; ".join(current.notes) or "passed"))


@pytest.mark.parametrize(
    ("fault_name", "backend"),
    [pytest.param(f, b, id=f"{f}-{b}") for f in FAULTS for b in BACKENDS],
)
def test_fault(env: Env, fault_name: str, backend: str) -> None:
    try:
        FAULTS[fault_name](env)
    except pytest.skip.Exception as exc:
        env.notes[:] = [f"skipped: {exc}"]
        raise
    except BaseException as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        env.note(f"**FAILED**: {type(exc).__name__}: {first_line[:160]}")
        raise
