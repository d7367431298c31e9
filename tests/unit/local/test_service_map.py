"""The service map built from assembled traces: nodes, edges and their figures."""

from __future__ import annotations

from typing import Any

from tracing.local.service_map import build_map, render_map_html, render_map_text
from tracing.local.traces import assemble

from . import realistic_documents


def _edges(documents_per_trace: list[list[dict[str, Any]]]) -> dict[tuple[str, str], Any]:
    service_map = build_map(assemble(docs) for docs in documents_per_trace)
    return {(f"{e.source[1]}", f"{e.target[1]}"): e.stats for e in service_map.edges.values()}


def test_the_orders_application_as_the_console_draws_it() -> None:
    traces = [
        realistic_documents(1_800_000_000.0 + i, messages=2, poison_last=True) for i in range(2)
    ]
    service_map = build_map(assemble(docs) for docs in traces)
    names = {(node.type, node.name) for node in service_map.nodes.values()}
    assert names == {
        ("client", "client"),
        ("function", "orders-api"),
        ("aws", "SSM"),
        ("queue", "orders"),
        # Seen here only through its consumer segments (its own invocations are in
        # traces of their own, as make demo has them): a service.
        ("service", "orders-worker"),
        ("table", "orders"),
    }
    edges = {(e.source[1], e.target[1]): e.stats for e in service_map.edges.values()}
    assert set(edges) == {
        ("client", "orders-api"),
        ("orders-api", "SSM"),
        ("orders-api", "orders"),
        ("orders", "orders-worker"),
        ("orders-worker", "orders"),
    }
    assert edges[("client", "orders-api")].count == 2
    assert edges[("orders-api", "orders")].count == 4  # two SendMessage calls per trace
    hop = edges[("orders", "orders-worker")]
    assert (hop.count, hop.rate("faults")) == (4, 0.5)  # the poison message, on the queue's edge
    assert hop.avg_ms is not None
    assert hop.p95_ms is not None
    assert hop.p95_ms >= hop.avg_ms
    assert service_map.traces == 2


def test_lambdas_own_function_segment_is_the_same_function() -> None:
    docs = realistic_documents(1_800_000_000.0, function_segment=True)
    service_map = build_map([assemble(docs)])
    api = [n for n in service_map.nodes.values() if n.name == "orders-api"]
    assert [n.type for n in api] == ["function"]
    assert all(e.source != e.target for e in service_map.edges.values())


def _segment(name: str, entity_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "id": entity_id,
        "trace_id": "1-6b000000-000000000000000000000001",
        "start_time": 1_800_000_000.0,
        "end_time": 1_800_000_000.2,
        **extra,
    }


def test_http_hosts_are_nodes_and_a_traced_callee_replaces_its_host() -> None:
    caller = _segment(
        "checkout",
        "a000000000000001",
        subsegments=[
            {
                "name": "payments.example.com",
                "id": "b000000000000001",
                "start_time": 1_800_000_000.0,
                "end_time": 1_800_000_000.1,
                "namespace": "remote",
                "http": {"request": {"method": "POST"}, "response": {"status": 429}},
                "error": True,
                "throttle": True,
            },
            {  # as OTel's HTTP instrumentations name a span: by its method
                "name": "GET",
                "id": "b000000000000004",
                "start_time": 1_800_000_000.0,
                "end_time": 1_800_000_000.1,
                "namespace": "remote",
                "http": {"request": {"method": "GET", "url": "https://rates.example.com/eur"}},
            },
            {
                "name": "stock.internal",
                "id": "b000000000000002",
                "start_time": 1_800_000_000.1,
                "end_time": 1_800_000_000.15,
                "namespace": "remote",
            },
            {
                "name": "lambda",
                "id": "b000000000000003",
                "start_time": 1_800_000_000.15,
                "end_time": 1_800_000_000.19,
                "namespace": "aws",
                "aws": {
                    "operation": "Invoke",
                    "function_name": "arn:aws:lambda:x:1:function:mailer",
                },
            },
        ],
    )
    stock = _segment("stock", "c000000000000001", parent_id="b000000000000002")
    edges = _edges([[caller, stock]])
    assert set(edges) == {
        ("client", "checkout"),
        ("checkout", "payments.example.com"),
        ("checkout", "rates.example.com"),
        ("checkout", "stock"),  # traced: the service, not its host
        ("checkout", "mailer"),
    }
    assert edges[("checkout", "payments.example.com")].rate("throttles") == 1.0
    assert edges[("checkout", "payments.example.com")].rate("errors") == 1.0


def test_hostile_names_stay_text_everywhere() -> None:
    hostile = '<img src=x onerror=alert(1)>\x1b[31m"'
    docs = [
        _segment(
            hostile,
            "a000000000000002",
            subsegments=[
                {
                    "name": hostile,
                    "id": "b000000000000009",
                    "start_time": 1_800_000_000.0,
                    "end_time": 1_800_000_000.1,
                    "namespace": "remote",
                }
            ],
        )
    ]
    service_map = build_map([assemble(docs)])
    text = render_map_text(service_map)
    assert "\x1b" not in text
    page = render_map_html(service_map)
    assert "<img" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


def test_an_empty_store_gives_an_empty_map() -> None:
    service_map = build_map([])
    assert "no calls" in render_map_text(service_map)
    assert "No calls to draw" in render_map_html(service_map)


def test_a_cycle_is_laid_out_without_looping_forever() -> None:
    a = _segment(
        "a",
        "a00000000000000a",
        subsegments=[
            {
                "name": "b.host",
                "id": "b00000000000000a",
                "start_time": 1_800_000_000.0,
                "end_time": 1_800_000_000.1,
                "namespace": "remote",
            }
        ],
    )
    b = _segment(
        "b",
        "c00000000000000a",
        parent_id="b00000000000000a",
        subsegments=[
            {
                "name": "a.host",
                "id": "d00000000000000a",
                "start_time": 1_800_000_000.0,
                "end_time": 1_800_000_000.1,
                "namespace": "remote",
            }
        ],
    )
    a_again = _segment("a", "e00000000000000a", parent_id="d00000000000000a")
    edges = _edges([[a, b, a_again]])
    assert {("client", "a"), ("a", "b"), ("b", "a")} <= set(edges)
    page = render_map_html(build_map([assemble([a, b, a_again])]))
    assert page.count('<g class="edge ') == 3


def test_an_invoked_functions_invocation_is_no_client_request() -> None:
    caller = _segment(
        "api",
        "a00000000000000b",
        subsegments=[
            {
                "name": "lambda",
                "id": "b00000000000000b",
                "start_time": 1_800_000_000.0,
                "end_time": 1_800_000_000.1,
                "namespace": "aws",
                "aws": {"operation": "Invoke", "function_name": "mailer"},
            }
        ],
    )
    # The invoked function's invocation: its parent (Lambda's own segment for it)
    # is not stored locally, so it is a root of the trace.
    invocation = {
        "name": "## handler",
        "id": "c00000000000000b",
        "type": "subsegment",
        "parent_id": "d00000000000000b",
        "trace_id": caller["trace_id"],
        "start_time": 1_800_000_000.01,
        "end_time": 1_800_000_000.09,
        "annotations": {"Service": "mailer", "ColdStart": False},
    }
    edges = _edges([[caller, invocation]])
    assert set(edges) == {("client", "api"), ("api", "mailer")}
