"""The filter facts of a trace, stored once and read back without assembling it.

:func:`record` reads from an assembled trace everything a compiled expression can
ask (the facts :class:`~._facts._Facts` computes: the entry entity, whether the
trace is partial, its duration, the string keywords' values on every entity, the
annotations, the service map's nodes and edges with the entities each holds)
and writes it as compact JSON texts, kept by the store beside the documents.
:class:`StoredFacts` answers the same questions from those texts, decoding each
part only when the expression asks for it, so the same compiled closures give
the same answers on both.

Only what a keyword reads is kept of an entity: its fault/error/throttle flags,
its duration (None in progress), and of its body the ``http`` request's url,
method, user agent and client ip, the response's status, ``user``,
``resource_arn`` and ``aws.ec2``'s zone and instance id, values as received.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from typing import Any

from tracing.local.collector.filters._facts import _ANY_STRINGS, _Facts, _NodeRef
from tracing.local.collector.traces import Node, Trace

__all__ = ["StoredFacts", "record"]

_REQUEST = ("url", "method", "user_agent", "client_ip")
_EC2 = ("availability_zone", "instance_id")
_FAULT, _ERROR, _THROTTLE, _IN_PROGRESS = 1, 2, 4, 8


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


@functools.lru_cache(maxsize=256)
def _quoted(text: str) -> str:
    """``text`` as the JSON texts hold it (a name, or a key with its ':')."""
    return _dumps(text)


def _subset(entity: dict[str, Any]) -> dict[str, Any]:
    """What keywords read of an entity's body, in the same nesting."""
    out: dict[str, Any] = {}
    http = entity.get("http")
    if isinstance(http, dict):
        kept: dict[str, Any] = {}
        for part, keys in (("request", _REQUEST), ("response", ("status",))):
            section = http.get(part)
            if isinstance(section, dict):
                kept[part] = {key: section[key] for key in keys if key in section}
        out["http"] = kept
    for key in ("user", "resource_arn"):
        if key in entity:
            out[key] = entity[key]
    aws = entity.get("aws")
    ec2 = aws.get("ec2") if isinstance(aws, dict) else None
    if isinstance(ec2, dict):
        out["aws"] = {"ec2": {key: ec2[key] for key in _EC2 if key in ec2}}
    return out


def _slim(node: Node) -> list[Any]:
    flags = (
        (_FAULT if node.fault else 0)
        | (_ERROR if node.error else 0)
        | (_THROTTLE if node.throttle else 0)
        | (_IN_PROGRESS if node.in_progress else 0)
    )
    return [flags, node.duration, _subset(node.entity)]


def _scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float))  # (bool is an int)


def record(trace: Trace) -> tuple[int, float | None, str | None, str, str]:
    """The stored facts of an assembled trace: ``(partial, duration, entry, attrs, map)``."""
    facts = _Facts(trace)
    entry = facts.entry
    strings: dict[str, list[str]] = {}
    annotations: dict[str, list[Any]] = {}
    for node in facts.entities:
        for name, read in _ANY_STRINGS.items():
            value = read(node)
            if isinstance(value, str):
                values = strings.setdefault(name, [])
                if value not in values:
                    values.append(value)
        for key, value in node.annotations.items():
            values = annotations.setdefault(key, [])
            if _scalar(value) and not any(type(v) is type(value) and v == value for v in values):
                values.append(value)
    service_map = facts.map
    keys = service_map.keys
    index = {key: i for i, key in enumerate(keys)}
    # Each entity once ("x"); nodes and edges refer to it by its place, -1 - place
    # when it was called by the client (root).
    held: list[list[Any]] = []
    places: dict[int, int] = {}

    def refs(entities: list[tuple[Node, bool]]) -> list[int]:
        found = []
        for node, root in entities:
            place = places.get(id(node))
            if place is None:
                place = places[id(node)] = len(held)
                held.append(_slim(node))
            found.append(-1 - place if root else place)
        return found

    nodes = [
        [key[0], key[1], service_map.node_type(key), refs(service_map.entities(key))]
        for key in keys
    ]
    edges = [
        [index[a], index[b], refs(calls)] for (a, b), calls in service_map.calls_by_edge().items()
    ]
    return (
        int(trace.in_progress),
        facts.duration,
        None if entry is None else _dumps(_slim(entry)),
        _dumps({"s": strings, "a": annotations}),
        _dumps([nodes, edges, held]),
    )


