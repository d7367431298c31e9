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

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from ._consumer import Consume, Source, place_after, run_batch
from ._header import TraceHeader, from_traceparent, parse, to_traceparent
from ._propagation import outgoing_header
from ._runtime import get_runtime

__all__ = ["consume", "extract", "inject", "process_batch"]

log = logging.getLogger("tracing.sqs")

_SYSTEM_KEY = "AWSTraceHeader"
_MAX_BODY_TO_PARSE = 262_144  # SNS messages and EventBridge events are at most 256 KiB
#: SQS limits checked before adding a message attribute.
MAX_MESSAGE_ATTRIBUTES = 10
MAX_MESSAGE_BYTES = 262_144
_RECORD_SPAN = "SQS message"


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


def _from_envelope(body: Any) -> TraceHeader | None:
    """The header in the body of an SNS notification (without raw delivery) or an
    EventBridge event delivered to SQS; ``None`` for any other body.

    Bounded: only bodies of at most 256 KiB (both services' maximum) that start
    with ``{`` and name the envelope's marker are parsed.
    """
    if not isinstance(body, str) or len(body) > _MAX_BODY_TO_PARSE or not body.startswith("{"):
        return None
    sns = '"Notification"' in body
    if not sns and '"detail-type"' not in body:
        return None
    try:
        envelope = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than Python goes
        return None
    if not isinstance(envelope, Mapping):
        return None
    if sns and envelope.get("Type") == "Notification":
        attributes = envelope.get("MessageAttributes")
        for key in (_SYSTEM_KEY, "X-Amzn-Trace-Id"):
            header = parse(_message_attribute(attributes, key))
            if header is not None:
                return header
        return from_traceparent(_message_attribute(attributes, "traceparent"))
    return _from_eventbridge(envelope)


def _from_eventbridge(event: Mapping[str, Any]) -> TraceHeader | None:
    """The context a producer put in an EventBridge event's ``detail._tracing``.

    EventBridge itself passes a PutEvents entry's ``TraceHeader`` to an SQS target
    as ``AWSTraceHeader`` (read first, by :func:`extract`); this is for events
    whose context travels in the detail instead (``_tracing`` in the payload
    format of ``tracing._payload_context``: ``AWSTraceHeader``, then
    ``traceparent``). Datadog's ``detail._datadog`` is not read: its parent is a
    Datadog span, which X-Ray never receives.
    """
    if not all(key in event for key in ("version", "id", "detail-type", "source")):
        return None
    detail = event.get("detail")
    if not isinstance(detail, Mapping) or "_tracing" not in detail:
        return None
    from ._payload_context import from_fields

    return from_fields(detail["_tracing"])


def extract(message: Any) -> tuple[TraceHeader | None, str | None]:
    """Find the trace header and message id of a Lambda SQS record or boto3 message.

    Looks, in order, at the ``AWSTraceHeader`` system attribute (``attributes`` in
    Lambda records, ``Attributes`` in ReceiveMessage messages), a ``traceparent``
    message attribute, then the body: an SNS notification's message attributes
    (``AWSTraceHeader``, ``X-Amzn-Trace-Id``, ``traceparent``), or an EventBridge
    event's ``detail._tracing`` (``AWSTraceHeader``, ``traceparent``). Never raises.

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
        header = _from_envelope(message.get("body") or message.get("Body"))
    return header, message_id


_SQS = Source(
    extract=extract,
    record_span=_RECORD_SPAN,
    id_key="MessageId",
    place_key="Queue",
    place=place_after(":"),
    log=log,
)


class consume(Consume):  # noqa: N801 - reads as a function at call sites
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

    __slots__ = ()
    _source = _SQS


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
    failures, unreportable = run_batch(
        records,
        fn,
        consume,
        item_id=_message_id,
        stop_after=_is_fifo,
        report_rest=True,
        label="SQS",
        log=log,
    )
    if unreportable:
        raise RuntimeError(
            f"{unreportable} failed SQS record(s) had no messageId to report; failing the "
            "whole batch so that no message is lost"
        )
    return {"batchItemFailures": failures}


def _message_id(record: Any) -> object:
    return record.get("messageId") if isinstance(record, Mapping) else None


def _is_fifo(record: Any) -> bool:
    return isinstance(record, Mapping) and str(record.get("eventSourceARN", "")).endswith(".fifo")
