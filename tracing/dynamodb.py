"""Trace context through DynamoDB Streams: opt-in producer inject, consume, batches.

A DynamoDB write carries no trace context to the stream's consumer. The
context can only travel *in the item*, as an attribute, which changes what you
store, so the producer side is opt-in (see ``tracing._payload_context`` for the
exact format)::

    tracing.configure(payload_context=["dynamodb:orders"])  # or "dynamodb" for every table
    # or TRACING_PAYLOAD_CONTEXT=dynamodb:orders

Then ``PutItem``, the ``PutRequest`` items of ``BatchWriteItem`` and the ``Put``
items of a ``TransactWriteItems`` made only of ``Put`` actions get an attribute
``"_tracing": {"M": {"AWSTraceHeader": {"S": "Root=...;Parent=<PutItem subsegment>;..."}}}``
when the item stays within 400 KB. ``UpdateItem`` is never changed.
``tracing.dynamodb.inject(params)`` does the same on demand, without the option.

Consumer: ``with tracing.dynamodb.consume(record):`` records one stream
record's processing in the producer's trace when its image carries a usable
``_tracing`` (``NewImage``; ``OldImage`` for ``REMOVE``), else in the current
invocation (or a new trace in a worker), as ``tracing.sqs.consume`` does.
A ``MODIFY`` whose old and new images hold the same ``_tracing`` was not written
by an injecting put (an ``UpdateItem``): that stale context is ignored. With the
``NEW_IMAGE`` view type there is no old image to compare, so such an update
is attributed to the item's last put.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from . import _payload_context as payload
from ._consumer import Consume, Source, place_after, stream_batch
from ._header import TraceHeader
from ._propagation import outgoing_header

__all__ = ["consume", "extract", "inject", "process_batch"]

log = logging.getLogger("tracing.dynamodb")

_MAX_ID = 256


# -- producer -------------------------------------------------------------------


def _with_context(
    item: Any, members: Mapping[str, str], room: int
) -> tuple[dict[str, Any] | None, int]:
    """A copy of ``item`` with ``_tracing``, and the bytes it adds; ``None`` to skip."""
    if not isinstance(item, Mapping):
        return None, 0
    if payload.KEY in item:
        payload.skip(log, "the item has a _tracing attribute already (the caller's is kept)")
        return None, 0
    typed = payload.is_typed(item)
    value, added = payload.dynamodb_attribute(members, typed)
    size = payload.item_size(item, typed) + added
    if size > payload.DYNAMODB_ITEM_BYTES:
        payload.skip(log, "the item would exceed DynamoDB's 400 KB (about %d bytes)", size)
        return None, 0
    if added > room:
        payload.skip(log, "the request would exceed DynamoDB's request size limit")
        return None, 0
    return {**item, payload.KEY: value}, added


def _size(item: Any) -> int:
    return payload.item_size(item, payload.is_typed(item)) if isinstance(item, Mapping) else 0


def _put_item(params: dict[str, Any], members: Mapping[str, str]) -> None:
    new, _ = _with_context(params.get("Item"), members, payload.DYNAMODB_ITEM_BYTES)
    if new is not None:
        params["Item"] = new


def _batch_write(
    params: dict[str, Any], members: Mapping[str, str], wanted: Callable[[str | None], bool]
) -> None:
    tables = params.get("RequestItems")
    if not isinstance(tables, Mapping):
        return
    requests = [r for entries in tables.values() if isinstance(entries, list) for r in entries]
    puts = [r.get("PutRequest") for r in requests if isinstance(r, Mapping)]
    room = payload.DYNAMODB_BATCH_BYTES - sum(
        _size(p.get("Item")) for p in puts if isinstance(p, Mapping)
    )
    updated: dict[str, Any] = {}
    for table, entries in tables.items():
        if not isinstance(entries, list) or not wanted(payload.resource_name(table, ":table/")):
            updated[table] = entries
            continue
        new_entries = []
        for entry in entries:
            put = entry.get("PutRequest") if isinstance(entry, Mapping) else None
            if isinstance(put, Mapping):
                new, added = _with_context(put.get("Item"), members, room)
                room -= added
                if new is not None:
                    entry = {**entry, "PutRequest": {**put, "Item": new}}
            new_entries.append(entry)
        updated[table] = new_entries
    params["RequestItems"] = updated


def _transact_write(
    params: dict[str, Any], members: Mapping[str, str], wanted: Callable[[str | None], bool]
) -> None:
    actions = params.get("TransactItems")
    if not isinstance(actions, list):
        return
    if not all(isinstance(a, Mapping) and set(a) == {"Put"} for a in actions):
        # Updates, deletes and checks count their items against the transaction's
        # 4 MB too, at sizes we cannot know: any addition could make it fail.
        payload.skip(log, "TransactWriteItems holds actions other than Put")
        return
    room = payload.DYNAMODB_TRANSACTION_BYTES - sum(
        _size(a["Put"].get("Item")) for a in actions if isinstance(a["Put"], Mapping)
    )
    updated = []
    for action in actions:
        put = action["Put"]
        new = None
        if isinstance(put, Mapping) and wanted(
            payload.resource_name(put.get("TableName"), ":table/")
        ):
            new, added = _with_context(put.get("Item"), members, room)
            room -= added
        updated.append(action if new is None else {**action, "Put": {**put, "Item": new}})
    params["TransactItems"] = updated


def _everywhere(name: str | None) -> bool:
    return True


def _inject(
    params: dict[str, Any],
    header: TraceHeader | None,
    wanted: Callable[[str | None], bool],
) -> dict[str, Any]:
    try:
        header = header or outgoing_header()
        if header is None:
            return params
        members = payload.fields(header, payload.wants_traceparent())
        if "RequestItems" in params:
            _batch_write(params, members, wanted)
        elif "TransactItems" in params:
            _transact_write(params, members, wanted)
        elif "Item" in params and wanted(payload.resource_name(params.get("TableName"), ":table/")):
            _put_item(params, members)
    except Exception:
        log.debug("tracing: DynamoDB inject failed", exc_info=True)
    return params


def inject(params: dict[str, Any], header: TraceHeader | None = None) -> dict[str, Any]:
    """Add a ``_tracing`` attribute to the items of PutItem, BatchWriteItem or
    TransactWriteItems parameters.

    The explicit call is the opt-in: it works without ``payload_context``.
    Items that already have ``_tracing`` or would exceed DynamoDB's limits are
    left as they are (logged once per reason). Both the client's typed items
    (``{"sku": {"S": "x"}}``) and ``boto3.resource`` items (plain values) work.

    Args:
        params: The operation's parameters. Updated in place; the caller's
            items and lists are copied, never mutated.
        header: The context to inject; the current one by default.

    Returns:
        ``params``, for chaining.
    """
    return _inject(params, header, _everywhere)


def _on_write(params: dict[str, Any], **_: Any) -> None:
    if payload.enabled("dynamodb", None):
        _inject(params, None, _everywhere)
    elif _any_table_enabled():
        _inject(params, None, lambda name: payload.enabled("dynamodb", name))


def _any_table_enabled() -> bool:
    from ._runtime import get_runtime

    runtime = get_runtime()
    if runtime is None or runtime.settings.disabled:
        return False
    return any(t.startswith("dynamodb:") for t in runtime.settings.payload_context)


#: botocore operation -> ``before-parameter-build`` handler (``_boto_hooks``).
HANDLERS: dict[str, Callable[..., Any]] = {
    "PutItem": _on_write,
    "BatchWriteItem": _on_write,
    "TransactWriteItems": _on_write,
}


# -- consumer -------------------------------------------------------------------


def extract(record: Any) -> tuple[TraceHeader | None, str | None]:
    """Find the trace context and sequence number of a DynamoDB Streams record.

    Accepts a Lambda DynamoDB Streams record or a boto3 ``dynamodbstreams``
    ``GetRecords`` record (the same shape). The context is the ``_tracing``
    attribute of ``NewImage`` (``OldImage`` for ``REMOVE``); a ``MODIFY``
    whose old image holds the same value is stale and ignored. Never raises.

    Returns:
        ``(header, sequence_number)``; either may be ``None``.
    """
    if type(record) is not dict and not isinstance(record, Mapping):
        return None, None
    change = record.get("dynamodb")
    if not isinstance(change, Mapping):
        return None, None
    sequence = change.get("SequenceNumber")
    if not isinstance(sequence, str) or not sequence or len(sequence) > _MAX_ID:
        sequence = None
    new, old = change.get("NewImage"), change.get("OldImage")
    if record.get("eventName") == "REMOVE":
        return payload.dynamodb_header(old), sequence
    header = payload.dynamodb_header(new)
    if (
        header is not None
        and isinstance(old, Mapping)
        and isinstance(new, Mapping)
        and old.get(payload.KEY) == new.get(payload.KEY)
    ):
        log.debug("tracing: ignoring the unchanged _tracing of record %s", sequence)
        return None, sequence
    return header, sequence


_DYNAMODB = Source(
    extract=extract,
    record_span="DynamoDB record",
    id_key="SequenceNumber",
    place_key="TableStream",
    place=place_after(":table/", "/"),
    log=log,
)


class consume(Consume):  # noqa: N801 - reads as a function at call sites
    """Record the processing of one DynamoDB Streams record in the producer's trace.

    Accepts a Lambda DynamoDB Streams record or a boto3 ``dynamodbstreams``
    ``GetRecords`` record.

    * A usable, sampled ``_tracing`` in the image: a segment named after the
      service, in the producer's trace under the PutItem subsegment, annotated
      ``SequenceNumber`` and ``TableStream`` (the table's name).
    * Inside a Lambda invocation, the invocation also gets a small ``DynamoDB
      record`` subsegment per record, annotated ``SequenceNumber`` and
      ``LinkedTraceId``.
    * No usable context: recorded in the current invocation, or, in a worker
      outside any invocation, in a new trace.
    * An exception marks the segment ``fault`` with a ``cause`` and propagates.

    Example::

        with tracing.dynamodb.consume(record):
            handle(record)
    """

    __slots__ = ()
    _source = _DYNAMODB


def _sequence(record: Any) -> object:
    change = record.get("dynamodb") if isinstance(record, Mapping) else None
    return change.get("SequenceNumber") if isinstance(change, Mapping) else None


def process_batch(event: Mapping[str, Any], fn: Callable[[Any], Any]) -> dict[str, Any]:
    """Run ``fn(record)`` for each record of a Lambda DynamoDB Streams event, in ``consume``.

    As for Kinesis: Lambda checkpoints the shard at the lowest reported
    sequence number and retries from there, so processing stops at the first
    failure, which is reported; the records after it are not processed (they
    come back anyway). Powertools' ``BatchProcessor`` processes every record
    instead, so records after a failure are processed twice.

    Args:
        event: The Lambda event (``{"Records": [...]}``).
        fn: Called with each record; its return value is ignored.

    Returns:
        ``{"batchItemFailures": [{"itemIdentifier": SequenceNumber}]}`` (empty,
        or the first failed record).

    Raises:
        TypeError: ``event`` is not a DynamoDB Streams event (nothing was
            processed; Lambda retries the whole batch).
        RuntimeError: The failed record had no ``SequenceNumber`` to report;
            the whole batch must be retried. Raised after processing stopped.
    """
    return stream_batch(
        event, fn, consume, _sequence, "aws:dynamodb", "DynamoDB Streams", "SequenceNumber", log
    )
