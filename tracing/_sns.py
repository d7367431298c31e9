"""Trace context through SNS: a W3C ``traceparent`` on the otel backend.

On the X-Ray path an SNS publish needs nothing from us: the HTTP
``X-Amzn-Trace-Id`` header (``_boto_hooks.py``) carries the context, with the
``Publish`` call's own subsegment as ``Parent`` and ``Lineage`` kept, and SNS
with active tracing passes it on to Lambda and to SQS subscriptions.

On the otel backend (``backend.traceparent``), ``Publish`` and each
``PublishBatch`` entry also get a ``traceparent`` string message attribute, for
consumers on OpenTelemetry's own instrumentation (``tracing.sqs.extract`` reads
it too, from SQS messages and from SNS envelopes). It is added only where it
cannot make a valid request invalid:

* fewer than 10 message attributes (SNS delivers at most 10 to SQS);
* the message stays within 256 KiB, counting its body, subject and attributes
  (name, type and value), and for ``PublishBatch`` the whole batch does too
  (SNS's default ``MaximumMessageSize``; a topic may allow more, but the
  server is never relied on to refuse);
* a publish to a topic: not an SMS (``PhoneNumber``) nor a mobile push
  endpoint (``TargetArn`` of an ``endpoint/``), whose attributes are
  delivery settings.

A ``traceparent`` the caller set is never replaced; nothing is added where the
propagation rule passes nothing. The caller's dicts are never mutated: a changed
entry or attribute map is a copy.

How this differs from OpenTelemetry's SNS extension: it writes into the caller's
``MessageAttributes`` dict, replaces a ``traceparent`` already there, checks the
attribute count but not the size, and injects into SMS and push publishes too.
Ours leaves the caller's objects alone, checks both limits (per message and per
batch), and follows the propagation rule: ``Lineage`` travels in the HTTP
header, an unsampled invocation passes its own trace with flags ``00``, and
nothing is passed during init. Datadog adds its own ``_datadog`` attribute.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from ._header import to_traceparent
from ._propagation import outgoing_header
from ._runtime import get_runtime

__all__ = ["HANDLERS", "MAX_MESSAGE_ATTRIBUTES", "MAX_MESSAGE_BYTES", "add_traceparent"]

log = logging.getLogger("tracing.aws")

_NAME = "traceparent"
#: SNS -> SQS delivers at most 10 message attributes.
MAX_MESSAGE_ATTRIBUTES = 10
#: SNS's default message (and PublishBatch payload) size, 256 KiB.
MAX_MESSAGE_BYTES = 262_144


def _bytes(value: Any) -> int:
    if isinstance(value, (bytes, bytearray)):
        return len(value)
    if isinstance(value, str):
        # isascii() reads a flag CPython keeps: no pass over a 256 KiB body.
        return len(value) if value.isascii() else len(value.encode())
    return 0 if value is None else len(str(value).encode())


def _size(entry: Mapping[str, Any]) -> int | None:
    """The bytes of a message as SNS counts them (generously); ``None`` if malformed."""
    total = _bytes(entry.get("Message")) + _bytes(entry.get("Subject"))
    attributes = entry.get("MessageAttributes")
    if attributes is None:
        return total
    if not isinstance(attributes, Mapping):
        return None
    for name, value in attributes.items():
        if not isinstance(value, Mapping):
            return None
        total += _bytes(name)
        for field in ("DataType", "StringValue", "BinaryValue"):
            total += _bytes(value.get(field))
    return total


def _added(traceparent: str) -> tuple[dict[str, str], int]:
    attribute = {"DataType": "String", "StringValue": traceparent}
    return attribute, len(_NAME) + len("String") + len(traceparent)


def add_traceparent(entries: list[Any], traceparent: str, *, batch: bool) -> tuple[list[Any], int]:
    """The entries with a ``traceparent`` attribute where it fits.

    Args:
        entries: ``Publish`` parameters (one) or ``PublishBatch`` entries;
            never mutated.
        traceparent: The W3C value to add.
        batch: The entries travel in one ``PublishBatch``, whose total size is
            limited too.

    Returns:
        ``(entries, skipped)``: a new list where entries that got the attribute
        are copies, and how many eligible entries it did not fit.
    """
    attribute, extra = _added(traceparent)
    sizes = [_size(e) if isinstance(e, Mapping) else None for e in entries]
    total = sum(s for s in sizes if s is not None)
    result: list[Any] = []
    skipped = 0
    for entry, size in zip(entries, sizes, strict=True):
        if size is None or not isinstance(entry, Mapping):
            result.append(entry)  # malformed: botocore reports it
            continue
        attributes = entry.get("MessageAttributes") or {}
        if _NAME in attributes:
            result.append(entry)  # the caller's own value wins
            continue
        if (
            len(attributes) >= MAX_MESSAGE_ATTRIBUTES
            or size + extra > MAX_MESSAGE_BYTES
            or (batch and total + extra > MAX_MESSAGE_BYTES)
        ):
            result.append(entry)
            skipped += 1
            continue
        total += extra
        result.append({**entry, "MessageAttributes": {**attributes, _NAME: attribute}})
    return result, skipped


def _to_topic(params: Mapping[str, Any]) -> bool:
    if params.get("PhoneNumber") is not None:
        return False
    target = params.get("TargetArn")
    return not (isinstance(target, str) and ":endpoint/" in target)


def _traceparent() -> str | None:
    runtime = get_runtime()
    if runtime is None or not runtime.backend.traceparent:
        return None
    header = outgoing_header()
    return None if header is None else to_traceparent(header)


def _on_publish(params: dict[str, Any], **_: Any) -> None:
    try:
        if not _to_topic(params):
            return
        traceparent = _traceparent()
        if traceparent is None:
            return
        [entry], skipped = add_traceparent([params], traceparent, batch=False)
        if entry is not params:
            params["MessageAttributes"] = entry["MessageAttributes"]
        elif skipped:
            log.debug("tracing: no room for a traceparent attribute on an SNS message")
    except Exception:
        log.debug("tracing: could not add a traceparent to an SNS Publish", exc_info=True)


def _on_publish_batch(params: dict[str, Any], **_: Any) -> None:
    try:
        entries = params.get("PublishBatchRequestEntries")
        if not isinstance(entries, list):
            return
        traceparent = _traceparent()
        if traceparent is None:
            return
        new, skipped = add_traceparent(entries, traceparent, batch=True)
        params["PublishBatchRequestEntries"] = new
        if skipped:
            log.debug("tracing: no room for a traceparent attribute on %d SNS messages", skipped)
    except Exception:
        log.debug("tracing: could not add a traceparent to an SNS PublishBatch", exc_info=True)


#: botocore operation -> ``before-parameter-build`` handler (``_boto_hooks``).
HANDLERS: dict[str, Callable[..., Any]] = {
    "Publish": _on_publish,
    "PublishBatch": _on_publish_batch,
}
