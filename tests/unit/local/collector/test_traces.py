"""Assembling collected X-Ray documents into one trace tree."""

from __future__ import annotations

import copy
import itertools
import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.local import CONSUMER, FUNCTION_SEGMENT, HANDLER, INIT, SEND, realistic_documents
from tracing import testing
from tracing.local.collector.traces import Node, Trace, assemble, summarize

T0 = 1_790_000_000.0


def shape(trace: Trace) -> list[tuple[int, str, bool, bool]]:
    return [(depth, node.id, node.orphan, node.document_root) for depth, node in trace.walk()]


def test_the_demo_documents_are_valid_x_ray_documents() -> None:
    for document in realistic_documents(messages=2, poison_last=True, function_segment=True):
        assert testing.check_document(document) == []


def test_consumer_segment_nests_under_the_send_message_subsegment() -> None:
    trace = assemble(realistic_documents(T0))

    assert trace.trace_id.startswith("1-")
    assert [root.id for root in trace.roots] == [INIT, HANDLER]
    assert trace.nodes == 9
    assert trace.documents == 3
    assert trace.start == T0
    consumer = trace.find(CONSUMER)
    assert consumer is not None
    send = trace.find(SEND)
    assert send is not None
    assert send.children == [consumer]
    assert consumer.kind == "segment"
    assert consumer.document_root
    assert consumer.parent_id == SEND
    assert not consumer.orphan
    assert [child.name for child in consumer.children] == ["save order"]
    assert trace.end == consumer.end
    assert math.isclose(trace.duration, trace.end - trace.start)
    depths = {node.name: depth for depth, node in trace.walk()}
    assert depths == {
        "Init": 0,
        "load config": 1,
        "ssm": 2,
        "## handler": 0,
        "validate order": 1,
        "sqs": 1,
        "orders-worker": 2,
        "save order": 3,
        "dynamodb": 4,
    }


def test_init_and_cold_start_are_recognised() -> None:
    trace = assemble(realistic_documents(T0))
    init, handler = trace.roots
    assert init.is_init
    assert init.cold_start
    assert init.kind == "subsegment"
    assert not handler.is_init
    assert handler.cold_start
    assert trace.cold_start
    assert [node.name for _, node in trace.walk() if node.is_init] == ["Init"]
    # Lambda's own init subsegment (in its function segment) counts as init too.
    lambda_init = {
        "trace_id": trace.trace_id,
        "id": "1111111111111111",
        "name": "Initialization",
        "start_time": T0,
        "end_time": T0 + 0.1,
    }
    assert assemble([lambda_init]).roots[0].is_init
    # A user's span that happens to be called "Init" is not.
    plain = {**lambda_init, "name": "Init"}
    assert not assemble([plain]).roots[0].is_init


def test_with_lambdas_function_segment_nothing_is_orphaned() -> None:
    trace = assemble(realistic_documents(T0, function_segment=True))
    assert [root.id for root in trace.roots] == [FUNCTION_SEGMENT]
    root = trace.roots[0]
    assert root.kind == "segment"
    assert [child.id for child in root.children] == [INIT, HANDLER]
    assert not any(node.orphan for _, node in trace.walk())
    assert trace.documents == 4


def test_without_it_the_lambda_subsegments_are_orphans_that_keep_their_parent_id() -> None:
    trace = assemble(realistic_documents(T0))
    assert all(root.orphan for root in trace.roots)
    assert {root.parent_id for root in trace.roots} == {FUNCTION_SEGMENT}


def test_every_arrival_order_gives_the_same_tree() -> None:
    documents = realistic_documents(T0, messages=2, function_segment=True)
    expected = shape(assemble(documents))
    assert len(expected) == 14
    for order in itertools.permutations(documents):
        assert shape(assemble(order)) == expected


def test_a_missing_parent_makes_an_orphan_root() -> None:
    documents = realistic_documents(T0)
    consumer = documents[2]
    consumer["parent_id"] = "0123456789abcdef"
    trace = assemble(documents)
    assert [root.id for root in trace.roots] == [INIT, HANDLER, CONSUMER]
    node = trace.roots[2]
    assert node.orphan
    assert node.parent_id == "0123456789abcdef"
    assert not trace.roots[0].children[0].orphan  # nested entities never are


def test_a_segment_without_parent_is_a_root_not_an_orphan() -> None:
    documents = realistic_documents(T0)
    del documents[2]["parent_id"]
    trace = assemble(documents)
    node = trace.find(CONSUMER)
    assert node is not None
    assert node in trace.roots
    assert not node.orphan
    assert node.parent_id is None


