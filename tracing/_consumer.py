"""The consumer side of every batch source (SQS, Kinesis, DynamoDB Streams).

One machinery, one small :class:`Source` description per event source: how to
find a record's trace header and id, the name of the per-record subsegment, and
the annotation keys. ``tracing.sqs.consume``, ``tracing.kinesis.consume`` and
``tracing.dynamodb.consume`` are :class:`Consume` with their source.

* A valid, sampled header: a segment named after the service, in the producer's
  trace under the producer's call, spanning the block. Spans and AWS calls made
  inside land under it.
* Inside a Lambda invocation, the invocation also gets a small subsegment per
  record (``SQS message``, ``Kinesis record``...), annotated with the record's id
  and ``LinkedTraceId`` (the producer's trace); the consumer segment is annotated
  with ``LinkedTraceId`` too (the invocation's trace), so either trace leads to
  the other, in X-Ray documents as in OTLP links (OTel messaging conventions).
* No usable header: the block is recorded in the current invocation, or, in a
  worker outside any invocation, in a new trace when the sampling rules say so
  (``_sampling.py``; else nothing is recorded and the new trace is passed on
  with ``Sampled=0``). A header saying ``Sampled=0`` in a worker: nothing
  recorded, and the decision is passed on.
* An exception marks the segment ``fault`` with a ``cause`` and propagates.

Everything read from a record is written by whoever can write to the queue,
stream or table: it is validated, and anything unusable means "no header" (one
debug line), never an exception.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Mapping
from contextvars import Token
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ._header import TraceHeader, new_id, new_trace_id
from ._runtime import Runtime, current_node, get_runtime
from ._scope import STACK, Scope, end_unit
from ._span import CONSUMER, NOOP, NoopSpan, Span, clean_name
from ._values import escape

if TYPE_CHECKING:
    from ._scope import Node

__all__ = ["Consume", "Source", "check_source", "place_after", "run_batch"]

_MAX_ID = 128  # SQS ids are 36 characters, sequence numbers at most 128 digits


class Source:
    """What differs between batch sources; one constant instance per source.

    Attributes:
        extract: ``record -> (header, record id)``; never raises.
        record_span: Name of the per-record subsegment in the invocation.
        id_key: Annotation key of the record id (``MessageId``, ``SequenceNumber``).
        place_key: Annotation key of the queue, stream or table (``Queue``...).
        place: ``eventSourceARN -> name`` (``None`` when it is not one).
        log: The source module's logger.
    """

    __slots__ = ("extract", "id_key", "log", "place", "place_key", "record_span")

    def __init__(
        self,
        extract: Callable[[Any], tuple[TraceHeader | None, str | None]],
        record_span: str,
        id_key: str,
        place_key: str,
        place: Callable[[object], str | None],
        log: logging.Logger,
    ) -> None:
        self.extract = extract
        self.record_span = record_span
        self.id_key = id_key
        self.place_key = place_key
        self.place = place
        self.log = log


def place_after(marker: str, stop: str | None = None) -> Callable[[object], str | None]:
    """An ``eventSourceARN -> name`` reader: the text after ``marker`` (up to ``stop``).

    ``place_after(":")`` reads an SQS queue ARN's last field,
    ``place_after(":stream/")`` a Kinesis stream's name, ``place_after(":table/",
    "/")`` a DynamoDB table's. Cached per ARN: a batch repeats one ARN.
    """

    @functools.lru_cache(maxsize=64)
    def of(arn: str) -> str | None:
        if arn.count(":") < 5:
            return None
        if marker == ":":
            name = arn.rsplit(":", 1)[1]
        else:
            at = arn.find(marker)
            if at < 0:
                return None
            name = arn[at + len(marker) :]
            if stop is not None:
                name = name.split(stop, 1)[0]
        return clean_name(name) if name else None

    def place(arn: object) -> str | None:
        return of(arn) if isinstance(arn, str) and len(arn) <= 256 else None

    return place


class Consume:
    """Record the processing of one record in the producer's trace (see the module)."""

    __slots__ = (
        "_emit",
        "_library",
        "_message",
        "_record",
        "_scope",
        "_segment",
        "_token",
    )

    #: Set by each source's subclass.
    _source: Source

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
                self._source.log.debug("tracing: consume() could not start tracing", exc_info=True)
            except RecursionError:  # at the recursion limit even logging fails
                pass
            return NOOP

    def _enter(self) -> Span:
        runtime = get_runtime()
        if runtime is None or runtime.settings.disabled:
            return NOOP
        message = self._message
        source = self._source
        if type(message) is not dict and not isinstance(message, Mapping):
            source.log.debug("tracing: consume() got a %s, not a record; untraced", type(message))
            return NOOP
        header, message_id = source.extract(message)
        usable = header is not None and header.parent is not None and header.is_sampled
        parent = current_node()
        invocation = parent if parent is not None and parent.recording else None
        parent_scope = invocation.scope if invocation is not None else None
        if parent_scope is None or parent_scope.placeholder:
            invocation = None  # no invocation here (a worker, or consume() at import)
        settings = runtime.settings
        # Only for X-Ray documents: the OTLP writers key a bounded cache of encoded
        # annotation sets by this JSON, which per-record ids would fill with
        # one-off sets (and push out the invocation's, the same every time).
        vouch = not runtime.emitter.otlp
        # Annotation keys here are fixed and valid, and values are validated ids
        # (or capped), so they are set directly rather than through annotate().
        message_id = message_id[:_MAX_ID] if message_id else None
        record: Span = NOOP
        if invocation is not None and parent_scope is not None and parent_scope.admit():
            record = Span(source.record_span, parent_scope)
            invocation.adopt(record)
            notes: dict[str, str | int | float | bool] = {}
            # The annotations' JSON, written here and vouched for (annotate()
            # drops it): a third of what encoding the dict costs per record.
            parts = []
            if message_id:
                notes[source.id_key] = message_id
                parts.append(f'"{source.id_key}":{escape(message_id)}')
            if usable and header is not None:
                notes["LinkedTraceId"] = header.root
                parts.append(f'"LinkedTraceId":"{header.root}"')
            record.annotations = notes
            if vouch:
                record.annotations_json = "{" + ",".join(parts) + "}"
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
            # pass its decision on (Sampled=0) from what this record triggers.
            return self._unrecorded(runtime, header.root, header.parent, _extras(runtime, header))
        elif not runtime.in_lambda and not runtime.sample():
            # No decision came with the message: the sampling rules made one
            # (_sampling.py). Unsampled: a new trace of its own, passed on as
            # Sampled=0, as Lambda does for an unsampled invocation.
            return self._unrecorded(runtime, new_trace_id(), new_id(), ())
        else:
            segment = Span(runtime.service_name)
            segment.kind = CONSUMER
            scope = Scope(
                segment, new_trace_id(), None, segment=True, limit=settings.max_spans_per_invocation
            )
        if scope is not None:
            notes = {}
            parts = []
            if message_id:
                notes[source.id_key] = message_id
                parts.append(f'"{source.id_key}":{escape(message_id)}')
            place = source.place(message.get("eventSourceARN"))
            if place:
                notes[source.place_key] = place
                parts.append(f'"{source.place_key}":{escape(place)}')
            invocation_trace = (
                parent_scope.trace_id if record is not NOOP and parent_scope else None
            )
            if invocation_trace:
                # The way back: the invocation that processed this record, in
                # its own trace (whose record subsegment links here).
                notes["LinkedTraceId"] = invocation_trace
                parts.append(f'"LinkedTraceId":"{invocation_trace}"')
            segment.annotations = notes
            if vouch:
                segment.annotations_json = "{" + ",".join(parts) + "}"
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

    def _unrecorded(
        self, runtime: Runtime, root: str, parent: str, extra: tuple[tuple[str, str], ...]
    ) -> Span:
        """Record nothing, but pass ``root``/``parent`` on with ``Sampled=0``."""
        segment = NoopSpan(runtime.service_name, span_id=parent)
        unsampled = Scope(segment, root, parent, sampled=False)
        unsampled.extra = extra
        self._token = STACK.set((segment,))
        self._library = runtime.backend.enter(segment)
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
                    end_unit()  # ... nor close the late window of the last record
        except RecursionError:
            pass  # at the recursion limit: the record's trace is dropped, not the error
        except Exception:
            try:  # noqa: SIM105 - contextlib.suppress is a Python call, unsafe at the limit
                self._source.log.debug("tracing: consume() could not finish tracing", exc_info=True)
            except RecursionError:
                pass


