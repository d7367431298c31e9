"""Trace context through Kinesis Data Streams: opt-in producer inject, consume, batches.

Kinesis carries no trace context: no system attribute, no header reaches the
consumer. The context can only travel *inside the data*, which changes what
you store, so the producer side is opt-in (see ``tracing._payload_context``
for the exact format)::

    tracing.configure(payload_context=["kinesis"])        # every stream
    tracing.configure(payload_context=["kinesis:orders"])  # one stream
    # or TRACING_PAYLOAD_CONTEXT=kinesis:orders

Then every boto3 Kinesis client's ``PutRecord`` and ``PutRecords`` insert
``"_tracing":{"AWSTraceHeader":"Root=...;Parent=<PutRecord subsegment>;..."}``
as the first member of each record whose data is a JSON object (textually:
the rest of your bytes are unchanged), within Kinesis's limits.
``tracing.kinesis.inject(params)`` does the same on demand, without the option.

Consumer: ``with tracing.kinesis.consume(record):`` records one record's
processing in the producer's trace when the data carries a usable ``_tracing``,
else in the current invocation (or a new trace in a worker), exactly as
``tracing.sqs.consume`` does. ``process_batch(event, fn)`` runs a Lambda
Kinesis event and returns the partial batch response.
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

log = logging.getLogger("tracing.kinesis")

_MAX_ID = 256


# -- producer -------------------------------------------------------------------


def _size(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode("utf-8", "surrogatepass"))
    if isinstance(value, (bytes, bytearray, memoryview)):
        return len(value)
    return 0


def _inject_record(
    record: Mapping[str, Any], members: Mapping[str, str], room: int
) -> tuple[dict[str, Any] | None, int]:
    """A copy of ``record`` with the context in its data, and the bytes added."""
    data = record.get("Data")
    new, added, reason = payload.insert_into_json(data, members)
    if reason is not None:
        payload.skip(log, "%s", reason)
        return None, 0
    size = _size(data) + added + _size(record.get("PartitionKey"))
    if size > payload.KINESIS_RECORD_BYTES:
        payload.skip(log, "the record would exceed Kinesis's 1 MiB (%d bytes)", size)
        return None, 0
    if added > room:
        payload.skip(log, "the PutRecords request would exceed Kinesis's 5 MiB")
        return None, 0
    return {**record, "Data": new}, added


def inject(params: dict[str, Any], header: TraceHeader | None = None) -> dict[str, Any]:
    """Add ``_tracing`` to the JSON data of PutRecord or PutRecords parameters.

    The explicit call is the opt-in: it works without ``payload_context``.
    Records whose data is not a JSON object, already has ``_tracing``, or would
    exceed Kinesis's limits are left as they are (logged once per reason).

    Args:
        params: ``PutRecord`` parameters (``Data``), or ``PutRecords``
            parameters (``Records``). Updated in place; records of the caller's
            list are copied, never mutated.
        header: The context to inject; the current one by default (the
            current span is the parent, or the call's subsegment in a hook).

    Returns:
        ``params``, for chaining.
    """
    try:
        header = header or outgoing_header()
        if header is None:
            return params
        members = payload.fields(header, payload.wants_traceparent())
        records = params.get("Records")
        if isinstance(records, list):
            total = 0
            for record in records:
                if isinstance(record, Mapping):
                    total += _size(record.get("Data")) + _size(record.get("PartitionKey"))
            room = payload.KINESIS_REQUEST_BYTES - total
            updated = []
            for record in records:
                new = None
                if isinstance(record, Mapping) and room > 0:
                    new, added = _inject_record(record, members, room)
                    room -= added
                updated.append(record if new is None else new)
            params["Records"] = updated
        elif "Data" in params:
            new, _ = _inject_record(params, members, payload.KINESIS_RECORD_BYTES)
            if new is not None:
                params["Data"] = new["Data"]
    except Exception:
        log.debug("tracing: Kinesis inject failed", exc_info=True)
    return params


def _stream(params: Mapping[str, Any]) -> str | None:
    return payload.resource_name(params.get("StreamName") or params.get("StreamARN"), ":stream/")


def _on_put(params: dict[str, Any], **_: Any) -> None:
    if payload.enabled("kinesis", _stream(params)):
        inject(params)


#: botocore operation -> ``before-parameter-build`` handler (``_boto_hooks``).
HANDLERS: dict[str, Callable[..., Any]] = {"PutRecord": _on_put, "PutRecords": _on_put}


# -- consumer -------------------------------------------------------------------


def extract(record: Any) -> tuple[TraceHeader | None, str | None]:
    """Find the trace context and sequence number of a Kinesis record.

    Accepts a Lambda Kinesis record (``kinesis.data`` is base64) or a boto3
    ``GetRecords`` record (``Data`` is bytes). The context is the ``_tracing``
    member of JSON data (``AWSTraceHeader``, then ``traceparent``); data over
    1 MiB or not starting with ``{`` is not decoded. Never raises.

    Returns:
        ``(header, sequence_number)``; either may be ``None``.
    """
    if type(record) is not dict and not isinstance(record, Mapping):
        return None, None
    inner = record.get("kinesis")
    if isinstance(inner, Mapping):
        sequence = inner.get("sequenceNumber")
        header = payload.kinesis_header(inner.get("data"), encoded=True)
    else:
        sequence = record.get("SequenceNumber")
        header = payload.kinesis_header(record.get("Data"), encoded=False)
    if not isinstance(sequence, str) or not sequence or len(sequence) > _MAX_ID:
        sequence = None
    return header, sequence


_KINESIS = Source(
    extract=extract,
    record_span="Kinesis record",
    id_key="SequenceNumber",
    place_key="Stream",
    place=place_after(":stream/", "/"),
    log=log,
)


class consume(Consume):  # noqa: N801 - reads as a function at call sites
    """Record the processing of one Kinesis record in the producer's trace.

    Accepts a Lambda Kinesis record or a boto3 ``GetRecords`` record.

    * A usable, sampled ``_tracing`` in the data: a segment named after the
      service, in the producer's trace under the PutRecord(s) subsegment,
      annotated ``SequenceNumber`` and ``Stream``; spans and AWS calls inside
      land under it.
    * Inside a Lambda invocation, the invocation also gets a small ``Kinesis
      record`` subsegment per record, annotated ``SequenceNumber`` and
      ``LinkedTraceId``.
    * No usable context: recorded in the current invocation, or, in a worker
      outside any invocation, in a new trace.
    * An exception marks the segment ``fault`` with a ``cause`` and propagates.

    Example::

        for record in kinesis.get_records(ShardIterator=it)["Records"]:
            with tracing.kinesis.consume(record):
                handle(record)
    """

    __slots__ = ()
    _source = _KINESIS


def _sequence(record: Any) -> object:
    inner = record.get("kinesis") if isinstance(record, Mapping) else None
    return inner.get("sequenceNumber") if isinstance(inner, Mapping) else None


def process_batch(event: Mapping[str, Any], fn: Callable[[Any], Any]) -> dict[str, Any]:
    """Run ``fn(record)`` for each record of a Lambda Kinesis event, each in ``consume``.

    Return the result from the handler with ``ReportBatchItemFailures`` on the
    event source mapping. Lambda then checkpoints the shard at the lowest
    reported sequence number and retries from there: the records after a
    failure come back in the retry whatever happened to them. So processing
    stops at the first failure, which is reported; the records after it are
    not processed (they would be processed twice). This differs from
    Powertools' ``BatchProcessor``, which processes every record and reports
    every failure (its result is the same checkpoint, with duplicates).

    Args:
        event: The Lambda event (``{"Records": [...]}``).
        fn: Called with each record; its return value is ignored.

    Returns:
        ``{"batchItemFailures": [{"itemIdentifier": sequenceNumber}]}`` (empty,
        or the first failed record).

    Raises:
        TypeError: ``event`` is not a Kinesis event (nothing was processed, so
            Lambda retries the whole batch and nothing is lost).
        RuntimeError: The failed record had no ``sequenceNumber`` to report;
            the whole batch must be retried. Raised after processing stopped.
    """
    return stream_batch(
        event, fn, consume, _sequence, "aws:kinesis", "Kinesis", "sequenceNumber", log
    )
