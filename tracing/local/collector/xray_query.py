"""X-Ray's query API over the local store: what the console and ``aws xray`` read.

``GetTraceSummaries`` (``POST /TraceSummaries``), ``BatchGetTraces``
(``POST /Traces``), ``GetTraceGraph`` (``POST /TraceGraph``), ``GetServiceGraph``
(``POST /ServiceGraph``) and ``PutTraceSegments`` (``POST /TraceSegments``), with
X-Ray's REST-JSON request and response shapes (botocore's service model:
timestamps are epoch seconds, pages follow ``NextToken``), so
``boto3.client("xray", endpoint_url=...)`` and ``aws xray ... --endpoint-url``
read the local daemon's traces unchanged. The collector serves them beside the
sampling calls (``xray_api.py``), on the TCP side of its UDP address.

Summaries come newest first (by the trace's start, then its id); a
``NextToken`` names the last trace of its page, so pages neither repeat nor skip
a trace while more arrive. ``FilterExpression`` is X-Ray's filter language
(:mod:`.filters`). Graphs are the service map's (:mod:`.service_graph`) in X-Ray's
``Services``/``Edges`` shape.
"""

from __future__ import annotations

import base64
import json
import math
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from tracing.local.collector import _index
from tracing.local.collector.filters._stored import StoredFacts
from tracing.local.collector.service_graph import build_map
from tracing.local.collector.store import TraceStore
from tracing.local.collector.traces import Trace, assemble
from tracing.local.collector.xray_shapes import services

__all__ = ["MAX_BATCH_TRACES", "QueryAPI"]

#: Trace ids per ``BatchGetTraces`` call, as X-Ray allows.
MAX_BATCH_TRACES = 5
#: Trace ids per ``GetTraceGraph`` call.
MAX_GRAPH_TRACES = 100
#: Traces one page of summaries (or one service graph) reads at most.
MAX_SCAN = 10_000
#: Seconds of work after which a page of summaries ends early, with a
#: ``NextToken`` (X-Ray's pages may hold fewer summaries too): a filter matching
#: few of many traces answers page by page rather than all at once.
PAGE_BUDGET_S = 1.0
_CANDIDATE_CHUNK = 500


class QueryError(ValueError):
    """A request X-Ray would refuse: answered with a 400 ``InvalidRequestException``.

    Attributes:
        column: For a bad filter expression, where (1-based); else None.
    """

    def __init__(self, message: str, column: int | None = None) -> None:
        super().__init__(message)
        self.column = column


def _epoch(body: Mapping[str, Any], key: str) -> float:
    value = body.get(key)
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise QueryError(f"{key} must be epoch seconds") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise QueryError(f"{key} is required (epoch seconds)")
    return float(value)


def _trace_ids(body: Mapping[str, Any], most: int) -> list[str]:
    ids = body.get("TraceIds")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise QueryError("TraceIds must be a list of trace ids")
    if len(ids) > most:
        raise QueryError(f"TraceIds: at most {most} trace ids per call")
    return list(dict.fromkeys(ids))


