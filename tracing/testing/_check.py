"""``check_document``: what X-Ray would reject in a segment document.

The rules are those of AWS's published JSON schema for segment documents
(``xray-segmentdocument-schema-v1.0.0``, draft-04) and of the segment-document
page of the X-Ray developer guide, taking the stricter of the two where they
differ:

* the document is strict JSON: no ``NaN``/``Infinity``, no number beyond a
  float64, object keys are strings; it fits the daemon's 64 KB datagram;
* ``trace_id`` is ``1-<8 hex>-<24 hex>``, not older than 30 days nor more than
  5 minutes ahead; ``id`` and ``parent_id`` are 16 hex digits; an independent
  subsegment (``type: "subsegment"``) has a ``parent_id``;
* every entity has a name of 1-200 characters from the schema's alphabet
  (letters and numbers of the Basic Multilingual Plane, space separators, and
  ``_ . : / % & # = + - @``: no tabs, newlines or backslashes), an ``id``, a
  numeric ``start_time``, and exactly one of ``end_time`` (not before the start)
  and ``in_progress: true``;
* annotations: keys ``[A-Za-z0-9_]{1,500}``, values string (at most 1,000
  characters), number or boolean, 50 at most;
* metadata: an object of namespaces, each an object, none starting ``AWS.``;
* ``cause``: a 16-character exception id, or an object whose ``exceptions``
  each have a 16-character ``id``, string ``message``/``type``/``cause``,
  boolean ``remote``, integer ``truncated``/``skipped`` and ``stack`` frames of
  string ``path``/``label`` and integer ``line``;
* ``fault``/``error``/``throttle``/``in_progress`` booleans, ``namespace``
  ``aws``/``remote``/``local``, ``http`` and ``aws`` objects, ``user`` a string
  of at most 250 characters, ``precursor_ids`` strings.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

from ..exporters.xray_udp import HEADER, MAX_DATAGRAM

__all__ = ["check_document", "iter_entities"]

_HEX = frozenset("0123456789abcdef")
_KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_NAME_ASCII = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 _.:/%&#=+-@"
)
_NOT_SEPARATORS = frozenset("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f\x85")
_THIRTY_DAYS = 30 * 24 * 3600
_SKEW = 5 * 60
_FLOAT_MAX = 1.7976931348623157e308
_BOOLEANS = ("fault", "error", "throttle", "in_progress", "traced")
_NAMESPACES = frozenset({"aws", "remote", "local"})


def iter_entities(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The document and all its nested subsegments, depth first (iterative)."""
    out: list[dict[str, Any]] = []
    stack = [document]
    while stack:
        entity = stack.pop()
        out.append(entity)
        children = entity.get("subsegments")
        if isinstance(children, list):
            stack.extend(reversed([c for c in children if isinstance(c, dict)]))
    return out


def _is_id(value: object) -> bool:
    return isinstance(value, str) and len(value) == 16 and _HEX.issuperset(value)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _name_problem(name: object) -> str | None:
    if not isinstance(name, str) or not 0 < len(name) <= 200:
        return "name must be a string of 1-200 characters"
    for char in name:
        if char in _NAME_ASCII:
            continue
        if ord(char) <= 0xFFFF and (
            char.isalpha()
            or char.isnumeric()
            or char in "\u2028\u2029"
            or (char.isspace() and char not in _NOT_SEPARATORS)
        ):
            continue
        return f"name has a character X-Ray refuses: {char!r}"
    return None