def _extras(runtime: Runtime, header: TraceHeader) -> tuple[tuple[str, str], ...]:
    """The pass-through keys (``Lineage``...) that calls made for a record carry.

    In Lambda, the *invocation's*: Lambda counts a loop's hops in ``Lineage`` per
    invocation, and a record's own value would rewind (or skip) that count. In
    a worker, the record's own: there is no invocation, and the chain goes on.
    """
    if not runtime.in_lambda:
        return header.extra
    invocation = runtime.invocation
    scope = invocation.scope if invocation is not None else None
    return scope.extra if scope is not None else ()


def run_batch(
    records: list[Any],
    fn: Callable[[Any], Any],
    consume: Callable[[Any], Consume],
    item_id: Callable[[Any], object],
    stop_after: Callable[[Any], bool],
    report_rest: bool,
    label: str,
    log: logging.Logger,
) -> tuple[list[dict[str, str]], int]:
    """Run ``fn(record)`` in ``consume(record)`` for each record; collect failures.

    Args:
        records: The event's records.
        fn: The user's function.
        consume: The source's ``consume``.
        item_id: The record's ``itemIdentifier`` (anything not a non-empty
            ``str`` is unreportable).
        stop_after: Whether a failure of this record stops the batch.
        report_rest: After a stop, report the records not processed as failed
            (SQS FIFO); else report nothing more (streams checkpoint at the
            lowest failed sequence number, so the rest come back anyway).
        label: ``"SQS"``, ``"Kinesis"``... for the log line.
        log: The source's logger.

    Returns:
        ``(batchItemFailures, number of failed records without an id)``.
    """
    failures: list[dict[str, str]] = []
    unreportable = 0
    stop = False
    for record in records:
        if stop and not report_rest:
            break
        identifier = item_id(record)
        if stop:
            failed = True
        else:
            try:
                with consume(record):
                    fn(record)
                failed = False
            except Exception as exc:
                failed = True
                log.warning("tracing: %s record %s failed: %r", label, identifier, exc)
                stop = stop_after(record)
        if failed:
            if isinstance(identifier, str) and identifier:
                failures.append({"itemIdentifier": identifier})
            else:
                unreportable += 1
    return failures, unreportable


