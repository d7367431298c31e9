"""Assemble X-Ray segment documents into one trace tree.

The collector stores documents as they arrive: out of order, sometimes twice (an
``in_progress`` version first, the complete one later), and split across documents
(independent subsegments, the deferred ``Init``, consumer segments whose parent is a
``SendMessage`` subsegment in the producer's document). :func:`assemble` joins them
into a single tree the renderers can draw; :func:`summarize` gives one line's worth
for a list of traces. Stdlib only.

Documents come from anyone who can write to the daemon port or to a queue, so
nothing here trusts their shape: non-dicts, missing ids and wrong types are skipped,
and every walk is iterative, so no document depth can exhaust the stack.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Node", "Trace", "TraceSummary", "assemble", "summarize"]

Kind = Literal["segment", "subsegment"]

# NOTE: the names Lambda and our library give to init-phase work: ours is "Init"
# (annotated ColdStart/InitType); Lambda's own function segment has "Initialization".
_INIT_NAMES = frozenset({"Init", "Initialization"})


@dataclass
class Node:
    """One entity (segment or subsegment) of a trace, with its children.

    Every field is independent of where the node ends up in the tree.

    Attributes:
        entity: The entity's own dict, as received (``subsegments`` included).
        name: The entity's name (``"(unnamed)"`` when missing).
        id: The entity's id.
        start: ``start_time``, epoch seconds.
        end: ``end_time``, epoch seconds; None while in progress.
        in_progress: True when no usable ``end_time`` was received.
        fault: ``fault`` is true (a 5xx-like failure).
        error: ``error`` is true (a 4xx-like failure).
        throttle: ``throttle`` is true.
        annotations: The annotations (empty when missing or not a mapping).
        metadata: The metadata namespaces (empty when missing or not a mapping).
        kind: ``"segment"`` for a top-level document without ``type``, else
            ``"subsegment"``.
        document_root: The entity was the top of a document.
        parent_id: The ``parent_id`` the document declared (document roots only).
        orphan: A document root whose declared parent is not in this trace.
        is_init: Init-phase work: our deferred ``Init`` (or Lambda's
            ``Initialization``).
        display_end: Where to draw the end: ``end``, or for work still in
            progress the latest time seen in the trace (open-ended).
        children: Child nodes, sorted by start time.
    """

    entity: dict[str, Any]
    name: str
    id: str
    start: float
    end: float | None
    in_progress: bool
    fault: bool
    error: bool
    throttle: bool
    annotations: dict[str, Any]
    metadata: dict[str, Any]
    kind: Kind
    document_root: bool
    parent_id: str | None = None
    orphan: bool = False
    is_init: bool = False
    display_end: float = 0.0
    children: list[Node] = field(default_factory=list)

    @property
    def duration(self) -> float | None:
        """Seconds from start to end; None while in progress."""
        return None if self.end is None else self.end - self.start

    @property
    def cold_start(self) -> bool:
        """The entity carries the annotation ``ColdStart=true``."""
        return self.annotations.get("ColdStart") is True

    def walk(self) -> Iterator[tuple[int, Node]]:
        """This node and its descendants, depth first, with depth relative to it."""
        stack: list[tuple[int, Node]] = [(0, self)]
        while stack:
            depth, node = stack.pop()
            yield depth, node
            stack.extend((depth + 1, child) for child in reversed(node.children))


@dataclass
class Trace:
    """An assembled trace: its root nodes, sorted by start time.

    Attributes:
        trace_id: The trace id (the one most documents carry).
        roots: Top-level nodes: true roots and orphans, sorted by start.
        start: Earliest start time, epoch seconds (0 for an empty trace).
        end: Latest end (or start) time seen, epoch seconds.
        duration: ``end - start`` in seconds.
        nodes: How many entities the tree holds.
        documents: How many distinct documents were assembled.
    """

    trace_id: str
    roots: list[Node]
    start: float
    end: float
    duration: float
    nodes: int
    documents: int

    def walk(self) -> Iterator[tuple[int, Node]]:
        """Every node, depth first in display order, with its depth (roots are 0)."""
        for root in self.roots:
            yield from root.walk()

    def find(self, entity_id: str) -> Node | None:
        """The node with this id, or None."""
        return next((node for _, node in self.walk() if node.id == entity_id), None)

    def find_all(self, name: str) -> list[Node]:
        """Every node with this name, in display order."""
        return [node for _, node in self.walk() if node.name == name]

    @property
    def fault(self) -> bool:
        """Any entity is marked fault."""
        return any(node.fault for _, node in self.walk())

    @property
    def error(self) -> bool:
        """Any entity is marked error."""
        return any(node.error for _, node in self.walk())

    @property
    def throttle(self) -> bool:
        """Any entity is marked throttle."""
        return any(node.throttle for _, node in self.walk())

    @property
    def cold_start(self) -> bool:
        """Any entity is annotated ``ColdStart=true``."""
        return any(node.cold_start for _, node in self.walk())

    @property
    def in_progress(self) -> bool:
        """Any entity is still in progress."""
        return any(node.in_progress for _, node in self.walk())


@dataclass(frozen=True)
class TraceSummary:
    """One trace at a glance, for listing traces.

    Attributes:
        trace_id: The trace id.
        start: Earliest start time, epoch seconds.
        duration: Seconds from the earliest start to the latest end.
        root_name: The service the trace started in (see :func:`summarize`).
        segments: How many documents the trace is made of.
        fault: Any entity is marked fault.
        error: Any entity is marked error.
        cold_start: Any entity is annotated ``ColdStart=true``.
    """

    trace_id: str
    start: float
    duration: float
    root_name: str
    segments: int
    fault: bool
    error: bool
    cold_start: bool


@dataclass
class _Seen:
    """One occurrence of an entity id while flattening documents."""

    entity: dict[str, Any]
    seq: int
    complete: bool
    nested_in: str | None  # the id of the entity it was nested in
    document_root: bool
    declared_parent: str | None
    kind: Kind


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _valid(entity: Any) -> bool:
    return (
        isinstance(entity, dict)
        and isinstance(entity.get("id"), str)
        and bool(entity["id"])
        and _number(entity.get("start_time")) is not None
    )


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _trace_id_of(documents: list[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for document in documents:
        trace_id = document.get("trace_id")
        if isinstance(trace_id, str):
            counts[trace_id] = counts.get(trace_id, 0) + 1
    # max() keeps the first of equal counts: ties go to the first trace id seen.
    return max(counts, key=lambda t: counts[t]) if counts else ""


def _flatten(documents: list[dict[str, Any]], trace_id: str) -> list[_Seen]:
    seen: list[_Seen] = []
    # NOTE: decoded JSON cannot hold a reference cycle, but a caller's dicts can;
    # visiting each object once keeps the walk finite either way.
    visited: set[int] = set()
    for document in documents:
        if document.get("trace_id") != trace_id or not _valid(document):
            continue
        parent = document.get("parent_id")
        kind: Kind = "subsegment" if document.get("type") == "subsegment" else "segment"
        stack: list[tuple[dict[str, Any], str | None]] = [(document, None)]
        while stack:
            entity, nested_in = stack.pop()
            if id(entity) in visited:
                continue
            visited.add(id(entity))
            is_root = nested_in is None
            seen.append(
                _Seen(
                    entity=entity,
                    seq=len(seen),
                    complete=_number(entity.get("end_time")) is not None,
                    nested_in=nested_in,
                    document_root=is_root,
                    declared_parent=parent if is_root and isinstance(parent, str) else None,
                    kind=kind if is_root else "subsegment",
                )
            )
            children = entity.get("subsegments")
            if isinstance(children, list):
                stack.extend((child, entity["id"]) for child in reversed(children) if _valid(child))
    return seen


def _node(seen: _Seen) -> Node:
    entity = seen.entity
    start = _number(entity["start_time"]) or 0.0
    end = _number(entity.get("end_time"))
    if end is not None:
        end = max(end, start)
    name = entity.get("name")
    name = name if isinstance(name, str) and name else "(unnamed)"
    annotations = _mapping(entity.get("annotations"))
    is_init = name == "Initialization" or (
        name in _INIT_NAMES and (annotations.get("ColdStart") is True or "InitType" in annotations)
    )
    return Node(
        entity=entity,
        name=name,
        id=entity["id"],
        start=start,
        end=end,
        in_progress=end is None,
        fault=entity.get("fault") is True,
        error=entity.get("error") is True,
        throttle=entity.get("throttle") is True,
        annotations=annotations,
        metadata=_mapping(entity.get("metadata")),
        kind=seen.kind,
        document_root=seen.document_root,
        parent_id=seen.declared_parent,
        is_init=is_init,
    )


def _break_cycles(parent_of: dict[str, str | None], cut: set[str]) -> None:
    """Cut parent links so the graph is a forest; the cut nodes become roots."""
    state: dict[str, int] = {}  # absent: unvisited, 1: on the current path, 2: done
    for origin in parent_of:
        path: list[str] = []
        current: str | None = origin
        while current is not None and current not in state:
            state[current] = 1
            path.append(current)
            current = parent_of.get(current)
        if current is not None and state[current] == 1:
            parent_of[current] = None
            cut.add(current)
        for item in path:
            state[item] = 2


def assemble(documents: Iterable[Any]) -> Trace:
    """Join the documents of one trace into a tree.

    * Documents may arrive in any order; the tree is the same.
    * The same id seen twice (a document sent ``in_progress`` and again complete,
      or an entity repeated): the complete one wins over one in progress, and
      otherwise the later one wins.
    * A document with a ``parent_id`` (an independent subsegment, or a segment
      continuing a trace such as an SQS consumer) is attached under that entity
      wherever it is (any document, any depth). When the parent is not in the
      trace, the document is a root marked ``orphan``.
    * Work in progress is drawn open-ended, to the latest time seen.
    * Garbage is skipped, never raised on: non-dicts, entities without a string
      ``id`` or a numeric ``start_time``, documents of another trace id (the trace
      is the id most documents carry).

    Args:
        documents: Top-level X-Ray segment documents, as decoded from JSON.

    Returns:
        The assembled trace (empty when no document was usable).
    """
    docs = [document for document in documents if isinstance(document, dict)]
    trace_id = _trace_id_of(docs)
    winners: dict[str, _Seen] = {}
    for seen in _flatten(docs, trace_id):
        best = winners.get(seen.entity["id"])
        if best is None or seen.complete >= best.complete:
            winners[seen.entity["id"]] = seen
    nodes = {entity_id: _node(seen) for entity_id, seen in winners.items()}

    parent_of: dict[str, str | None] = {}
    orphans: set[str] = set()
    for entity_id, seen in winners.items():
        parent = seen.nested_in if seen.nested_in is not None else seen.declared_parent
        if parent is not None and parent not in nodes:
            orphans.add(entity_id)
            parent = None
        parent_of[entity_id] = parent
    _break_cycles(parent_of, orphans)

    roots: list[Node] = []
    order = {entity_id: seen.seq for entity_id, seen in winners.items()}
    for entity_id in sorted(nodes, key=lambda i: (nodes[i].start, order[i])):
        node = nodes[entity_id]
        node.orphan = entity_id in orphans
        parent = parent_of[entity_id]
        (roots if parent is None else nodes[parent].children).append(node)

    if nodes:
        start = min(node.start for node in nodes.values())
        end = max(node.start if node.end is None else node.end for node in nodes.values())
    else:
        start = end = 0.0
    for node in nodes.values():
        node.display_end = max(end, node.start) if node.end is None else node.end
    return Trace(
        trace_id=trace_id,
        roots=roots,
        start=start,
        end=end,
        duration=end - start,
        nodes=len(nodes),
        documents=sum(1 for node in nodes.values() if node.document_root),
    )


def _root_name(trace: Trace) -> str:
    # NOTE: locally (and for our Init/invocation documents) the Lambda function
    # segment is not among the documents, so the earliest root is often an
    # independent subsegment: the ``Service`` annotation our invocations carry
    # names the service better than "Init" or "## handler" would.
    for root in trace.roots:
        if root.kind == "segment":
            return root.name
    for root in trace.roots:
        service = root.annotations.get("Service")
        if isinstance(service, str) and service:
            return service
    segments = [node for _, node in trace.walk() if node.kind == "segment"]
    if segments:
        return min(segments, key=lambda node: node.start).name
    return trace.roots[0].name if trace.roots else ""


def summarize(documents: Iterable[Any]) -> TraceSummary:
    """Summarize the documents of one trace.

    ``root_name`` is the service the trace started in: the earliest root segment's
    name; else the ``Service`` annotation of the earliest root carrying one (our
    invocation subsegments do); else the earliest segment's name; else the earliest
    root's name.

    Args:
        documents: Top-level X-Ray segment documents of one trace.

    Returns:
        The summary; never raises on garbage documents.
    """
    trace = assemble(documents)
    return TraceSummary(
        trace_id=trace.trace_id,
        start=trace.start,
        duration=trace.duration,
        root_name=_root_name(trace),
        segments=trace.documents,
        fault=trace.fault,
        error=trace.error,
        cold_start=trace.cold_start,
    )
