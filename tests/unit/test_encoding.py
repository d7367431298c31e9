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
def trees(draw: st.DrawFn, depth: int = 0) -> Span:
    span = Span(draw(st.text(min_size=1, max_size=12)))
    for key, value in draw(st.lists(st.tuples(st.text(max_size=6), _values), max_size=3)):
        span.annotate(key, value)
        span.put_metadata(key, value, draw(st.sampled_from(["default", "orders"])))
    if draw(st.booleans()):
        span.finish()
    span.fault = draw(st.booleans())
    span.error = draw(st.booleans())
    if draw(st.booleans()):
        span.namespace = "aws"
        span.aws = {"operation": "GetItem", "table_name": draw(st.text(max_size=8))}
        span.http = {"response": {"status": draw(st.integers(200, 599))}}
    if draw(st.booleans()):
        try:
            raise ValueError(draw(st.text(max_size=20)))
        except ValueError as exc:
            span.record_exception(exc)
    if depth < 3:
        for child in draw(st.lists(trees(depth + 1), max_size=3)):
            span.add_child(child)
    return span


@settings(max_examples=300, deadline=None)
@given(trees(), st.booleans())
def test_the_fast_writer_matches_the_dict_path(root: Span, segment: bool) -> None:
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
