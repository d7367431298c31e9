"""Differential testing: generated user programs, run on both backends and untraced.

Hypothesis writes small Lambda handlers out of what users' handlers do: nested
``tracing.span`` (as context manager and decorator), the library's own spans
(``xray_recorder.in_subsegment`` / an OTel tracer), ``annotate``/``metadata``/
``s.annotate``/``s.put_metadata`` with hostile values, handled and unhandled
exceptions, boto3 calls against moto's SQS and SSM, asyncio tasks and
``in_current_trace`` threads. Each program runs three times, in a Lambda-like
environment against a real UDP listener:

* untraced (``TRACING_DISABLED``) and on both backends, the handler's outcome
  (its return value, or its exception's type and message) is the same;
* every datagram is strict JSON (non-finite constants refused) and valid by
  X-Ray's rules (``tracing.testing.check_document``);
* the trees of the two backends, normalised (names, nesting, annotations,
  metadata keys, fault/error/cause types, AWS operations; no ids or times;
  children unordered, as threads and tasks interleave), are equal.

``make test`` runs 300 examples; ``make fuzz`` runs many more
(``TRACING_DIFFERENTIAL_EXAMPLES``).
"""

from __future__ import annotations

import asyncio
import decimal
import math
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tracing
from tracing import testing
from tracing._header import new_id, new_trace_id
from tracing.local.runtime.aws import LocalAWS

EXAMPLES = int(os.environ.get("TRACING_DIFFERENTIAL_EXAMPLES", "300"))


# -- programs ---------------------------------------------------------------------


@dataclass(frozen=True)
class Span:
    name: str
    annotations: tuple[tuple[str, Any], ...]
    decorator: bool
    body: tuple[Any, ...]


@dataclass(frozen=True)
class LibrarySpan:
    name: str
    body: tuple[Any, ...]


@dataclass(frozen=True)
class Annotate:
    key: str
    value: Any
    on_span: bool  # s.annotate on the innermost tracing.span, else tracing.annotate


@dataclass(frozen=True)
class Metadata:
    key: str
    value: Any
    namespace: str
    on_span: bool


@dataclass(frozen=True)
class Raise:
    message: str
    handled: bool  # caught right outside the enclosing span


@dataclass(frozen=True)
class AwsCall:
    operation: str  # "send" | "get" | "missing"


@dataclass(frozen=True)
class Tasks:
    bodies: tuple[tuple[Any, ...], ...]


@dataclass(frozen=True)
class Threads:
    bodies: tuple[tuple[Any, ...], ...]


class ProgramError(Exception):
    """What generated programs raise."""


_names = st.sampled_from(["load", "validate", "charge card", "save", "notify", "ünïcode"])
_keys = st.sampled_from(["tier", "order_id", "has space", "ratio", "n", "Ω"])
_values = st.one_of(
    st.text(max_size=20),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.decimals(allow_nan=True, allow_infinity=True, places=2),
    st.binary(max_size=8),
    st.lists(st.floats(allow_nan=True), max_size=3),
    st.dictionaries(st.integers(0, 3), st.floats(allow_nan=True), max_size=2),
    st.frozensets(st.integers(0, 5), max_size=3),
)


def _leaf() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.builds(Annotate, _keys, _values, st.booleans()),
        st.builds(Metadata, _keys, _values, st.sampled_from(["default", "orders"]), st.booleans()),
        st.builds(Raise, st.sampled_from(["poison", "timeout"]), st.booleans()),
        st.builds(AwsCall, st.sampled_from(["send", "get", "missing"])),
    )


def _bodies(children: st.SearchStrategy[Any]) -> st.SearchStrategy[tuple[Any, ...]]:
    return st.lists(children, max_size=3).map(tuple)


_ops = st.recursive(
    _leaf(),
    lambda children: st.one_of(
        st.builds(
            Span,
            _names,
            st.lists(st.tuples(_keys, _values), max_size=2).map(tuple),
            st.booleans(),
            _bodies(children),
        ),
        st.builds(LibrarySpan, _names, _bodies(children)),
        st.builds(Tasks, st.lists(_bodies(children), min_size=1, max_size=3).map(tuple)),
        st.builds(Threads, st.lists(_bodies(children), min_size=1, max_size=3).map(tuple)),
    ),
    max_leaves=8,
)
programs = st.lists(_ops, min_size=1, max_size=4).map(tuple)


# -- running a program ---------------------------------------------------------------