def test_in_progress_documents_are_open_ended() -> None:
    documents = realistic_documents(T0)
    handler = documents[1]
    del handler["end_time"]
    handler["in_progress"] = True
    trace = assemble(documents)
    node = trace.find(HANDLER)
    assert node is not None
    assert node.in_progress
    assert node.end is None
    assert node.duration is None
    assert node.display_end == trace.end  # drawn to the latest time seen
    assert trace.in_progress
    complete = trace.find(SEND)
    assert complete is not None
    assert complete.display_end == complete.end

    alone = assemble([{**handler, "subsegments": []}])
    assert alone.roots[0].display_end == handler["start_time"]
    assert alone.duration == 0


def test_end_before_start_is_clamped() -> None:
    document = {"trace_id": "1-x", "id": "a", "start_time": T0, "end_time": T0 - 5}
    node = assemble([document]).roots[0]
    assert node.end == T0
    assert node.duration == 0


def test_a_complete_duplicate_wins_over_in_progress_in_either_order() -> None:
    documents = realistic_documents(T0)
    partial = copy.deepcopy(documents[1])
    del partial["end_time"]
    partial["in_progress"] = True
    partial["subsegments"] = partial["subsegments"][:1]
    for order in ([partial, *documents], [*documents, partial]):
        trace = assemble(order)
        node = trace.find(HANDLER)
        assert node is not None
        assert not node.in_progress
        assert node.end == documents[1]["end_time"]
        assert trace.nodes == 9
        assert trace.documents == 3
        assert [name for _, n in trace.walk() for name in [n.name] if name == "## handler"] == [
            "## handler"
        ]


def test_of_two_complete_duplicates_the_later_wins() -> None:
    first = {"trace_id": "1-x", "id": "a", "name": "first", "start_time": T0, "end_time": T0 + 1}
    second = {**first, "name": "second"}
    assert assemble([first, second]).roots[0].name == "second"
    assert assemble([second, first]).roots[0].name == "first"
    assert assemble([first, first]).nodes == 1


def test_an_independent_subsegment_may_also_have_been_sent_nested() -> None:
    # The same subsegment, sent nested in progress and later on its own, complete.
    parent = {
        "trace_id": "1-x",
        "id": "p",
        "name": "parent",
        "start_time": T0,
        "end_time": T0 + 1,
        "subsegments": [{"id": "c", "name": "child", "start_time": T0, "in_progress": True}],
    }
    child = {
        "trace_id": "1-x",
        "type": "subsegment",
        "parent_id": "p",
        "id": "c",
        "name": "child",
        "start_time": T0,
        "end_time": T0 + 0.5,
    }
    for order in ([parent, child], [child, parent]):
        trace = assemble(order)
        assert trace.nodes == 2
        (root,) = trace.roots
        (node,) = root.children
        assert node.end == T0 + 0.5
        assert node.document_root


GARBAGE: list[Any] = [
    None,
    1,
    "a string",
    [],
    {},
    {"id": 5, "trace_id": "1-x", "start_time": T0},
    {"id": "", "trace_id": "1-x", "start_time": T0},
    {"id": "no-start", "trace_id": "1-x"},
    {"id": "bool-start", "trace_id": "1-x", "start_time": True},
    {"id": "text-start", "trace_id": "1-x", "start_time": "yesterday"},
    {"id": "nan-start", "trace_id": "1-x", "start_time": math.nan},
    {"id": "inf-start", "trace_id": "1-x", "start_time": math.inf},
    {"id": "no-trace-id", "start_time": T0},
    {"id": "int-trace-id", "trace_id": 7, "start_time": T0},
]


def test_garbage_documents_are_skipped() -> None:
    documents = realistic_documents(T0)
    trace_id = documents[0]["trace_id"]
    for index, junk in enumerate(GARBAGE):
        if isinstance(junk, dict) and junk.get("trace_id") == "1-x":
            junk = {**junk, "trace_id": trace_id}
        documents.insert(index % 4, junk)
    assert shape(assemble(documents)) == shape(assemble(realistic_documents(T0)))


def test_garbage_inside_documents_is_tolerated() -> None:
    document: dict[str, Any] = {
        "trace_id": "1-x",
        "id": "root",
        "name": ["not", "a", "string"],
        "start_time": 1,  # an int is a number too
        "end_time": "later",
        "fault": "yes",
        "error": 1,
        "annotations": ["not", "a", "dict"],
        "metadata": "nope",
        "subsegments": [None, 3, {"name": "no id"}, {"id": "ok", "start_time": 2, "end_time": 3}],
    }
    trace = assemble([document])
    (root,) = trace.roots
    assert root.name == "(unnamed)"
    assert root.in_progress
    assert not root.fault
    assert not root.error
    assert root.annotations == {}
    assert root.metadata == {}
    assert [child.id for child in root.children] == ["ok"]
    assert assemble([{**document, "subsegments": "not a list"}]).nodes == 1