class _Slim:
    """An entity as keywords inside braces (and the entry's keywords) read it."""

    __slots__ = ("duration", "entity", "error", "fault", "in_progress", "throttle")

    def __init__(self, data: list[Any]) -> None:
        flags = data[0]
        self.fault = bool(flags & _FAULT)
        self.error = bool(flags & _ERROR)
        self.throttle = bool(flags & _THROTTLE)
        self.in_progress = bool(flags & _IN_PROGRESS)
        self.duration: float | None = data[1]
        self.entity: dict[str, Any] = data[2]


class _StoredMap:
    """The service map's nodes and edges of one trace, as :func:`record` kept them."""

    __slots__ = ("_edges", "_held", "_nodes", "_text")

    def __init__(self, text: str) -> None:
        self._text = text
        self._nodes: list[list[Any]] | None = None
        self._edges: list[list[Any]] = []
        self._held: list[Any] = []

    def _decoded(self, ref: _NodeRef) -> list[list[Any]]:
        # NOTE: a node named ``ref.name`` has that name in the JSON text, quoted.
        if ref.name is not None and _quoted(ref.name) not in self._text:
            return []
        if self._nodes is None:
            self._nodes, self._edges, self._held = json.loads(self._text)
        return self._nodes

    def _entities(self, refs: list[int]) -> list[tuple[Any, bool]]:
        held = self._held
        found = []
        for ref in refs:
            place = ref if ref >= 0 else -1 - ref
            item = held[place]
            if not isinstance(item, _Slim):
                item = held[place] = _Slim(item)
            found.append((item, ref < 0))
        return found

    def services(self, ref: _NodeRef) -> Iterator[list[tuple[Any, bool]]]:
        for kind, name, node_type, refs in self._decoded(ref):
            if kind != "client" and ref.accepts(name, node_type):
                yield self._entities(refs)

    def calls(self, source: _NodeRef, target: _NodeRef) -> Iterator[list[tuple[Any, bool]]]:
        if not self._decoded(source) or not self._decoded(target):
            return
        nodes = self._nodes or []
        for a, b, refs in self._edges:
            if source.accepts(nodes[a][1], nodes[a][2]) and target.accepts(
                nodes[b][1], nodes[b][2]
            ):
                yield self._entities(refs)


class StoredFacts:
    """A trace's facts read back from :func:`record`'s texts, each decoded when asked."""

    __slots__ = (
        "_attrs",
        "_attrs_text",
        "_entry",
        "_entry_text",
        "_map_text",
        "duration",
        "partial",
    )

    def __init__(
        self,
        partial: int,
        duration: float | None,
        entry: str | None,
        attrs: str,
        map_text: str,
    ) -> None:
        self._entry_text = entry
        self._entry: _Slim | bool | None = False  # False: not decoded yet
        self.partial = bool(partial)
        self.duration = duration
        self._attrs_text = attrs
        self._attrs: dict[str, Any] | None = None
        self._map_text = map_text

    @property
    def entry(self) -> _Slim | None:
        if self._entry is False:
            text = self._entry_text
            self._entry = None if text is None else _Slim(json.loads(text))
        return self._entry  # type: ignore[return-value]

    @property
    def map(self) -> _StoredMap:
        return _StoredMap(self._map_text)

    def _decoded(self) -> dict[str, Any]:
        if self._attrs is None:
            self._attrs = json.loads(self._attrs_text)
        return self._attrs

    def strings(self, name: str) -> list[Any]:
        values: list[Any] = self._decoded()["s"].get(name, [])
        return values

    def annotated(self, key: str) -> bool:
        # A key the JSON text does not hold (as a key: quoted, then ':') is set nowhere.
        if _quoted(key) + ":" not in self._attrs_text:
            return False
        return key in self._decoded()["a"]

    def annotation(self, key: str) -> list[Any]:
        if _quoted(key) + ":" not in self._attrs_text:
            return []
        values: list[Any] = self._decoded()["a"].get(key, [])
        return values