def _token(key: tuple[float, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode()


def _untoken(token: Any) -> tuple[float, str] | None:
    if token is None or token == "":
        return None
    try:
        start, trace_id = json.loads(base64.urlsafe_b64decode(str(token).encode()))
        if isinstance(start, (int, float)) and isinstance(trace_id, str):
            return float(start), trace_id
    except (ValueError, TypeError):
        pass
    raise QueryError("NextToken is not one this server gave")


def _parse_filter(text: Any) -> Any:
    """The parsed filter, or None for no filter (:mod:`.filters`, imported lazily)."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    if not isinstance(text, str):
        raise QueryError("FilterExpression must be a string")
    from tracing.local.collector import filters

    try:
        return filters.parse(text)
    except filters.FilterError as exc:
        message = f"Invalid filter expression at column {exc.column}: {exc.reason}"
        raise QueryError(message, exc.column) from None


class QueryAPI:
    """Answers X-Ray's query calls from a :class:`TraceStore`.

    Args:
        store: Where the collector stores documents.
        put: Takes ``(document, text)`` pairs from ``PutTraceSegments``: the
            collector stores them as it stores UDP documents. None: a reader
            (``tracing ui``, a benchmark), which offers no ``PutTraceSegments``.
        page_size: Trace summaries per page.
        budget_s: Seconds of work after which a page ends early (see
            :data:`PAGE_BUDGET_S`).
    """

    def __init__(
        self,
        store: TraceStore,
        put: Callable[[list[tuple[dict[str, Any], str]]], None] | None = None,
        page_size: int = 100,
        budget_s: float = PAGE_BUDGET_S,
    ) -> None:
        self.store = store
        self.budget_s = budget_s
        self._put = put
        self.page_size = max(1, page_size)

    def operations(self) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
        """HTTP path -> operation, as X-Ray's REST-JSON protocol routes them."""
        operations: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "/TraceSummaries": self.get_trace_summaries,
            "/Traces": self.batch_get_traces,
            "/TraceGraph": self.get_trace_graph,
            "/ServiceGraph": self.get_service_graph,
        }
        if self._put is not None:
            operations["/TraceSegments"] = self.put_trace_segments
        return operations

    # -- reading the store ---------------------------------------------------------

    def _candidates(
        self, start: float, end: float, kind: str, after: tuple[float, str] | None, limit: int
    ) -> list[tuple[Any, ...]]:
        """Traces in the time range, newest first: ``(trace start, trace id, stale, *FACTS)``.

        ``trace start`` is the earliest start of its documents (0 if none has one),
        read from the store's per-trace index (:mod:`._index`), with the facts
        a filter reads (``stale`` when documents arrived since they were computed).
        """
        columns = f"order_start, trace_id, indexed != revision, {_index.FACTS}"
        conditions: list[str] = []
        args: list[Any] = []
        if kind == "TraceId":
            # Trace ids begin with 8 lowercase hex digits of epoch seconds: a range
            # of ids is a range of strings.
            low, high = max(0, math.floor(start)), max(0, math.floor(end)) + 1
            conditions.append("trace_id >= ? AND trace_id < ?")
            # ("1-g" sorts after every hex digit: no upper bound past 2106.)
            args += [
                f"1-{min(low, 0xFFFFFFFF):08x}",
                f"1-{high:08x}" if high <= 0xFFFFFFFF else "1-g",
            ]
        elif kind == "Service":
            return self._service_candidates(start, end, after, limit, columns)
        else:  # Event: the trace's time overlaps the range
            conditions.append("min_start <= ? AND max_last >= ?")
            args += [end, start]
        if after is not None:
            conditions.append("(order_start, trace_id) < (?, ?)")
            args += list(after)
        sql = (
            f"SELECT {columns} FROM trace_index WHERE {' AND '.join(conditions)}"
            " ORDER BY order_start DESC, trace_id DESC LIMIT ?"
        )
        # NOTE: TraceStore has no time-range query of its own; this reads its
        # tables through its connection and lock, bound parameters only.
        with self.store._lock:
            return self.store._connection().execute(sql, [*args, limit]).fetchall()

    def _service_candidates(
        self, start: float, end: float, after: tuple[float, str] | None, limit: int, columns: str
    ) -> list[tuple[Any, ...]]:
        """Traces with a document ending in the range (ordered by those documents' start)."""
        having = ""
        args: list[Any] = [start, end]
        if after is not None:
            having = "HAVING (COALESCE(MIN(start_time), 0), trace_id) < (?, ?)"
            args = [*args, *after]
        sql = (
            "SELECT COALESCE(MIN(start_time), 0), trace_id FROM documents"
            f" WHERE end_time >= ? AND end_time <= ? GROUP BY trace_id {having}"
            " ORDER BY 1 DESC, 2 DESC LIMIT ?"
        )
        with self.store._lock:
            conn = self.store._connection()
            keys = conn.execute(sql, [*args, limit]).fetchall()
            marks = ",".join("?" * len(keys))
            rows = {
                row[1]: row
                for row in conn.execute(
                    f"SELECT {columns} FROM trace_index WHERE trace_id IN ({marks})",
                    [trace_id for _, trace_id in keys],
                )
            }
        return [(order, trace_id, *rows[trace_id][2:]) for order, trace_id in keys]

    def _fresh(self, chunk: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """The chunk with the stale traces' facts computed now (and stored)."""
        stale = [row[1] for row in chunk if row[2]]
        if not stale:
            return chunk
        self.store.refresh_index(stale)
        marks = ",".join("?" * len(stale))
        with self.store._lock:
            fresh = {
                row[1]: row
                for row in self.store._connection().execute(
                    f"SELECT order_start, trace_id, 0, {_index.FACTS} FROM trace_index"
                    f" WHERE trace_id IN ({marks})",
                    stale,
                )
            }
        return [(*row[:2], *fresh[row[1]][2:]) if row[2] else row for row in chunk]

    def _summaries(self, trace_ids: list[str]) -> list[dict[str, Any]]:
        """The stored ``TraceSummary`` of each trace, in order."""
        if not trace_ids:
            return []
        marks = ",".join("?" * len(trace_ids))
        with self.store._lock:
            found = dict(
                self.store._connection()
                .execute(
                    f"SELECT trace_id, summary FROM trace_index WHERE trace_id IN ({marks})",
                    trace_ids,
                )
                .fetchall()
            )
        return [json.loads(found[trace_id]) for trace_id in trace_ids if found.get(trace_id)]

    def _documents(self, trace_id: str) -> list[dict[str, Any]]:
        return self.store.documents(trace_id)

    def _traces_in(self, start: float, end: float) -> Iterable[Trace]:
        after = None
        for _ in range(0, MAX_SCAN, _CANDIDATE_CHUNK):
            chunk = self._candidates(start, end, "Event", after, _CANDIDATE_CHUNK)
            for row in chunk:
                yield assemble(self._documents(row[1]))
            if len(chunk) < _CANDIDATE_CHUNK:
                return
            after = (chunk[-1][0], chunk[-1][1])

    # -- operations ----------------------------------------------------------------

    def get_trace_summaries(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``GetTraceSummaries``: one page of summaries of the traces in the range."""
        start, end = _epoch(body, "StartTime"), _epoch(body, "EndTime")
        if end < start:
            raise QueryError("EndTime is before StartTime")
        kind = body.get("TimeRangeType") or "Event"
        if kind not in ("TraceId", "Event", "Service"):
            raise QueryError("TimeRangeType must be TraceId, Event or Service")
        matcher = _parse_filter(body.get("FilterExpression"))
        after = _untoken(body.get("NextToken"))
        matched: list[str] = []
        processed = 0
        exhausted = False
        deadline = time.monotonic() + self.budget_s
        while (
            len(matched) < self.page_size
            and processed < MAX_SCAN
            and (processed == 0 or time.monotonic() < deadline)
        ):
            limit = min(_CANDIDATE_CHUNK, MAX_SCAN - processed)
            chunk = self._candidates(start, end, kind, after, limit)
            last = (chunk[-1][0], chunk[-1][1]) if chunk else None
            # The facts are the index's: only stale traces are assembled (and
            # their facts stored); summaries are read for the matches only.
            for row in self._fresh(chunk):
                after = (row[0], row[1])
                processed += 1
                if row[3] and (matcher is None or matcher.matches_stored(StoredFacts(*row[4:]))):
                    matched.append(row[1])
                if len(matched) >= self.page_size or time.monotonic() >= deadline:
                    break
            if len(chunk) < limit and (not chunk or after == last):
                exhausted = True
                break
        summaries = self._summaries(matched)
        token = None
        if not exhausted and after is not None and self._candidates(start, end, kind, after, 1):
            token = _token(after)
        answer: dict[str, Any] = {
            "TraceSummaries": summaries,
            "ApproximateTime": time.time(),
            "TracesProcessedCount": processed,
        }
        if token is not None:
            answer["NextToken"] = token
        return answer

    def batch_get_traces(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``BatchGetTraces``: the stored documents of up to five traces."""
        traces, missing = [], []
        for trace_id in _trace_ids(body, MAX_BATCH_TRACES):
            documents = self._documents(trace_id)
            if not documents:
                missing.append(trace_id)
                continue
            trace = assemble(documents)
            traces.append(
                {
                    "Id": trace_id,
                    "Duration": trace.duration,
                    "LimitExceeded": False,
                    "Segments": [
                        {"Id": document["id"], "Document": json.dumps(document)}
                        for document in _latest(documents)
                    ],
                }
            )
        return {"Traces": traces, "UnprocessedTraceIds": missing}

    def get_trace_graph(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``GetTraceGraph``: the service graph of the given traces."""
        traces = [
            assemble(documents)
            for trace_id in _trace_ids(body, MAX_GRAPH_TRACES)
            if (documents := self._documents(trace_id))
        ]
        if not traces:
            return {"Services": []}
        start = min(trace.start for trace in traces)
        end = max(trace.end for trace in traces)
        return {"Services": services(build_map(traces), start, end)}

    def get_service_graph(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``GetServiceGraph``: the service graph of every trace in the range."""
        start, end = _epoch(body, "StartTime"), _epoch(body, "EndTime")
        if end < start:
            raise QueryError("EndTime is before StartTime")
        service_map = build_map(self._traces_in(start, end))
        return {
            "StartTime": start,
            "EndTime": end,
            "Services": services(service_map, start, end),
            "ContainsOldGroupVersions": False,
        }

    def put_trace_segments(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``PutTraceSegments``: valid documents are stored as UDP documents are."""
        texts = body.get("TraceSegmentDocuments")
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise QueryError("TraceSegmentDocuments must be a list of JSON strings")
        accepted, unprocessed = [], []
        for text in texts:
            try:
                document = json.loads(text)
            except (ValueError, RecursionError):
                document = None
            if (
                isinstance(document, dict)
                and isinstance(document.get("trace_id"), str)
                and isinstance(document.get("id"), str)
            ):
                accepted.append((document, text.strip()))
                continue
            entity = document.get("id") if isinstance(document, dict) else None
            unprocessed.append(
                {
                    "Id": entity if isinstance(entity, str) else "",
                    "ErrorCode": "InvalidSegment",
                    "Message": "not a segment document: a JSON object with trace_id and id",
                }
            )
        if accepted:
            if self._put is None:
                raise QueryError("this server only reads: PutTraceSegments goes to tracing daemon")
            self._put(accepted)
        return {"UnprocessedTraceSegments": unprocessed}


def _latest(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One document per entity id: the complete one over one in progress, else the later."""
    chosen: dict[str, dict[str, Any]] = {}
    for document in documents:
        earlier = chosen.get(document["id"])
        if earlier is None or "end_time" in document or "end_time" not in earlier:
            chosen[document["id"]] = document
    return list(chosen.values())
