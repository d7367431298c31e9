"""moto carrying trace context where AWS does: a WSGI middleware and wrapped moto methods.

What is carried, service by service, is described in
`tracing.local.runtime.aws`, which re-exports `trace_context_middleware` and
serves moto through it. The wrappers act only while the middleware handles a
request on the current thread.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from tracing.local.runtime._journal import AWSJournal, RecordedEvent, RecordedNotification

__all__ = ["sqs_trace_header_middleware", "trace_context_middleware"]


class _Carry(threading.local):
    """What the request being handled on this server thread carries."""

    active: bool = False
    header: str | None = None
    journal: AWSJournal | None = None
    batch: list[str | None] | None = None


_CARRY = _Carry()
_PATCH_LOCK = threading.Lock()
_patched = False


def _valid(header: str | None) -> str | None:
    """``header`` if X-Ray would accept it, else None (X-Ray drops invalid headers)."""
    from tracing._header import parse

    return header if header and parse(header) is not None else None


def _system_attribute(header: str) -> dict[str, str]:
    return {"DataType": "String", "StringValue": header}


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _bus_name(name: str | None) -> str:
    if not name:
        return "default"
    return name.rsplit("/", 1)[-1] if name.startswith("arn:") else name


def _recorded_event(backend: Any, entry: dict[str, Any], event_id: str) -> dict[str, Any]:
    import json

    when = entry.get("Time")
    try:
        epoch = float(when) if when is not None else time.time()
    except (TypeError, ValueError):
        epoch = time.time()
    return {
        "version": "0",
        "id": event_id,
        "detail-type": entry.get("DetailType"),
        "source": entry.get("Source"),
        "account": backend.account_id,
        "time": _iso(epoch),
        "region": backend.region_name,
        "resources": list(entry.get("Resources") or []),
        "detail": json.loads(entry.get("Detail") or "{}"),
    }


def _patch_moto() -> None:
    """Wrap the moto methods where AWS carries a trace header between services.

    Idempotent. Every wrapper acts only while our middleware handles a request
    on the current thread (``_CARRY.active``); otherwise it is moto unchanged.
    """
    global _patched
    with _PATCH_LOCK:
        if _patched:
            return
        from moto.events.models import EventsBackend
        from moto.sns.models import Topic
        from moto.sqs.models import SQSBackend

        send_message = SQSBackend.send_message
        send_message_batch = SQSBackend.send_message_batch
        put_events = EventsBackend.put_events
        publish = Topic.publish

        def carried_send_message(self: Any, *args: Any, **kwargs: Any) -> Any:
            if _CARRY.active:
                batch = _CARRY.batch
                header = batch.pop(0) if batch else _CARRY.header
                if header:
                    system = dict(kwargs.get("system_attributes") or {})
                    system.setdefault("AWSTraceHeader", _system_attribute(header))
                    kwargs["system_attributes"] = system
            return send_message(self, *args, **kwargs)

        def carried_send_message_batch(self: Any, queue_name: str, entries: Any) -> Any:
            if not _CARRY.active:
                return send_message_batch(self, queue_name, entries)
            carried: list[str | None] = []
            for entry in entries.values():
                own = (entry.get("MessageSystemAttributes") or {}).get("AWSTraceHeader") or {}
                carried.append(own.get("StringValue") or _CARRY.header)
            _CARRY.batch = carried
            try:
                return send_message_batch(self, queue_name, entries)
            finally:
                _CARRY.batch = None

        def carried_put_events(self: Any, events: list[dict[str, Any]]) -> Any:
            if not _CARRY.active or len(events) > 10:  # moto answers the error
                return put_events(self, events)
            outer = _CARRY.header
            results = []
            try:
                for entry in events:
                    # The entry's TraceHeader wins over the request's header.
                    header = _valid(entry.get("TraceHeader") or outer)
                    _CARRY.header = header
                    [result] = put_events(self, [entry])
                    results.append(result)
                    journal = _CARRY.journal
                    if "EventId" in result and journal is not None:
                        event = _recorded_event(self, entry, result["EventId"])
                        bus = _bus_name(entry.get("EventBusName"))
                        journal.add(RecordedEvent(bus, event, header))
            finally:
                _CARRY.header = outer
            return results

        def carried_publish(self: Any, message: str, **kwargs: Any) -> Any:
            if not _CARRY.active:
                return publish(self, message, **kwargs)
            outer = _CARRY.header
            _CARRY.header = header = _valid(outer)
            try:
                message_id = publish(self, message, **kwargs)
            finally:
                _CARRY.header = outer
            journal = _CARRY.journal
            if journal is not None:
                journal.add(
                    RecordedNotification(
                        topic_arn=self.arn,
                        message_id=message_id,
                        message=message,
                        subject=kwargs.get("subject"),
                        message_attributes=dict(kwargs.get("message_attributes") or {}),
                        message_structure=kwargs.get("message_structure"),
                        timestamp=time.time(),
                        trace_header=header,
                    )
                )
            return message_id

        SQSBackend.send_message = carried_send_message  # type: ignore[method-assign]
        SQSBackend.send_message_batch = carried_send_message_batch  # type: ignore[method-assign]
        EventsBackend.put_events = carried_put_events  # type: ignore[method-assign]
        Topic.publish = carried_publish  # type: ignore[method-assign,assignment]
        _patched = True


def _step_functions(
    app: Any,
    environ: dict[str, Any],
    start_response: Any,
    header: str | None,
    journal: AWSJournal | None,
) -> Any:
    """StartExecution keeps its trace header; DescribeExecution returns it, as AWS does."""
    import io
    import json

    length = int(environ.get("CONTENT_LENGTH") or 0)
    raw = environ["wsgi.input"].read(length)
    environ["wsgi.input"] = io.BytesIO(raw)
    try:
        request = json.loads(raw or b"{}")
    except ValueError:
        request = {}
    answer: dict[str, Any] = {}
    chunks: list[bytes] = []

    def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        answer["status"], answer["headers"] = status, headers
        return chunks.append

    result = app(environ, capture)
    try:
        chunks.extend(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    data = b"".join(chunks)
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if journal is not None and answer.get("status", "").startswith("200"):
        try:
            reply = json.loads(data)
        except ValueError:
            reply = None
        if isinstance(reply, dict) and isinstance(request, dict):
            if target.endswith(".StartExecution"):
                trace = request.get("traceHeader") or header
                if trace and reply.get("executionArn"):
                    journal.executions[reply["executionArn"]] = str(trace)
            elif (trace := journal.executions.get(request.get("executionArn", ""))) is not None:
                reply.setdefault("traceHeader", trace)
                data = json.dumps(reply).encode()
    headers = [(k, v) for k, v in answer["headers"] if k.lower() != "content-length"]
    start_response(answer["status"], [*headers, ("Content-Length", str(len(data)))])
    return [data]


_STEP_FUNCTIONS = frozenset(
    {"AWSStepFunctions.StartExecution", "AWSStepFunctions.DescribeExecution"}
)


def trace_context_middleware(app: Any, journal: AWSJournal | None = None) -> Any:
    """WSGI middleware giving moto the trace-header behaviour of AWS (see the module).

    Real SQS stores the ``X-Amzn-Trace-Id`` header of a ``SendMessage`` request
    as the message's ``AWSTraceHeader`` system attribute when the request sets
    none itself. That is how the ``Lineage`` botocore copies from
    ``_X_AMZN_TRACE_ID`` reaches the next function, and how Lambda counts a
    loop's hops even with no tracer at all. The same header travels through
    SNS and EventBridge to their SQS targets; ``journal`` (when given) records
    what local targets are delivered from.
    """
    from urllib.parse import unquote

    _patch_moto()

    def wrapped(environ: dict[str, Any], start_response: Any) -> Any:
        raw = environ.get("HTTP_X_AMZN_TRACE_ID")
        header = unquote(raw) if raw else None
        if environ.get("HTTP_X_AMZ_TARGET", "") in _STEP_FUNCTIONS:
            return _step_functions(app, environ, start_response, header, journal)
        _CARRY.active, _CARRY.header, _CARRY.journal = True, header, journal
        try:
            return app(environ, start_response)
        finally:
            _CARRY.active, _CARRY.header, _CARRY.journal, _CARRY.batch = False, None, None, None

    return wrapped


#: The former name, from when only SQS carried the header.
sqs_trace_header_middleware = trace_context_middleware