class Interpreter:
    """Runs a program's operations as user code would write them."""

    def __init__(self, backend: str, sqs: Any, ssm: Any, queue_url: str) -> None:
        self.backend = backend
        self.sqs, self.ssm, self.queue_url = sqs, ssm, queue_url

    def run(self, body: tuple[Any, ...], span: Any = None) -> list[Any]:
        results: list[Any] = []
        for op in body:
            results.append(self.step(op, span))
        return results

    def step(self, op: Any, span: Any) -> Any:
        if isinstance(op, Span):
            return self.span(op)
        if isinstance(op, LibrarySpan):
            with self.library_span(op.name):
                return self.run(op.body)
        if isinstance(op, Annotate):
            target = span.annotate if op.on_span and span is not None else tracing.annotate
            target(op.key, op.value)
            return None
        if isinstance(op, Metadata):
            if op.on_span and span is not None:
                span.put_metadata(op.key, op.value, op.namespace)
            else:
                tracing.metadata(op.key, op.value, op.namespace)
            return None
        if isinstance(op, Raise):
            raise ProgramError(op.message)
        if isinstance(op, AwsCall):
            return self.aws(op.operation)
        if isinstance(op, Tasks):
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return asyncio.run(self.tasks(op.bodies))
            # Inside a task already: a nested event loop runs in a thread of its
            # own, as an executor would run it, bound to the trace.
            result: list[Any] = []
            thread = threading.Thread(
                target=tracing.in_current_trace(
                    lambda: result.append(asyncio.run(self.tasks(op.bodies)))
                )
            )
            thread.start()
            thread.join()
            return result[0]
        assert isinstance(op, Threads)
        return self.threads(op.bodies)

    def span(self, op: Span) -> Any:
        handled = any(isinstance(child, Raise) and child.handled for child in op.body)
        try:
            if op.decorator:

                @tracing.span(op.name, **dict(op.annotations))
                def decorated() -> list[Any]:
                    return self.run(op.body, tracing.current_span())

                return decorated()
            with tracing.span(op.name, **dict(op.annotations)) as span:
                return self.run(op.body, span)
        except ProgramError as exc:
            if handled:
                return f"handled {exc}"
            raise

    def library_span(self, name: str) -> Any:
        if self.backend == "xray":
            from aws_xray_sdk.core import xray_recorder

            return xray_recorder.in_subsegment(name)
        from opentelemetry import trace

        return trace.get_tracer("user").start_as_current_span(name)

    def aws(self, operation: str) -> Any:
        if operation == "send":
            self.sqs.send_message(QueueUrl=self.queue_url, MessageBody="order")
            return "sent"
        name = "/app/currency" if operation == "get" else "/app/missing"
        try:
            return self.ssm.get_parameter(Name=name)["Parameter"]["Value"]
        except self.ssm.exceptions.ParameterNotFound:
            return "missing"

    async def tasks(self, bodies: tuple[tuple[Any, ...], ...]) -> list[Any]:
        async def task(body: tuple[Any, ...]) -> list[Any]:
            await asyncio.sleep(0)
            return self.run(body)

        outcomes = await asyncio.gather(*(task(b) for b in bodies), return_exceptions=True)
        return [_outcome_of(o) for o in outcomes]

    def threads(self, bodies: tuple[tuple[Any, ...], ...]) -> list[Any]:
        outcomes: list[Any] = [None] * len(bodies)

        def work(index: int, body: tuple[Any, ...]) -> None:
            # Each thread in a span of its own: threads writing the same key to
            # one shared span would race, and the last writer would differ from
            # run to run, whatever the backend.
            try:
                with tracing.span(f"thread {index}"):
                    outcomes[index] = ("returned", self.run(body))
            except ProgramError as exc:
                outcomes[index] = ("raised", str(exc))

        pool = [
            threading.Thread(target=tracing.in_current_trace(work), args=(i, b))
            for i, b in enumerate(bodies)
        ]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        return outcomes


def _outcome_of(value: Any) -> Any:
    if isinstance(value, BaseException):
        return ("raised", type(value).__name__, str(value))
    return ("returned", value)


# -- normalising trees -----------------------------------------------------------------

# Annotations the library sets itself, equal on both backends by construction.
_FIXED = frozenset({"ColdStart", "Service", "InitType"})


