"""The store's per-trace index: one row per trace, what queries read without assembling.

Every batch of documents the store takes updates, in the same transaction, its
traces' rows: the time range (``min_start``: the earliest document start;
``max_last``: the latest end, or start when in progress; exactly what the
query API selected by grouping the documents) and a ``revision`` bumped per
document. The facts a filter expression reads (:mod:`.filters._stored`) and the
X-Ray ``TraceSummary`` are computed later, from the trace assembled from all its
documents, when the collector's writer is idle or when a query meets the trace
(:meth:`TraceStore.refresh_index`): a trace's row is stale while ``indexed`` is
not its ``revision``, and a document arriving meanwhile keeps it stale, so
documents arriving out of order, or an in-progress document replaced by the
complete one, give the facts of the trace as assembled from all of them.
Ingest pays only the upsert; assembly happens once per trace revision instead
of once per trace per query.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS trace_index (
    trace_id TEXT PRIMARY KEY,
    min_start REAL,
    max_last REAL,
    order_start REAL NOT NULL DEFAULT 0,
    revision INTEGER NOT NULL DEFAULT 0,
    indexed INTEGER NOT NULL DEFAULT -1,
    nodes INTEGER,
    partial INTEGER,
    duration REAL,
    entry TEXT,
    attrs TEXT,
    map TEXT,
    summary TEXT
);
CREATE INDEX IF NOT EXISTS trace_index_order ON trace_index (order_start, trace_id);
CREATE INDEX IF NOT EXISTS trace_index_stale ON trace_index (trace_id) WHERE indexed != revision;
"""

# Nulls as the SQL aggregates treat them: ignored, unless all are null.
_LOW = "min(COALESCE(min_start, excluded.min_start), COALESCE(excluded.min_start, min_start))"
_HIGH = "max(COALESCE(max_last, excluded.max_last), COALESCE(excluded.max_last, max_last))"
UPSERT = (
    "INSERT INTO trace_index (trace_id, min_start, max_last, order_start, revision)"
    " VALUES (?, ?, ?, COALESCE(?, 0), ?)"
    f" ON CONFLICT(trace_id) DO UPDATE SET min_start = {_LOW}, max_last = {_HIGH},"
    f" order_start = COALESCE({_LOW}, 0), revision = revision + excluded.revision"
)
#: For a database written before the index existed: every trace, stale.
BACKFILL = (
    "INSERT OR IGNORE INTO trace_index (trace_id, min_start, max_last, order_start, revision)"
    " SELECT trace_id, MIN(start_time), MAX(COALESCE(end_time, start_time)),"
    " COALESCE(MIN(start_time), 0), COUNT(*) FROM documents GROUP BY trace_id"
)
STALE = "SELECT trace_id FROM trace_index WHERE indexed != revision LIMIT ?"
UPDATE = (
    "UPDATE trace_index SET nodes = ?, partial = ?, duration = ?, entry = ?, attrs = ?,"
    " map = ?, summary = ?, indexed = revision WHERE trace_id = ? AND revision = ?"
)
#: The columns :class:`~.filters._stored.StoredFacts` and the summary are read from.
FACTS = "nodes, partial, duration, entry, attrs, map"


def _real(value: float | None) -> float | None:
    return None if value is None or value != value else value  # NaN is NULL in SQLite


def upserts(rows: Iterable[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """One index upsert per trace of a batch of document rows.

    ``rows`` are the store's document rows: ``(trace_id, entity_id, parent_id,
    name, start_time, end_time, ...)``.
    """
    found: dict[str, list[Any]] = {}
    for row in rows:
        trace_id, start, end = row[0], _real(row[4]), _real(row[5])
        last = end if end is not None else start
        seen = found.get(trace_id)
        if seen is None:
            found[trace_id] = [start, last, 1]
            continue
        if start is not None and (seen[0] is None or start < seen[0]):
            seen[0] = start
        if last is not None and (seen[1] is None or last > seen[1]):
            seen[1] = last
        seen[2] += 1
    return [(trace_id, low, high, low, n) for trace_id, (low, high, n) in found.items()]


def compute(documents: list[dict[str, Any]]) -> tuple[Any, ...]:
    """The index columns of one trace from all its documents (see :data:`UPDATE`)."""
    from tracing.local.collector.filters._stored import record
    from tracing.local.collector.traces import assemble
    from tracing.local.collector.xray_shapes import summary

    trace = assemble(documents)
    if not trace.nodes:
        return (0, 0, None, None, "{}", "{}", None)
    summary_text = json.dumps(summary(trace), separators=(",", ":"))
    return (trace.nodes, *record(trace), summary_text)