def test_the_trace_is_the_id_most_documents_carry() -> None:
    documents = realistic_documents(T0)
    stray = {**documents[0], "trace_id": "1-00000000-000000000000000000000000", "id": "stray"}
    trace = assemble([stray, *documents])
    assert trace.trace_id == documents[0]["trace_id"]
    assert trace.find("stray") is None


def test_parent_cycles_and_self_parents_do_not_hang() -> None:
    a = {"trace_id": "1-x", "id": "a", "parent_id": "b", "start_time": T0, "end_time": T0 + 1}
    b = {"trace_id": "1-x", "id": "b", "parent_id": "a", "start_time": T0 + 0.1, "end_time": T0}
    me = {"trace_id": "1-x", "id": "me", "parent_id": "me", "start_time": T0, "end_time": T0}
    trace = assemble([a, b, me])
    assert sorted(node.id for _, node in trace.walk()) == ["a", "b", "me"]
    assert all(root.orphan for root in trace.roots)
    # A document whose declared parent is nested inside itself.
    outer = {
        "trace_id": "1-x",
        "id": "outer",
        "parent_id": "inner",
        "start_time": T0,
        "end_time": T0 + 1,
        "subsegments": [{"id": "inner", "start_time": T0, "end_time": T0 + 1}],
    }
    assert [node.id for _, node in assemble([outer]).walk()] == ["outer", "inner"]


def test_reference_cycles_in_python_dicts_do_not_hang() -> None:
    document: dict[str, Any] = {"trace_id": "1-x", "id": "a", "start_time": T0, "end_time": T0}
    document["subsegments"] = [document]
    assert assemble([document]).nodes == 1


def test_deep_nesting_does_not_exhaust_the_stack() -> None:
    depth = 5000
    leaf: dict[str, Any] = {"id": f"{depth:016x}", "start_time": T0, "end_time": T0 + 1}
    for level in range(depth - 1, -1, -1):
        leaf = {"id": f"{level:016x}", "start_time": T0, "end_time": T0 + 1, "subsegments": [leaf]}
    leaf["trace_id"] = "1-x"
    trace = assemble([leaf])
    assert trace.nodes == depth + 1
    assert max(d for d, _ in trace.walk()) == depth
    chain = [
        {"trace_id": "1-x", "id": f"c{i}", "parent_id": f"c{i - 1}", "start_time": T0 + i}
        for i in range(1, depth)
    ]
    assert max(d for d, _ in assemble(chain[::-1]).walk()) == depth - 2


def test_empty_input() -> None:
    trace = assemble([])
    assert trace == Trace(
        trace_id="", roots=[], start=0.0, end=0.0, duration=0.0, nodes=0, documents=0
    )
    assert assemble(iter([None, "x"])).nodes == 0
    summary = summarize([])
    assert summary.root_name == ""
    assert summary.segments == 0


def test_summary_of_a_demo_trace() -> None:
    documents = realistic_documents(T0, messages=2)
    summary = summarize(documents)
    assert summary.trace_id == documents[0]["trace_id"]
    assert summary.start == T0
    assert summary.duration == assemble(documents).duration
    assert summary.root_name == "orders-api"  # the invocation's Service annotation
    assert summary.segments == 4
    assert summary.cold_start
    assert not summary.fault
    assert not summary.error
    assert summarize(realistic_documents(T0, poison_last=True)).fault


def test_summary_root_name_prefers_a_root_segment() -> None:
    documents = realistic_documents(T0, function_segment=True)
    documents[0]["name"] = "orders-api-function"
    assert summarize(documents).root_name == "orders-api-function"
    # Without a root segment or a Service annotation: the earliest segment.
    bare = realistic_documents(T0)
    del bare[1]["annotations"]["Service"]
    assert summarize(bare).root_name == "orders-worker"
    assert summarize(bare[:1]).root_name == "Init"


# --------------------------------------------------------------- fuzzing

IDS = [f"{i:016x}" for i in range(12)]
TRACE_ID = "1-6b098d4b-0c0b0ea6e00b2feb16b859d9"

