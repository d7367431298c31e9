"""Filter expressions answered from the store's index give the assembled traces' answers.

The store keeps per trace the facts a filter reads (``filters/_stored.py``,
``_index.py``); ``GetTraceSummaries`` evaluates expressions on them without
assembling. Here generated traces (documents split over batches, out of order,
in progress then complete) and generated expressions are evaluated both ways.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.local import realistic_documents
from tracing.local.collector.filters import parse
from tracing.local.collector.filters._stored import StoredFacts
from tracing.local.collector.store import TraceStore
from tracing.local.collector.traces import assemble
from tracing.local.collector.xray_query import QueryAPI
from tracing.local.collector.xray_shapes import summary

T0 = 1_700_000_000.0
TRACE_ID = "1-6553f100-0c0b0ea6e00b2feb16b859d9"
IDS = [f"{i:016x}" for i in range(1, 13)]
NAMES = ["orders-api", "orders-worker", "Init", "## handler", "SQS", "DynamoDB", "api"]
KEYS = ["sku", "tier", "Service", "Queue", "n", "ColdStart"]

_values = st.one_of(
    st.sampled_from(["book-1", "book-2", "gold", "orders", "orders-worker", ""]),
    st.integers(-3, 3),
    st.sampled_from([0.5, 1.0, 2.5, -1.0]),
    st.booleans(),
    st.just([1, 2]),
    st.none(),
)
_http = st.fixed_dictionaries(
    {},
    optional={
        "request": st.fixed_dictionaries(
            {},
            optional={
                "url": st.sampled_from(
                    ["http://api.example.com/v2/items", "https://b.example/x", 5]
                ),
                "method": st.sampled_from(["GET", "POST"]),
                "user_agent": st.just("curl/8.5"),
                "client_ip": st.just("192.0.2.7"),
            },
        ),
        "response": st.fixed_dictionaries(
            {}, optional={"status": st.sampled_from([200, 404, 429, 500, "500", True])}
        ),
    },
)
_aws = st.fixed_dictionaries(
    {},
    optional={
        "queue_url": st.just("https://sqs.us-east-1.amazonaws.com/1/orders"),
        "table_name": st.just("orders"),
        "function_name": st.just("billing"),
        "ec2": st.fixed_dictionaries(
            {}, optional={"availability_zone": st.just("us-east-1a"), "instance_id": st.just("i-1")}
        ),
    },
)


@st.composite
def _entity(draw: Any, depth: int = 0) -> dict[str, Any]:
    start = T0 + draw(st.integers(0, 20)) / 10
    entity: dict[str, Any] = {
        "id": draw(st.sampled_from(IDS)),
        "name": draw(st.sampled_from(NAMES)),
        "start_time": start,
    }
    if draw(st.integers(0, 5)):  # mostly complete
        entity["end_time"] = start + draw(st.integers(0, 30)) / 10
    for flag in ("fault", "error", "throttle"):
        if draw(st.integers(0, 3)) == 0:
            entity[flag] = True
    if draw(st.booleans()):
        entity["annotations"] = draw(st.dictionaries(st.sampled_from(KEYS), _values, max_size=3))
    if draw(st.integers(0, 2)) == 0:
        entity["http"] = draw(_http)
    if draw(st.integers(0, 2)) == 0:
        entity["namespace"] = draw(st.sampled_from(["aws", "remote"]))
        entity["aws"] = draw(_aws)
    if draw(st.integers(0, 4)) == 0:
        entity["user"] = draw(st.sampled_from(["alice", "bob", 3]))
    if draw(st.integers(0, 4)) == 0:
        entity["resource_arn"] = "arn:aws:lambda:us-east-1:1:function:orders"
    if depth < 2:
        entity["subsegments"] = draw(st.lists(_entity(depth + 1), max_size=2))
    return entity


@st.composite
def _documents(draw: Any) -> list[dict[str, Any]]:
    if draw(st.integers(0, 4)) == 0:
        documents = realistic_documents(T0, messages=draw(st.integers(1, 3)), poison_last=True)
        return draw(st.permutations(documents))
    documents = []
    for entity in draw(st.lists(_entity(), min_size=1, max_size=4)):
        document = {"trace_id": TRACE_ID, **entity}
        if draw(st.booleans()):
            document["parent_id"] = draw(st.sampled_from(IDS))
        if draw(st.integers(0, 2)) == 0:
            document["type"] = "subsegment"
        if draw(st.integers(0, 2)) == 0:
            document["origin"] = "AWS::Lambda::Function"
        documents.append(document)
    return documents


_NODE = st.sampled_from(
    [
        '"orders-api"',
        '"orders-worker"',
        '"orders"',
        '"api"',
        '"billing"',
        'id(type: "AWS::Lambda::Function")',
        'id(name: "orders", type: "AWS::SQS::Queue")',
        'id(type: "client")',
    ]
)
_TEST = st.sampled_from(
    [
        "ok",
        "error",
        "fault",
        "throttle",
        "partial",
        "responsetime > 1",
        "responsetime",
        "duration >= 2",
        "http.status = 500",
        "http.status",
        'http.url CONTAINS "example"',
        'http.method = "POST"',
        'http.useragent BEGINSWITH "curl"',
        'http.clientip = "192.0.2.7"',
        'user = "alice"',
        "user",
        'availabilityzone = "us-east-1a"',
        'instance.id = "i-1"',
        'resource.arn ENDSWITH "orders"',
    ]
)
_TRACE_ONLY = st.sampled_from(
    [
        'annotation.sku = "book-1"',
        'annotation.sku BEGINSWITH "book"',
        "annotation.n > 0",
        "annotation.n = 1",
        "annotation.ColdStart = true",
        "annotation.tier",
        "!annotation.Queue",
    ]
)
_INNER = st.sampled_from(["root", "root = false", "fault", "error", "ok", "responsetime > 1"])


@st.composite
def _expression(draw: Any, depth: int = 0) -> str:
    choice = draw(st.integers(0, 6 if depth < 2 else 2))
    if choice == 0:
        return draw(_TEST)
    if choice == 1:
        return draw(_TRACE_ONLY)
    if choice == 2:
        braces = draw(st.one_of(st.just(""), _INNER.map(lambda t: " { " + t + " }")))
        if draw(st.booleans()):
            return f"service({draw(st.one_of(st.just(''), _NODE))}){braces}"
        return f"edge({draw(_NODE)}, {draw(_NODE)}){braces}"
    if choice == 3:
        return f"!({draw(_expression(depth + 1))})"
    joiner = draw(st.sampled_from([" AND ", " OR ", " "]))
    return f"({draw(_expression(depth + 1))}){joiner}({draw(_expression(depth + 1))})"


def _stored_facts(store: TraceStore, trace_id: str) -> tuple[int, StoredFacts]:
    store.refresh_index()
    with store._lock:
        row = (
            store._connection()
            .execute(
                "SELECT nodes, partial, duration, entry, attrs, map FROM trace_index"
                " WHERE trace_id = ?",
                (trace_id,),
            )
            .fetchone()
        )
    return row[0], StoredFacts(*row[1:])


@settings(max_examples=300, deadline=None)
@given(
    _documents(),
    st.lists(_expression(), min_size=1, max_size=4),
    st.lists(st.integers(1, 3), max_size=3),
    st.booleans(),
)
def test_the_index_answers_as_the_assembled_trace(
    documents: list[dict[str, Any]], expressions: list[str], splits: list[int], early: bool
) -> None:
    documents = json.loads(json.dumps(documents))
    trace = assemble(documents)
    with TraceStore(":memory:") as store:
        # In several batches, indexed in between or not: later documents of a
        # trace (the complete one after one in progress) make its facts stale.
        rest = list(documents)
        for size in splits:
            store.add(rest[:size], received_at=T0)
            rest = rest[size:]
            if early:
                store.refresh_index()
        store.add(rest, received_at=T0)
        nodes, facts = _stored_facts(store, documents[0]["trace_id"])
        assert nodes == trace.nodes
        for text in expressions:
            compiled = parse(text)
            expected = compiled.matches(trace)
            assert compiled.matches_stored(facts) is expected, text
            if not trace.nodes:
                continue
            api = QueryAPI(store)
            answer = api.get_trace_summaries(
                {"StartTime": T0 - 60, "EndTime": T0 + 60, "FilterExpression": text}
            )
            if expected:
                assert answer["TraceSummaries"] == [json.loads(json.dumps(summary(trace)))]
            else:
                assert answer["TraceSummaries"] == []


def test_documents_arriving_later_update_the_facts() -> None:
    first, *rest = realistic_documents(T0, messages=1, poison_last=True)
    in_progress = {k: v for k, v in first.items() if k != "end_time"}
    with TraceStore(":memory:") as store:
        store.add([in_progress])
        api = QueryAPI(store)
        body = {"StartTime": T0 - 60, "EndTime": T0 + 60, "FilterExpression": "partial"}
        assert len(api.get_trace_summaries(body)["TraceSummaries"]) == 1
        store.add([first, *rest])
        assert api.get_trace_summaries(body)["TraceSummaries"] == []
        body["FilterExpression"] = 'service("orders-worker") { fault }'
        assert len(api.get_trace_summaries(body)["TraceSummaries"]) == 1


def test_a_database_from_before_the_index_is_indexed(tmp_path: Any) -> None:
    path = tmp_path / "old.sqlite3"
    with TraceStore(path) as store:
        store.add(realistic_documents(T0))
        with store._lock:
            store._connection().execute("DROP TABLE trace_index")
    with TraceStore(path) as store:
        api = QueryAPI(store)
        body = {"StartTime": T0 - 60, "EndTime": T0 + 60, "FilterExpression": "ok"}
        assert len(api.get_trace_summaries(body)["TraceSummaries"]) == 1