def _normal(
    entity: dict[str, Any],
    children: dict[str, list[dict[str, Any]]],
    exceptions: dict[str, str] | None = None,
) -> Any:
    """An entity tree without ids, times or child order.

    ``exceptions`` maps exception ids to types: a ``cause`` may be the id of an
    exception recorded in a child (aws-xray-sdk writes it so) rather than a copy.
    """
    exceptions = {} if exceptions is None else exceptions
    nested = list(entity.get("subsegments", [])) + children.get(entity["id"], [])
    cause = entity.get("cause")
    if isinstance(cause, str):
        causes: tuple[str, ...] = (exceptions.get(cause, "?"),)
    elif isinstance(cause, dict):
        causes = tuple(sorted(e.get("type", "") for e in cause.get("exceptions", [])))
    else:
        causes = ()
    metadata = entity.get("metadata") or {}
    return (
        entity["name"],
        tuple(sorted((k, repr(v)) for k, v in (entity.get("annotations") or {}).items())),
        tuple(sorted((ns, tuple(sorted(v))) for ns, v in metadata.items() if ns != "tracing")),
        bool(entity.get("fault")),
        bool(entity.get("error")),
        causes,
        (entity.get("aws") or {}).get("operation"),
        tuple(sorted(repr(_normal(c, children, exceptions)) for c in nested)),
    )


def _tree(documents: list[dict[str, Any]], trace_id: str) -> Any:
    """The invocation's tree, with independent subsegments put back under their parent."""
    documents = [d for d in documents if d.get("trace_id") == trace_id]
    invocation = [d for d in documents if d["name"].startswith("## ")]
    assert len(invocation) == 1, documents
    children: dict[str, list[dict[str, Any]]] = {}
    exceptions: dict[str, str] = {}
    for document in documents:
        if document is not invocation[0] and document["name"] != "Init":
            children.setdefault(document["parent_id"], []).append(document)
        for entity in testing.iter_entities(document):
            cause = entity.get("cause")
            for exception in cause.get("exceptions", []) if isinstance(cause, dict) else []:
                exceptions[exception["id"]] = exception.get("type", "")
    return _normal(invocation[0], children, exceptions)


# -- the test ----------------------------------------------------------------------------


@pytest.fixture
def execute(
    aws: LocalAWS,
    daemon: testing.DaemonListener,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: os.PathLike[str],
) -> Callable[[tuple[Any, ...], str], tuple[Any, list[dict[str, Any]], str]]:
    for key, value in aws.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("LAMBDA_TASK_ROOT", str(tmp_path))
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "differential")
    sqs, ssm = boto3.client("sqs"), boto3.client("ssm")  # made before configure(), as usual
    queue_url = sqs.create_queue(QueueName="differential")["QueueUrl"]

    def execute(program: tuple[Any, ...], mode: str) -> tuple[Any, list[dict[str, Any]], str]:
        testing.reset()
        daemon.clear()
        if mode == "untraced":
            tracing.configure(disabled=True)
        else:
            tracing.configure(backend=mode)
        interpreter = Interpreter(mode, sqs, ssm, queue_url)

        @tracing.handler
        def handler(event: Any, context: Any) -> Any:
            return interpreter.run(program)

        trace_id = new_trace_id()
        os.environ["_X_AMZN_TRACE_ID"] = f"Root={trace_id};Parent={new_id()};Sampled=1"
        try:
            outcome = ("returned", handler({}, testing.FakeContext()))
        except ProgramError as exc:
            outcome = ("raised", type(exc).__name__, str(exc))
        documents = daemon.sync()
        assert daemon.garbage == [], daemon.garbage  # strict JSON, the daemon's framing
        for document in documents:
            assert testing.check_document(document) == [], document
        return outcome, documents, trace_id

    return execute


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(program=programs)
def test_backends_agree_with_each_other_and_with_untraced(
    execute: Callable[[tuple[Any, ...], str], tuple[Any, list[dict[str, Any]], str]],
    program: tuple[Any, ...],
) -> None:
    untraced, nothing, _ = execute(program, "untraced")
    assert nothing == []
    xray, xray_docs, xray_trace = execute(program, "xray")
    otel, otel_docs, otel_trace = execute(program, "otel")
    assert xray == untraced
    assert otel == untraced
    assert _tree(xray_docs, xray_trace) == _tree(otel_docs, otel_trace)


def test_the_normaliser_sees_differences() -> None:
    """The comparison is not vacuous: a changed name, flag or child is a difference."""
    base = {"name": "## h", "id": "a" * 16, "subsegments": [{"name": "x", "id": "b" * 16}]}
    changed = {"name": "## h", "id": "a" * 16, "subsegments": [{"name": "y", "id": "b" * 16}]}
    faulty = {**base, "fault": True}
    assert _normal(base, {}) != _normal(changed, {})
    assert _normal(base, {}) != _normal(faulty, {})
    assert _normal(base, {}) == _normal({**base, "id": "c" * 16}, {})
    assert math.isnan(float("nan"))
    assert decimal.Decimal("1") == 1