numbers = st.one_of(
    st.floats(min_value=T0 - 10, max_value=T0 + 10),
    st.integers(min_value=int(T0) - 10, max_value=int(T0) + 10),
)
maybe = st.one_of(
    st.none(), st.booleans(), st.text(max_size=4), st.floats(), st.lists(st.none(), max_size=1)
)


@st.composite
def entities(draw: st.DrawFn, depth: int = 0) -> Any:
    if draw(st.integers(0, 9)) == 0:
        return draw(maybe)  # not an entity at all
    entity: dict[str, Any] = {}
    entity["id"] = draw(st.one_of(st.sampled_from(IDS), maybe) if depth else st.sampled_from(IDS))
    if draw(st.booleans()) or depth == 0:
        entity["start_time"] = draw(st.one_of(numbers, maybe) if depth else numbers)
    if draw(st.booleans()):
        entity["end_time"] = draw(st.one_of(numbers, maybe))
    if draw(st.booleans()):
        entity["in_progress"] = draw(st.one_of(st.booleans(), maybe))
    for key in ("fault", "error", "throttle"):
        if draw(st.integers(0, 3)) == 0:
            entity[key] = draw(st.one_of(st.booleans(), maybe))
    if draw(st.booleans()):
        entity["name"] = draw(st.one_of(st.text(max_size=8), maybe))
    if draw(st.integers(0, 3)) == 0:
        entity["annotations"] = draw(
            st.one_of(st.dictionaries(st.text(max_size=3), maybe, max_size=3), maybe)
        )
    if depth < 3 and draw(st.booleans()):
        entity["subsegments"] = draw(st.one_of(st.lists(entities(depth + 1), max_size=3), maybe))
    return entity


@st.composite
def documents(draw: st.DrawFn) -> Any:
    document = draw(entities())
    if not isinstance(document, dict):
        return document
    document["trace_id"] = TRACE_ID
    if draw(st.booleans()):
        document["parent_id"] = draw(st.one_of(st.sampled_from(IDS), st.text(max_size=3)))
    if draw(st.booleans()):
        document["type"] = "subsegment"
    return document


def valid_ids(docs: list[Any]) -> set[str]:
    """Ids reachable through valid entities (the contract assemble() keeps)."""

    def valid(entity: Any) -> bool:
        start = entity.get("start_time") if isinstance(entity, dict) else None
        return (
            isinstance(entity, dict)
            and isinstance(entity.get("id"), str)
            and entity["id"] != ""
            and isinstance(start, (int, float))
            and not isinstance(start, bool)
            and math.isfinite(start)
        )

    found: set[str] = set()
    stack = [doc for doc in docs if valid(doc)]
    while stack:
        entity = stack.pop()
        found.add(entity["id"])
        children = entity.get("subsegments")
        if isinstance(children, list):
            stack.extend(child for child in children if valid(child))
    return found


@settings(max_examples=400, deadline=None)
@given(st.lists(documents(), max_size=8))
def test_assemble_never_raises_and_keeps_every_valid_id_once(docs: list[Any]) -> None:
    trace = assemble(docs)
    seen = [node.id for _, node in trace.walk()]
    assert len(seen) == len(set(seen)) == trace.nodes
    assert set(seen) == valid_ids(docs)
    assert trace.roots == sorted(trace.roots, key=lambda node: node.start)
    for _, node in trace.walk():
        assert node.children == sorted(node.children, key=lambda child: child.start)
        assert node.in_progress == (node.end is None)
        assert trace.start <= node.start <= node.display_end <= max(trace.end, node.start)
    if seen:
        summary = summarize(docs)
        assert summary.segments == trace.documents
        assert summary.trace_id == TRACE_ID


@settings(max_examples=100, deadline=None)
@given(st.permutations(realistic_documents(T0, messages=3, function_segment=True)))
def test_assembly_is_independent_of_arrival_order(docs: list[dict[str, Any]]) -> None:
    reference = assemble(realistic_documents(T0, messages=3, function_segment=True))
    trace = assemble(docs)
    assert shape(trace) == shape(reference)


def test_node_walk_is_depth_first_in_order() -> None:
    trace = assemble(realistic_documents(T0))
    handler = trace.roots[1]
    assert isinstance(handler, Node)
    assert [(d, n.name) for d, n in handler.walk()] == [
        (0, "## handler"),
        (1, "validate order"),
        (1, "sqs"),
        (2, "orders-worker"),
        (3, "save order"),
        (4, "dynamodb"),
    ]
    assert trace.find_all("orders-worker") == [trace.find(CONSUMER)]
    assert trace.find("nope") is None
