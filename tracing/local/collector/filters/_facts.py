"""What the keywords read from a trace (or, inside braces, from one entity)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from tracing.local.collector.service_graph import ServiceMap
from tracing.local.collector.traces import Node, Trace

#: Keywords evaluated locally (``annotation.KEY``, ``service()``, ``edge()`` too).
SUPPORTED = (
    "ok", "error", "fault", "throttle", "partial", "root", "responsetime", "duration",
    "http.status", "http.url", "http.method", "http.useragent", "http.clientip", "user",
    "availabilityzone", "instance.id", "resource.arn", "annotation.KEY", "service()",
    "edge()", "id()",
)  # fmt: skip
#: Documented keywords refused locally, with why.
UNSUPPORTED = {
    "rootcause": "root-cause analysis is computed by X-Ray",
    "json": "root-cause analysis is computed by X-Ray",
    "group": "groups are defined in X-Ray",
    "inferred": "inferred segments are drawn by X-Ray",
    "first": "a root-cause entity keyword",
    "last": "a root-cause entity keyword",
    "remote": "a root-cause entity keyword",
    "index": "a root-cause entity keyword",
    "coverage": "a root-cause entity keyword",
    "name": "a root-cause entity keyword",
    "type": "a root-cause entity keyword",
    "message": "a root-cause entity keyword",
}


# -- what keywords read ------------------------------------------------------------


def _http(node: Node | None, part: str, key: str) -> Any:
    block = node.entity.get("http") if node is not None else None
    section = block.get(part) if isinstance(block, dict) else None
    return section.get(key) if isinstance(section, dict) else None


def _ec2(node: Node, key: str) -> Any:
    aws = node.entity.get("aws")
    ec2 = aws.get("ec2") if isinstance(aws, dict) else None
    return ec2.get(key) if isinstance(ec2, dict) else None


def _entity_status(node: Node | None) -> dict[str, bool]:
    if node is None:
        return {"ok": False, "error": False, "fault": False, "throttle": False}
    return {
        "ok": not (node.fault or node.error or node.throttle),
        "error": node.error,
        "fault": node.fault,
        "throttle": node.throttle,
    }


class _Facts:
    """One trace, with what keywords read computed once, when first asked."""

    __slots__ = ("_entities", "_entry", "_entry_done", "_map", "trace")

    def __init__(self, trace: Trace) -> None:
        self.trace = trace
        self._entry: Node | None = None
        self._entry_done = False
        self._entities: list[Node] | None = None
        self._map: _EntityMap | None = None

    @property
    def entry(self) -> Node | None:
        if not self._entry_done:
            roots = self.trace.roots
            self._entry = next(
                (r for r in roots if r.kind == "segment"),
                next((r for r in roots if not r.is_init), roots[0] if roots else None),
            )
            self._entry_done = True
        return self._entry

    @property
    def entities(self) -> list[Node]:
        if self._entities is None:
            found: list[Node] = []
            stack = list(self.trace.roots)
            while stack:
                node = stack.pop()
                found.append(node)
                stack.extend(node.children)
            self._entities = found
        return self._entities

    @property
    def map(self) -> _EntityMap:
        if self._map is None:
            self._map = _EntityMap()
            self._map.add_trace(self.trace)
        return self._map

    # What the trace-level keywords read (the stored index answers the same).

    @property
    def partial(self) -> bool:
        return self.trace.in_progress

    @property
    def duration(self) -> float | None:
        return self.trace.duration if self.trace.roots else None

    def strings(self, name: str) -> list[Any]:
        """The value of a string keyword (``user``...) on every entity."""
        read = _ANY_STRINGS[name]
        return [read(node) for node in self.entities]

    def annotated(self, key: str) -> bool:
        return any(key in node.annotations for node in self.entities)

    def annotation(self, key: str) -> list[Any]:
        """The values of the annotation on the entities carrying it."""
        return [node.annotations[key] for node in self.entities if key in node.annotations]


# (facts) -> value, for the trace level; (node, called by the client) -> value inside braces.
_TraceGet = Callable[[_Facts], Any]
_NodeGet = Callable[[Node, bool], Any]

_BOOLEAN: dict[str, tuple[_TraceGet | None, _NodeGet]] = {
    "ok": (lambda f: _entity_status(f.entry)["ok"], lambda n, r: _entity_status(n)["ok"]),
    "error": (lambda f: _entity_status(f.entry)["error"], lambda n, r: n.error),
    "fault": (lambda f: _entity_status(f.entry)["fault"], lambda n, r: n.fault),
    "throttle": (lambda f: _entity_status(f.entry)["throttle"], lambda n, r: n.throttle),
    "partial": (lambda f: f.partial, lambda n, r: n.in_progress),
    "root": (None, lambda n, r: r),
}
_NUMBER: dict[str, tuple[_TraceGet, _NodeGet]] = {
    "responsetime": (
        lambda f: f.entry.duration if f.entry is not None else None,
        lambda n, r: n.duration,
    ),
    "duration": (lambda f: f.duration, lambda n, r: n.duration),
    "http.status": (
        lambda f: _http(f.entry, "response", "status"),
        lambda n, r: _http(n, "response", "status"),
    ),
}
_ENTRY_STRINGS = {
    "http.url": ("request", "url"),
    "http.method": ("request", "method"),
    "http.useragent": ("request", "user_agent"),
    "http.clientip": ("request", "client_ip"),
}
#: String keywords read on any entity of the trace: (node) -> value.
_ANY_STRINGS: dict[str, Callable[[Node], Any]] = {
    "user": lambda n: n.entity.get("user"),
    "availabilityzone": lambda n: _ec2(n, "availability_zone"),
    "instance.id": lambda n: _ec2(n, "instance_id"),
    "resource.arn": lambda n: n.entity.get("resource_arn"),
}


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _compare(op: str, want: Any) -> Callable[[Any], bool]:
    """A test of one value against the literal (the value's type already checked)."""
    if op == "=":
        return lambda v: v == want
    if op == "!=":
        return lambda v: v != want
    if op == "<":
        return lambda v: v < want
    if op == "<=":
        return lambda v: v <= want
    if op == ">":
        return lambda v: v > want
    if op == ">=":
        return lambda v: v >= want
    if op == "contains":
        return lambda v: want in v
    if op == "beginswith":
        return lambda v: v.startswith(want)
    return lambda v: v.endswith(want)


# -- service map entities ----------------------------------------------------------

_XRAY_TYPES = {
    "function": "AWS::Lambda::Function",
    "queue": "AWS::SQS::Queue",
    "table": "AWS::DynamoDB::Table",
    "bucket": "AWS::S3::Bucket",
    "topic": "AWS::SNS::Topic",
    "stream": "AWS::Kinesis::Stream",
    "table_stream": "AWS::DynamoDBStreams::Stream",
    "bus": "AWS::Events::EventBus",
    "state_machine": "AWS::StepFunctions::StateMachine",
    "client": "client",
    "remote": "remote",
}


def _types(kind: str) -> set[str]:
    """A node's types as ``id(type: ...)`` names them: ours, and X-Ray's."""
    return {kind, _XRAY_TYPES.get(kind, kind)}


class _EntityMap(ServiceMap):
    """The service map of one trace, keeping which entities each node and edge holds."""

    def __init__(self) -> None:
        super().__init__()
        self._held: dict[tuple[str, str], list[tuple[Node, bool]]] = {}
        self._calls: dict[tuple[tuple[str, str], tuple[str, str]], list[tuple[Node, bool]]] = {}

    def call(
        self, source: tuple[str, str], target: tuple[str, str], node: Node, trace: str
    ) -> None:
        super().call(source, target, node, trace)
        root = source == ("client", "client")
        self._calls.setdefault((source, target), []).append((node, root))
        self._hold(target, node, root)

    def _entry(self, node: Node, *args: Any) -> tuple[str, str]:
        key: tuple[str, str] = super()._entry(node, *args)
        self._hold(key, node, False)
        return key

    def _hold(self, key: tuple[str, str], node: Node, root: bool) -> None:
        held = self._held.setdefault(key, [])
        if not any(seen is node for seen, _ in held):
            held.append((node, root))

    def node_type(self, key: tuple[str, str]) -> str:
        node = self.nodes.get(key)
        return node.type if node is not None else key[0]

    def node_types(self, key: tuple[str, str]) -> set[str]:
        return _types(self.node_type(key))

    @property
    def keys(self) -> list[tuple[str, str]]:
        return list(self.nodes)

    def entities(self, key: tuple[str, str]) -> list[tuple[Node, bool]]:
        return self._held.get(key, [])

    def calls_by_edge(
        self,
    ) -> dict[tuple[tuple[str, str], tuple[str, str]], list[tuple[Node, bool]]]:
        return self._calls

    def services(self, ref: _NodeRef) -> Iterator[list[tuple[Node, bool]]]:
        """The entities of each service (not the client) ``ref`` matches."""
        for key in self.keys:
            if key[0] != "client" and ref.matches(key, self.node_types):
                yield self.entities(key)

    def calls(self, source: _NodeRef, target: _NodeRef) -> Iterator[list[tuple[Node, bool]]]:
        """The calls of each edge between services ``source`` and ``target`` match."""
        types = self.node_types
        for (a, b), calls in self._calls.items():
            if source.matches(a, types) and target.matches(b, types):
                yield calls


@dataclass(frozen=True)
class _NodeRef:
    """``"name"`` or ``id(name: ..., type: ...)``; None matches any."""

    name: str | None = None
    type: str | None = None

    def matches(self, key: tuple[str, str], types: Callable[[tuple[str, str]], set[str]]) -> bool:
        if self.name is not None and key[1] != self.name:
            return False
        return self.type is None or self.type in types(key)

    def accepts(self, name: str, kind: str) -> bool:
        """The same test on a stored node: its name and its type (ours)."""
        if self.name is not None and name != self.name:
            return False
        return self.type is None or self.type in _types(kind)
