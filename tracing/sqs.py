"""Trace context through SQS: producer inject, per-message consume, batches.

Producer: once ``configure()`` has run, every boto3 SQS client (including those
created before it) adds ``MessageSystemAttributes.AWSTraceHeader`` to
``SendMessage`` and to each ``SendMessageBatch`` entry, with ``Parent`` = the
SendMessage call's subsegment. It is a *system* attribute: it does not count
against the 10 message attributes nor the message size, so injecting it can never
make a valid request invalid. A value the caller set is never replaced, and
nothing is injected without a sampled trace (for example during init).

Consumer: ``with tracing.sqs.consume(message):`` records the processing of one
message *in the producer's trace*: a segment document with the producer's Root
as ``trace_id`` and the SendMessage subsegment as ``parent_id``, spanning the
processing, holding every span and AWS call made inside. X-Ray's own SQS
integration only draws a dashed "linked" edge; this puts the consumer's work
inside the producer's trace view.

Everything read from a message is written by whoever can send to the queue: it
is validated, and anything unusable means "no header" (one debug line), never an
exception.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Mapping
from contextvars import Token
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ._header import TraceHeader, from_traceparent, new_trace_id, parse, to_traceparent
from ._propagation import outgoing_header
from ._runtime import Runtime, current_node, get_runtime
from ._scope import STACK, Scope, end_unit
from ._span import CONSUMER, NOOP, NoopSpan, Span, clean_name

if TYPE_CHECKING:
    from ._scope import Node

__all__ = ["consume", "extract", "inject", "process_batch"]

log = logging.getLogger("tracing.sqs")

_SYSTEM_KEY = "AWSTraceHeader"
_MAX_BODY_TO_PARSE = 262_144  # SNS messages are at most 256 KiB
#: SQS limits checked before adding a message attribute.
MAX_MESSAGE_ATTRIBUTES = 10
MAX_MESSAGE_BYTES = 262_144
_RECORD_SPAN = "SQS message"
_MAX_ID = 128  # SQS message ids are 36 characters; anything longer is not one


# -- producer -------------------------------------------------------------------


def _system_with_header(entry: Mapping[str, Any], value: str) -> dict[str, Any] | None:
    """New ``MessageSystemAttributes`` for ``entry`` carrying the header, or ``None``."""
    system = entry.get("MessageSystemAttributes")
    if system is None:
        return {_SYSTEM_KEY: {"DataType": "String", "StringValue": value}}
    if not isinstance(system, Mapping) or _SYSTEM_KEY in system:
        return None  # malformed (botocore reports it), or the caller's value wins
    return {**system, _SYSTEM_KEY: {"DataType": "String", "StringValue": value}}


def _attribute_bytes(attributes: Mapping[str, Any]) -> int:
    total = 0
    for name, value in attributes.items():
        total += len(str(name).encode())
        if isinstance(value, Mapping):
            for field in ("DataType", "StringValue", "BinaryValue"):
                item = value.get(field)
                if isinstance(item, (bytes, bytearray)):
                    total += len(item)
                elif item is not None:
                    total += len(str(item).encode())
    return total


def _attributes_with_traceparent(
    entry: Mapping[str, Any], traceparent: str
) -> dict[str, Any] | None:
    """New ``MessageAttributes`` with a W3C ``traceparent``, or ``None`` if it won't fit.

    Message attributes count against SQS's limits (10 per message, and the
    message size), unlike the system attribute: add it only with fewer than 10
    attributes and while the message stays within 256 KiB (the historical and a
    common configured maximum; never rely on the server to refuse).
    """
    attributes = entry.get("MessageAttributes")
    if attributes is None:
        attributes = {}
    if not isinstance(attributes, Mapping) or len(attributes) >= MAX_MESSAGE_ATTRIBUTES:
        return None
    if "traceparent" in attributes:
        return None
    body = entry.get("MessageBody")
    size = len(body.encode()) if isinstance(body, str) else 0
    added = {"DataType": "String", "StringValue": traceparent}
    size += _attribute_bytes(attributes) + _attribute_bytes({"traceparent": added})
    if size > MAX_MESSAGE_BYTES:
        return None
    return {**attributes, "traceparent": added}


def _changes(entry: Mapping[str, Any], value: str, traceparent: str | None) -> dict[str, Any]:
    """The new attribute dicts ``entry`` should get (the caller's are never mutated)."""
    changes: dict[str, Any] = {}
    system = _system_with_header(entry, value)
    if system is not None:
        changes["MessageSystemAttributes"] = system
    if traceparent is not None:
        attributes = _attributes_with_traceparent(entry, traceparent)
        if attributes is not None:
            changes["MessageAttributes"] = attributes
    return changes


def _inject_entry(entry: Any, value: str, traceparent: str | None) -> Any:
    if not isinstance(entry, Mapping):
        return entry
    changes = _changes(entry, value, traceparent)
    # Batch entries belong to the caller: a changed one is a copy, others stay as is.
    return {**entry, **changes} if changes else entry


def inject(
    params: dict[str, Any], header: TraceHeader | None = None, *, traceparent: bool = False
) -> dict[str, Any]:
    """Add ``AWSTraceHeader`` to SendMessage or SendMessageBatch parameters.

    For code that builds request parameters itself (or sends through something
    other than an instrumented boto3 client). The current span is the parent.
    Caller-set values are kept; nothing is added without a sampled trace.

    Args:
        params: ``SendMessage`` parameters, or ``SendMessageBatch`` parameters
            with ``Entries``. Updated in place; nested dicts are copied, never
            mutated.
        header: The context to inject; the current one by default.
        traceparent: Also add a W3C ``traceparent`` message attribute, for
            consumers using OTel's own instrumentation, when it fits (fewer
            than 10 attributes, message within 256 KiB). The otel backend's
            instrumentation does this.

    Returns:
        ``params``, for chaining.
    """
    try:
        header = header or outgoing_header()
        if header is None:
            return params
        value = header.to_string()
        w3c = to_traceparent(header) if traceparent else None
        entries = params.get("Entries")
        if isinstance(entries, list):
            params["Entries"] = [_inject_entry(e, value, w3c) for e in entries]
        else:
            params.update(_changes(params, value, w3c))
    except Exception:
        log.debug("tracing: SQS inject failed", exc_info=True)
    return params


def _ask_for(params: dict[str, Any], key: str, name: str) -> None:
    names = params.get(key)
    if names is None:
        params[key] = [name]
    elif isinstance(names, (list, tuple)) and name not in names and "All" not in names:
        params[key] = [*names, name]


def _on_send(params: dict[str, Any], **_: Any) -> None:
    runtime = get_runtime()
    inject(params, traceparent=runtime is not None and runtime.backend.traceparent)


def _on_receive(params: dict[str, Any], **_: Any) -> None:
    """Make ReceiveMessage return the trace context.

    ``AWSTraceHeader`` in both the current and the legacy parameter, and the
    ``traceparent`` message attribute that OTel producers add.
    """
    try:
        _ask_for(params, "MessageSystemAttributeNames", _SYSTEM_KEY)
        _ask_for(params, "AttributeNames", _SYSTEM_KEY)
        _ask_for(params, "MessageAttributeNames", "traceparent")
    except Exception:
        log.debug("tracing: could not extend ReceiveMessage parameters", exc_info=True)


HANDLERS: dict[str, Callable[..., Any]] = {
    "SendMessage": _on_send,
    "SendMessageBatch": _on_send,
    "ReceiveMessage": _on_receive,
}


# -- consumer -------------------------------------------------------------------


def _attribute(container: Any, key: str) -> Any:
    # type() first: the ABC isinstance check costs several times more, and
    # records decoded from JSON are always plain dicts.
    if type(container) is dict or isinstance(container, Mapping):
        return container.get(key)
    return None


def _message_attribute(attributes: Any, key: str) -> Any:
    """A string message attribute, in Lambda (``stringValue``), boto3 or SNS shape."""
    entry = _attribute(attributes, key)
    if not isinstance(entry, Mapping):
        return None
    for field in ("stringValue", "StringValue", "Value"):
        value = entry.get(field)
        if isinstance(value, str):
            return value
    return None


def _from_sns_envelope(body: Any) -> TraceHeader | None:
    """The header of an SNS notification delivered without raw delivery."""
    if not isinstance(body, str) or len(body) > _MAX_BODY_TO_PARSE:
        return None
    if not body.startswith("{") or '"Notification"' not in body:
        return None
    try:
        envelope = json.loads(body)
    except ValueError:
        return None
    if not isinstance(envelope, Mapping) or envelope.get("Type") != "Notification":
        return None
    attributes = envelope.get("MessageAttributes")
    for key in (_SYSTEM_KEY, "X-Amzn-Trace-Id"):
        header = parse(_message_attribute(attributes, key))
        if header is not None:
            return header
    return from_traceparent(_message_attribute(attributes, "traceparent"))


def extract(message: Any) -> tuple[TraceHeader | None, str | None]:
    """Find the trace header and message id of a Lambda SQS record or boto3 message.

    Looks, in order, at the ``AWSTraceHeader`` system attribute (``attributes`` in
    Lambda records, ``Attributes`` in ReceiveMessage messages), a ``traceparent``
    message attribute, and an SNS envelope in the body. Never raises.

    Returns:
        ``(header, message_id)``; either may be ``None``.
    """
    if type(message) is not dict and not isinstance(message, Mapping):
        return None, None
    message_id = message.get("messageId") or message.get("MessageId")
    if not isinstance(message_id, str):
        message_id = None
    system = message.get("attributes") or message.get("Attributes")
    raw = _attribute(system, _SYSTEM_KEY)
    header = parse(raw)
    if header is None and raw is not None:
        log.debug("tracing: ignoring an invalid AWSTraceHeader on message %s", message_id)
    if header is None:
        attributes = message.get("messageAttributes") or message.get("MessageAttributes")
        header = from_traceparent(_message_attribute(attributes, "traceparent"))
    if header is None:
        header = _from_sns_envelope(message.get("body") or message.get("Body"))
    return header, message_id


@functools.lru_cache(maxsize=64)
def _queue_name_of(arn: str) -> str | None:
    if arn.count(":") >= 5:
        return clean_name(arn.rsplit(":", 1)[1])
    return None


def _queue_name(arn: object) -> str | None:
    """The queue name of a Lambda record's ``eventSourceARN`` (cached per ARN)."""
    return _queue_name_of(arn) if isinstance(arn, str) and len(arn) <= 256 else None


class consume:  # noqa: N801 - reads as a function at call sites
    """Record the processing of one SQS message in the producer's trace.

    Accepts a Lambda SQS record or a boto3 ``ReceiveMessage`` message.

    * Valid, sampled header: a segment named after the service, in the
      producer's trace under the SendMessage subsegment, spanning the block.
      Spans and AWS calls inside land under it.
    * Inside a Lambda invocation, the invocation also gets a small
      ``SQS message`` subsegment per record, annotated ``MessageId`` and
      ``LinkedTraceId``.
    * No usable header: the block is recorded in the current invocation, or,
      in a worker outside any invocation, in a new trace.
    * An exception marks the segment ``fault`` with a ``cause`` and propagates.

    Example::

        for message in sqs.receive_message(QueueUrl=url)["Messages"]:
            with tracing.sqs.consume(message):
                handle(message)
    """

    __slots__ = (
        "_emit",
        "_library",
        "_message",
        "_record",
        "_scope",
        "_segment",
        "_token",
    )

    def __init__(self, message: Any) -> None:
        self._message = message
        self._scope: Scope | None = None
        self._segment: Span = NOOP
        self._record: Span = NOOP
        self._token: Token[tuple[Node, ...]] | None = None
        self._emit: Callable[[Scope], bool] | None = None
        self._library: object = None

    def __enter__(self) -> Span:
        try:
            return self._enter()
        except Exception:
            try:  # noqa: SIM105 - contextlib.suppress is a Python call, unsafe at the limit
                log.debug("tracing: consume() could not start tracing", exc_info=True)
            except RecursionError:  # at the recursion limit even logging fails
                pass
            return NOOP

    def _enter(self) -> Span:
        runtime = get_runtime()
        if runtime is None or runtime.settings.disabled:
            return NOOP
        message = self._message
        if type(message) is not dict and not isinstance(message, Mapping):
            log.debug("tracing: consume() got a %s, not a message; untraced", type(message))
            return NOOP
        header, message_id = extract(message)
        usable = header is not None and header.parent is not None and header.is_sampled
        parent = current_node()
        invocation = parent if parent is not None and parent.recording else None
        parent_scope = invocation.scope if invocation is not None else None
        if parent_scope is None or parent_scope.placeholder:
            invocation = None  # no invocation here (a worker, or consume() at import)
        settings = runtime.settings
        # Annotation keys here are fixed and valid, and values are validated ids
        # (or capped), so they are set directly rather than through annotate().
        message_id = message_id[:_MAX_ID] if message_id else None
        record: Span = NOOP
        if invocation is not None and parent_scope is not None and parent_scope.admit():
            record = Span(_RECORD_SPAN, parent_scope)
            invocation.adopt(record)
            notes: dict[str, str | int | float | bool] = {}
            if message_id:
                notes["MessageId"] = message_id
            if usable and header is not None:
                notes["LinkedTraceId"] = header.root
            record.annotations = notes
        self._record = record
        scope: Scope | None
        if usable and header is not None:
            # Same start as the record's subsegment, so the two line up exactly.
            segment = Span(runtime.service_name, start_time=record.start_time or None)
            segment.kind = CONSUMER
            scope = Scope(
                segment,
                header.root,
                header.parent,
                segment=True,
                limit=settings.max_spans_per_invocation,
            )
            scope.extra = _extras(runtime, header)
        elif invocation is not None:
            segment = record  # recorded in the current invocation
            scope = None
        elif parent is not None and not parent.recording:
            return NOOP  # an unsampled invocation: no new trace behind its back
        elif header is not None and header.sampled == "0" and header.parent is not None:
            # The producer decided not to record this trace: record nothing, and
            # pass its decision on (Sampled=0) from what this message triggers.
            segment = NoopSpan(runtime.service_name, span_id=header.parent)
            unsampled = Scope(segment, header.root, header.parent, sampled=False)
            unsampled.extra = _extras(runtime, header)
            self._token = STACK.set((segment,))
            self._library = runtime.backend.enter(segment)
            return segment
        else:
            segment = Span(runtime.service_name)
            segment.kind = CONSUMER
            scope = Scope(
                segment, new_trace_id(), None, segment=True, limit=settings.max_spans_per_invocation
            )
        if scope is not None:
            notes = {}
            if message_id:
                notes["MessageId"] = message_id
            queue = _queue_name(message.get("eventSourceARN"))
            if queue:
                notes["Queue"] = queue
            segment.annotations = notes
        self._scope = scope
        self._segment = segment
        self._emit = runtime.emit_scope
        if segment.recording:
            stack = STACK.get()
            self._token = STACK.set((*stack, segment) if scope is None else (segment,))
            backend = runtime.backend
            self._library = backend.enter(segment)
            if usable and header is not None and invocation is not None:
                # OTel messaging conventions: the invocation links to each
                # record's context, the processing span to the invocation.
                emitter = runtime.emitter
                emitter.link(invocation.id, header.root, header.parent)
                trace_id = parent_scope.trace_id if parent_scope is not None else None
                emitter.link(segment.id, trace_id, invocation.id)
        return segment

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        token, self._token = self._token, None
        library, self._library = self._library, None
        try:
            runtime = get_runtime()
            if library is not None and runtime is not None:
                runtime.backend.exit(library)
            if token is not None:
                try:
                    STACK.reset(token)
                except ValueError:
                    STACK.set(())
            now = time.time()
            segment, record = self._segment, self._record
            if exc is not None:
                segment.fail(exc, full=True)
                if record is not segment:
                    record.fail(exc)
            segment.finish(now)
            record.finish(now)
            scope = self._scope
            if scope is not None:
                emit = self._emit
                if emit is not None:
                    emit(scope)
                if self._record is NOOP and runtime is not None:
                    runtime.end_of_unit()  # a worker: no invocation will flush for us
                    end_unit()  # ... nor close the late window of the last message
        except RecursionError:
            pass  # at the recursion limit: the record's trace is dropped, not the error
        except Exception:
            try:  # noqa: SIM105 - contextlib.suppress is a Python call, unsafe at the limit
                log.debug("tracing: consume() could not finish tracing", exc_info=True)
            except RecursionError:
                pass


def _extras(runtime: Runtime, header: TraceHeader) -> tuple[tuple[str, str], ...]:
    """The pass-through keys (``Lineage``...) that calls made for a message carry.

    In Lambda, the *invocation's*: Lambda counts a loop's hops in ``Lineage`` per
    invocation, and a message's own value would rewind (or skip) that count. In
    a worker, the message's own: there is no invocation, and the chain goes on.
    """
    if not runtime.in_lambda:
        return header.extra
    invocation = runtime.invocation
    scope = invocation.scope if invocation is not None else None
    return scope.extra if scope is not None else ()


def process_batch(event: Mapping[str, Any], fn: Callable[[Any], Any]) -> dict[str, Any]:
    """Run ``fn(record)`` for each record of a Lambda SQS event, each in ``consume``.

    One failing record never stops the others. The return value is Lambda's
    partial batch response: enable ``ReportBatchItemFailures`` on the event source
    mapping and return it from the handler, so only failed messages are retried.

    FIFO queues (``.fifo`` source ARN): after the first failure the remaining
    records are not processed and are reported as failed too, so that message
    order within a group is kept.

    Args:
        event: The Lambda event (``{"Records": [...]}``).
        fn: Called with each record; its return value is ignored.

    Returns:
        ``{"batchItemFailures": [{"itemIdentifier": messageId}, ...]}``.

    Raises:
        TypeError: ``event`` is not an SQS event (nothing was processed, so
            Lambda retries the whole batch and nothing is lost).
        RuntimeError: A failed record had no ``messageId`` to report; the whole
            batch must be retried. Raised after every record was processed.
    """
    records = event.get("Records") if isinstance(event, Mapping) else None
    if not isinstance(records, list):
        raise TypeError("process_batch() expects a Lambda SQS event with a 'Records' list")
    failures: list[dict[str, str]] = []
    unreportable = 0
    stop = False
    for record in records:
        message_id = record.get("messageId") if isinstance(record, Mapping) else None
        if stop:
            failed = True
        else:
            try:
                with consume(record):
                    fn(record)
                failed = False
            except Exception as exc:
                failed = True
                log.warning("tracing: SQS record %s failed: %r", message_id, exc)
                if isinstance(record, Mapping) and str(record.get("eventSourceARN", "")).endswith(
                    ".fifo"
                ):
                    stop = True
        if failed:
            if isinstance(message_id, str) and message_id:
                failures.append({"itemIdentifier": message_id})
            else:
                unreportable += 1
    if unreportable:
        raise RuntimeError(
            f"{unreportable} failed SQS record(s) had no messageId to report; failing the "
            "whole batch so that no message is lost"
        )
    return {"batchItemFailures": failures}
