"""The contract suite's harness: run a piece of user code in each documented context.

Written from the README and DESIGN.md, not from the code: every call of the
README's API table is run on both backends in each context a user's code runs
in, and the tests assert what the documentation promises there.

Contexts:

* ``init``: at module import in Lambda, before the first invocation; the work
  must appear under ``Init`` in the first (sampled) invocation's trace.
* ``sampled``: inside ``@tracing.handler`` with ``Sampled=1``; under ``## handler``.
* ``unsampled``: inside the handler with ``Sampled=0``; nothing may be sent.
* ``consumer``: inside ``tracing.sqs.consume(record)`` in a Lambda invocation,
  the record carrying a sampled ``AWSTraceHeader``; under the consumer segment,
  in the producer's trace.
* ``worker``: ``consume(message)`` in a polling worker (no Lambda).
* ``local``: ``@tracing.handler`` outside Lambda; under ``## handler`` in the
  handler's own segment.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

import tracing
from tracing import testing
from tracing._header import new_id, new_trace_id

CONTEXTS = ("init", "sampled", "unsampled", "consumer", "worker", "local")
SERVICE = "contract-svc"


@dataclass
class Run:
    """What happened when user code ran in one context."""

    context: str
    backend: str
    #: ("returned", value) or ("raised", exception)
    outcome: tuple[str, Any]
    documents: list[dict[str, Any]]
    #: Trace id the work must be recorded in (None: nothing recorded).
    trace_id: str | None
    #: Name of the entity the work must land under (None: nothing recorded).
    parent_name: str | None
    #: What current_span().recording must say inside.
    recording: bool
    #: The trace header of the context, for propagation checks.
    upstream: dict[str, str] = field(default_factory=dict)

    def value(self) -> Any:
        kind, value = self.outcome
        if kind == "raised":
            raise value
        return value

    def parent(self) -> dict[str, Any]:
        """The entity the context's work lands under, found in the documents."""
        assert self.parent_name is not None
        for document in self.documents:
            for entity in testing.iter_entities(document):
                if entity.get("name") == self.parent_name:
                    if self.context in ("consumer", "worker") and "MessageId" not in (
                        entity.get("annotations") or {}
                    ):
                        continue  # the consumer segment, not a same-named entity
                    return entity
        raise AssertionError(f"no {self.parent_name!r} in {self.documents}")

    def document_of(self, entity_id: str) -> dict[str, Any]:
        for document in self.documents:
            if any(e.get("id") == entity_id for e in testing.iter_entities(document)):
                return document
        raise AssertionError(f"no document holds {entity_id}")

    def entity(self, name: str) -> dict[str, Any]:
        found = [
            e for d in self.documents for e in testing.iter_entities(d) if e.get("name") == name
        ]
        assert len(found) == 1, (name, self.documents)
        return found[0]

    def child(self, name: str) -> dict[str, Any]:
        """A direct child of the context's parent entity, by name."""
        parent = self.parent()
        found = [c for c in parent.get("subsegments", ()) if c.get("name") == name]
        assert len(found) == 1, (name, parent)
        return found[0]


Runner = Callable[[Callable[[], Any]], Run]


def _capture(body: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return ("returned", body())
    except Exception as exc:
        return ("raised", exc)


def _header(sampled: str) -> tuple[str, str, str]:
    root, parent = new_trace_id(), new_id()
    return root, parent, f"Root={root};Parent={parent};Sampled={sampled}"


def _record(header: str) -> dict[str, Any]:
    """A Lambda SQS record, as Lambda's event source mapping builds it."""
    message = {"MessageId": new_id(), "Body": "{}", "Attributes": {"AWSTraceHeader": header}}
    record: dict[str, Any] = testing.lambda_sqs_event([message])["Records"][0]
    return record


@pytest.fixture(params=["xray", "otel"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=CONTEXTS)
def context(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def run(
    backend: str,
    context: str,
    daemon: testing.DaemonListener,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: os.PathLike[str],
) -> Iterator[Runner]:
    """``run(body)`` runs ``body`` as user code in ``context`` on ``backend``."""
    if context in ("init", "sampled", "unsampled", "consumer"):
        monkeypatch.setenv("LAMBDA_TASK_ROOT", str(tmp_path))
        monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", SERVICE)
        monkeypatch.setenv("AWS_REGION", "us-east-1")

    def invoke(handler: Callable[[Any, Any], Any], header: str | None) -> tuple[str, Any]:
        if header is None:
            monkeypatch.delenv("_X_AMZN_TRACE_ID", raising=False)
        else:
            monkeypatch.setenv("_X_AMZN_TRACE_ID", header)
        return _capture(lambda: handler({}, testing.FakeContext()))

    def runner(body: Callable[[], Any]) -> Run:
        tracing.configure(service=SERVICE, backend=backend)
        if context == "init":
            outcome = _capture(body)
            root, _, header = _header("1")
            invoke(tracing.handler(lambda event, ctx: None), header)
            return Run(context, backend, outcome, daemon.sync(), root, "Init", True, _up(header))
        if context in ("sampled", "unsampled"):
            sampled = "1" if context == "sampled" else "0"
            root, _, header = _header(sampled)

            @tracing.handler
            def handler(event: Any, ctx: Any) -> Any:
                return body()

            outcome = invoke(handler, header)
            if context == "unsampled":
                return Run(context, backend, outcome, daemon.sync(), None, None, False, _up(header))
            return Run(
                context, backend, outcome, daemon.sync(), root, "## handler", True, _up(header)
            )
        if context == "consumer":
            producer, _, message_header = _header("1")
            record = _record(message_header)

            @tracing.handler
            def handler(event: Any, ctx: Any) -> Any:
                with tracing.sqs.consume(record):
                    return body()

            outcome = invoke(handler, _header("1")[2])
            docs = daemon.sync()
            return Run(
                context, backend, outcome, docs, producer, SERVICE, True, _up(message_header)
            )
        if context == "worker":
            producer, _, message_header = _header("1")
            message = {"MessageId": new_id(), "Attributes": {"AWSTraceHeader": message_header}}

            def consume() -> Any:
                with tracing.sqs.consume(message):
                    return body()

            outcome = _capture(consume)
            docs = daemon.sync()
            return Run(
                context, backend, outcome, docs, producer, SERVICE, True, _up(message_header)
            )
        assert context == "local"

        @tracing.handler
        def handler(event: Any, ctx: Any) -> Any:
            return body()

        outcome = invoke(handler, None)
        docs = daemon.sync()
        trace_id = docs[0]["trace_id"] if docs else None
        return Run(context, backend, outcome, docs, trace_id, "## handler", True)

    yield runner
    for document in daemon.sync():
        assert testing.check_document(document) == [], document
    assert daemon.garbage == []


def _up(header: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in header.split(";"))
