"""The fast span writer writes exactly what the dict path writes."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracing._encoding import FastPathError, encode, span_json
from tracing._entity import MAX_DEPTH, entity_dict
from tracing._header import new_id, new_trace_id
from tracing._scope import Scope
from tracing._span import Span

_values = st.one_of(
    st.text(max_size=10),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=4), st.floats(allow_nan=True), max_size=3),
)


@st.composite
def trees(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    """A description of a span tree (spans are built in the test: ids use random)."""
    return {
        "name": draw(st.text(min_size=1, max_size=12)),
        "values": draw(st.lists(st.tuples(st.text(max_size=6), _values), max_size=3)),
        "namespace": draw(st.sampled_from(["default", "orders"])),
        "finished": draw(st.booleans()),
        "fault": draw(st.booleans()),
        "error": draw(st.booleans()),
        "aws": draw(st.one_of(st.none(), st.tuples(st.text(max_size=8), st.integers(200, 599)))),
        "exception": draw(st.one_of(st.none(), st.text(max_size=20))),
        "children": draw(st.lists(trees(depth + 1), max_size=3)) if depth < 3 else [],
    }


def _build(tree: dict[str, Any]) -> Span:
    span = Span(tree["name"])
    for key, value in tree["values"]:
        span.annotate(key, value)
        span.put_metadata(key, value, tree["namespace"])
    if tree["finished"]:
        span.finish()
    span.fault, span.error = tree["fault"], tree["error"]
    if tree["aws"] is not None:
        table, status = tree["aws"]
        span.namespace = "aws"
        span.aws = {"operation": "GetItem", "table_name": table}
        span.http = {"response": {"status": status}}
    if tree["exception"] is not None:
        try:
            raise ValueError(tree["exception"])
        except ValueError as exc:
            span.record_exception(exc)
    for child in tree["children"]:
        span.add_child(_build(child))
    return span


@settings(max_examples=300, deadline=None)
@given(trees(), st.booleans())
def test_the_fast_writer_matches_the_dict_path(tree: dict[str, Any], segment: bool) -> None:
    root = _build(tree)
    scope = Scope(root, new_trace_id(), None if segment else new_id(), segment=segment)
    fast = json.loads(scope.encoded())
    slow = json.loads(encode(scope.document()))
    assert fast == slow


def test_trees_at_the_depth_cap_take_the_dict_path() -> None:
    root = node = Span("root")
    for level in range(MAX_DEPTH + 2):
        child = Span(f"level {level}")
        node.add_child(child)
        node = child
    with pytest.raises(FastPathError):
        span_json(root)
    assert entity_dict(root)["subsegments"]  # the dict path flattens instead


def test_invalid_library_values_take_the_dict_path() -> None:
    span = Span("view")
    span.http = {"response": {"status": math.nan}}  # as an SDK view could set it
    with pytest.raises(FastPathError):
        span_json(span)
    assert json.loads(encode(entity_dict(span)))["http"]["response"]["status"] == "NaN"


def test_dropped_spans_take_the_dict_path() -> None:
    scope = Scope(Span("root"), new_trace_id(), new_id(), limit=0)
    assert not scope.admit()
    with pytest.raises(FastPathError):
        scope.encoded()
    document: dict[str, Any] = scope.document()
    assert document["metadata"]["tracing"]["dropped_spans"] == 1