def _json_problems(value: Any, where: str, problems: list[str]) -> None:
    """Non-finite or out-of-range numbers and non-string keys, anywhere (iterative)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                problems.append(f"{where}: {item!r} is not JSON")
        elif isinstance(item, int) and not isinstance(item, bool):
            if abs(item) > _FLOAT_MAX:
                problems.append(f"{where}: the number {item} is beyond a float64")
        elif isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    problems.append(f"{where}: object key {key!r} is not a string")
                stack.append(child)
        elif isinstance(item, (list, tuple)):
            stack.extend(item)


def _check_cause(cause: Any, where: str, problems: list[str]) -> None:
    if isinstance(cause, str):
        if len(cause) != 16:
            problems.append(f"{where}: a cause id must be 16 characters")
        return
    if not isinstance(cause, dict):
        problems.append(f"{where}: cause must be an exception id or an object")
        return
    if "working_directory" in cause and not isinstance(cause["working_directory"], str):
        problems.append(f"{where}: cause.working_directory must be a string")
    paths = cause.get("paths", [])
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        problems.append(f"{where}: cause.paths must be strings")
    exceptions = cause.get("exceptions", [])
    if not isinstance(exceptions, list):
        problems.append(f"{where}: cause.exceptions must be a list")
        return
    for exception in exceptions:
        if not isinstance(exception, dict):
            problems.append(f"{where}: an exception must be an object")
            continue
        if not isinstance(exception.get("id"), str) or len(exception["id"]) != 16:
            problems.append(f"{where}: an exception needs a 16-character id")
        for key in ("message", "type", "cause"):
            if key in exception and not isinstance(exception[key], str):
                problems.append(f"{where}: exception.{key} must be a string")
        if "remote" in exception and not isinstance(exception["remote"], bool):
            problems.append(f"{where}: exception.remote must be a boolean")
        for key in ("truncated", "skipped"):
            if key in exception and not (
                isinstance(exception[key], int) and not isinstance(exception[key], bool)
            ):
                problems.append(f"{where}: exception.{key} must be an integer")
        stack = exception.get("stack", [])
        if not isinstance(stack, list):
            problems.append(f"{where}: exception.stack must be a list")
            continue
        for frame in stack:
            if not isinstance(frame, dict):
                problems.append(f"{where}: a stack frame must be an object")
                continue
            for key in ("path", "label"):
                if key in frame and not isinstance(frame[key], str):
                    problems.append(f"{where}: stack frame {key} must be a string")
            line = frame.get("line", 0)
            if not isinstance(line, int) or isinstance(line, bool):
                problems.append(f"{where}: stack frame line must be an integer")


def _check_values(entity: dict[str, Any], where: str, problems: list[str]) -> None:
    annotations = entity.get("annotations")
    if annotations is not None:
        if not isinstance(annotations, dict):
            problems.append(f"{where}: annotations must be an object")
        else:
            if len(annotations) > 50:
                problems.append(f"{where}: more than 50 annotations")
            for key, value in annotations.items():
                valid = isinstance(key, str) and 0 < len(key) <= 500
                if not (valid and _KEY_CHARS.issuperset(key)):
                    problems.append(f"{where}: annotation key {key!r}")
                if isinstance(value, str):
                    if len(value) > 1000:
                        problems.append(f"{where}: annotation {key!r} is over 1000 characters")
                elif not isinstance(value, (bool, int, float)):
                    problems.append(f"{where}: annotation {key!r} has type {type(value).__name__}")
    metadata = entity.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            problems.append(f"{where}: metadata must be an object")
        else:
            for namespace, values in metadata.items():
                if isinstance(namespace, str) and namespace.startswith("AWS."):
                    problems.append(f"{where}: reserved metadata namespace {namespace!r}")
                if not isinstance(values, dict):
                    problems.append(f"{where}: metadata namespace {namespace!r} must be an object")


def _check_entity(entity: dict[str, Any], problems: list[str]) -> None:
    where = f"entity {entity.get('name')!r}"
    name_problem = _name_problem(entity.get("name"))
    if name_problem:
        problems.append(f"{where}: {name_problem}")
    if not _is_id(entity.get("id")):
        problems.append(f"{where}: bad id {entity.get('id')!r}")
    start = entity.get("start_time")
    if not _is_number(start):
        problems.append(f"{where}: start_time must be a number")
    end = entity.get("end_time")
    has_end = _is_number(end)
    if "end_time" in entity and not has_end:
        problems.append(f"{where}: end_time must be a number")
    if has_end == (entity.get("in_progress") is True):
        problems.append(f"{where}: needs exactly one of end_time or in_progress")
    if isinstance(end, (int, float)) and isinstance(start, (int, float)) and end < start:
        problems.append(f"{where}: ends before it starts")
    for key in _BOOLEANS:
        if key in entity and not isinstance(entity[key], bool):
            problems.append(f"{where}: {key} must be a boolean")
    namespace = entity.get("namespace")
    if namespace is not None and namespace not in _NAMESPACES:
        problems.append(f"{where}: namespace must be aws, remote or local")
    for key in ("http", "aws", "sql", "service"):
        if key in entity and not isinstance(entity[key], dict):
            problems.append(f"{where}: {key} must be an object")
    user = entity.get("user")
    if user is not None and not (isinstance(user, str) and len(user) <= 250):
        problems.append(f"{where}: user must be a string of at most 250 characters")
    precursors = entity.get("precursor_ids")
    if precursors is not None and not (
        isinstance(precursors, list) and all(isinstance(p, str) for p in precursors)
    ):
        problems.append(f"{where}: precursor_ids must be strings")
    if "subsegments" in entity and not isinstance(entity["subsegments"], list):
        problems.append(f"{where}: subsegments must be a list")
    if "cause" in entity:
        _check_cause(entity["cause"], where, problems)
    _check_values(entity, where, problems)


def check_document(document: dict[str, Any], *, now: float | None = None) -> list[str]:
    """Check one top-level document against what X-Ray accepts (see the module doc).

    Returns:
        Human-readable violations; empty when the document is valid.
    """
    candidate: object = document
    if not isinstance(candidate, dict):
        return ["a document must be a JSON object"]
    problems: list[str] = []
    _json_problems(document, "document", problems)
    try:
        body = json.dumps(document, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        problems.append(f"document is not strict JSON: {exc}")
    else:
        if len(HEADER) + len(body) > MAX_DATAGRAM:
            problems.append(f"document is {len(HEADER) + len(body)} bytes, over {MAX_DATAGRAM}")
    trace_id = document.get("trace_id")
    if not (
        isinstance(trace_id, str)
        and len(trace_id) == 35
        and trace_id[:2] == "1-"
        and trace_id[10] == "-"
        and _HEX.issuperset(trace_id[2:10])
        and _HEX.issuperset(trace_id[11:])
    ):
        problems.append(f"bad trace_id {trace_id!r}")
    else:
        age = (now or time.time()) - int(trace_id[2:10], 16)
        if age > _THIRTY_DAYS:
            problems.append("trace_id older than 30 days")
        elif age < -_SKEW:
            problems.append("trace_id more than 5 minutes in the future")
    kind = document.get("type")
    if kind is not None and kind != "subsegment":
        problems.append(f"type must be 'subsegment', not {kind!r}")
    if "parent_id" in document and not _is_id(document["parent_id"]):
        problems.append(f"bad parent_id {document['parent_id']!r}")
    if kind == "subsegment" and "parent_id" not in document:
        problems.append("independent subsegment without a parent_id")
    for entity in iter_entities(document):
        _check_entity(entity, problems)
    return problems