def check_source(records: list[Any], expected: str, what: str) -> None:
    """Raise ``TypeError`` when a record says it comes from another source.

    Records without ``eventSource`` (built by hand, in tests) are accepted.
    """
    for record in records:
        source = record.get("eventSource") if isinstance(record, Mapping) else None
        if isinstance(source, str) and source != expected:
            raise TypeError(
                f"process_batch() expects a Lambda {what} event, got a record from {source!r}"
            )


def stream_batch(
    event: Mapping[str, Any],
    fn: Callable[[Any], Any],
    consume: Callable[[Any], Consume],
    sequence: Callable[[Any], object],
    event_source: str,
    what: str,
    sequence_name: str,
    log: logging.Logger,
) -> dict[str, Any]:
    """``process_batch`` of a stream (Kinesis, DynamoDB Streams): see theirs.

    Lambda checkpoints a shard at the lowest reported sequence number, so
    processing stops at the first failure, which is the one reported.

    Raises:
        TypeError: ``event`` is not a ``what`` event (nothing was processed).
        RuntimeError: The failed record had no sequence number to report.
    """
    records = event.get("Records") if isinstance(event, Mapping) else None
    if not isinstance(records, list):
        raise TypeError(f"process_batch() expects a Lambda {what} event with a 'Records' list")
    check_source(records, event_source, what)
    failures, unreportable = run_batch(
        records,
        fn,
        consume,
        item_id=sequence,
        stop_after=lambda record: True,
        report_rest=False,
        label=what,
        log=log,
    )
    if unreportable:
        raise RuntimeError(
            f"a failed {what} record had no {sequence_name} to report; failing the whole "
            "batch so that no record is lost"
        )
    return {"batchItemFailures": failures}
