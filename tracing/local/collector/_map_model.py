"""The service map's pieces: nodes, edges and their call statistics.

:class:`~tracing.local.collector.service_graph.ServiceMap` holds them; the
views draw them (``tracing.local.views``). Import them from ``service_graph``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from tracing.local.collector.traces import Node

__all__ = ["MapEdge", "MapNode"]

_TYPE_LABELS = {
    "client": "Client",
    "function": "Lambda function",
    "service": "Service",
    "queue": "SQS queue",
    "table": "DynamoDB table",
    "bucket": "S3 bucket",
    "topic": "SNS topic",
    "stream": "Kinesis stream",
    "table_stream": "DynamoDB stream",
    "bus": "EventBridge event bus",
    "state_machine": "Step Functions state machine",
    "aws": "AWS service",
    "remote": "Remote host",
}
_MAX_TRACES_PER_ITEM = 500  # trace ids listed for one node or edge


@dataclass
class _Stats:
    count: int = 0
    errors: int = 0
    faults: int = 0
    throttles: int = 0
    durations: list[float] = field(default_factory=list)
    traces: list[str] = field(default_factory=list)

    def add(self, node: Node, trace_id: str) -> None:
        self.count += 1
        self.errors += node.error
        self.faults += node.fault
        self.throttles += node.throttle
        if node.duration is not None:
            milliseconds = max(0.0, node.duration) * 1000.0
            if math.isfinite(milliseconds):  # (huge times overflow when scaled)
                self.durations.append(milliseconds)
        self._trace(trace_id)

    def count_only(self, trace_id: str) -> None:
        self.count += 1
        self._trace(trace_id)

    def _trace(self, trace_id: str) -> None:
        if trace_id not in self.traces and len(self.traces) < _MAX_TRACES_PER_ITEM:
            self.traces.append(trace_id)

    @property
    def avg_ms(self) -> float | None:
        return sum(self.durations) / len(self.durations) if self.durations else None

    @property
    def p95_ms(self) -> float | None:
        if not self.durations:
            return None
        ordered = sorted(self.durations)
        return ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]

    def rate(self, which: str) -> float:
        return getattr(self, which) / self.count if self.count else 0.0


@dataclass
class MapNode:
    """A node of the map: ``key`` is ``(type, name)``."""

    key: tuple[str, str]
    stats: _Stats = field(default_factory=_Stats)
    #: A service seen running as a Lambda invocation.
    function: bool = False

    @property
    def type(self) -> str:
        return "function" if self.function else self.key[0]

    @property
    def name(self) -> str:
        return self.key[1]

    @property
    def label(self) -> str:
        return _TYPE_LABELS.get(self.type, self.type)


@dataclass
class MapEdge:
    """Calls from ``source`` to ``target`` (node keys)."""

    source: tuple[str, str]
    target: tuple[str, str]
    stats: _Stats = field(default_factory=_Stats)


def _stats(stats: _Stats) -> dict[str, Any]:
    return {
        "count": stats.count,
        "avg_ms": _round(stats.avg_ms),
        "p95_ms": _round(stats.p95_ms),
        "error_rate": round(stats.rate("errors"), 4),
        "fault_rate": round(stats.rate("faults"), 4),
        "throttle_rate": round(stats.rate("throttles"), 4),
        "traces": list(stats.traces),
    }


def _item(node: MapNode, stats: dict[str, Any]) -> dict[str, Any]:
    return {"type": node.type, "name": node.name, "label": node.label, **stats}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
