"""The service map built from assembled traces: nodes, edges and their figures."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.local import realistic_documents
from tracing.local.collector.service_graph import build_map
from tracing.local.collector.traces import assemble
from tracing.local.views.service_map import render_map_html, render_map_text


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
        # traces of their own, as make demo has them), which link to the Lambda
        # invocation that processed them: a function.
        ("function", "orders-worker"),
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


def test_a_consumer_outside_lambda_is_a_service_and_inside_one_trace_a_function() -> None:
    """One name per node type: the one-trace map labels the Lambda consumer as the
    map of all traces does; a polling worker's consumer (no invocation to link to)
    stays a service."""
    docs = realistic_documents(1_800_000_000.0, messages=1)
    [one_trace] = [
        n for n in build_map([assemble(docs)]).nodes.values() if n.name == "orders-worker"
    ]
    assert (one_trace.type, one_trace.label) == ("function", "Lambda function")
    for doc in docs:
        doc.get("annotations", {}).pop("LinkedTraceId", None)
    [worker] = [n for n in build_map([assemble(docs)]).nodes.values() if n.name == "orders-worker"]
    assert (worker.type, worker.label) == ("service", "Service")


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


# -- the hops beyond SQS -------------------------------------------------------------

T0 = 1_800_000_000.0
REGION_ACCOUNT = "us-east-1:123456789012"


class _Ids:
    """Distinct 16-hex ids, in order."""

    def __init__(self) -> None:
        self.next = 0

    def __call__(self) -> str:
        self.next += 1
        return f"{self.next:016x}"


def _call(ids: _Ids, service: str, operation: str, at: float, **aws: Any) -> dict[str, Any]:
    return {
        "id": ids(),
        "name": service,
        "start_time": T0 + at,
        "end_time": T0 + at + 0.004,
        "namespace": "aws",
        "aws": {"operation": operation, "region": "us-east-1", **aws},
    }


def _invocation(
    trace_id: str,
    ids: _Ids,
    service: str,
    parent: str,
    at: float,
    took: float,
    children: list[dict[str, Any]],
    **extra: Any,
) -> dict[str, Any]:
    """A function's ``## handler`` document, as the library emits it."""
    return {
        "trace_id": trace_id,
        "id": ids(),
        "parent_id": parent,
        "type": "subsegment",
        "name": "## handler",
        "start_time": T0 + at,
        "end_time": T0 + at + took,
        "annotations": {"ColdStart": False, "Service": service},
        "subsegments": children,
        **extra,
    }


def _consumer(
    trace_id: str,
    ids: _Ids,
    service: str,
    parent: str,
    at: float,
    took: float,
    annotations: dict[str, Any],
    children: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A consumer segment in the producer's trace, under the producer's call."""
    return {
        "trace_id": trace_id,
        "id": ids(),
        "parent_id": parent,
        "name": service,
        "start_time": T0 + at,
        "end_time": T0 + at + took,
        "annotations": annotations,
        "subsegments": children or [],
        **extra,
    }


def _chain(index: int, *, poison: bool) -> list[dict[str, Any]]:
    """API Gateway -> Lambda -> EventBridge -> Lambda -> Kinesis -> Lambda -> SQS -> Lambda."""
    ids = _Ids()
    trace_id = f"1-6b00000{index}-000000000000000000000001"
    invoke = _call(ids, "lambda", "Invoke", 0.001, function_name="orders-api")
    gateway = {
        "trace_id": trace_id,
        "id": ids(),
        "name": "shop/prod",
        "origin": "AWS::ApiGateway::Stage",
        "start_time": T0,
        "end_time": T0 + 0.3,
        "http": {"request": {"method": "POST"}, "response": {"status": 200}},
        "subsegments": [invoke],
    }
    put_events = _call(ids, "events", "PutEvents", 0.01, event_bus_name="orders")
    api = _invocation(trace_id, ids, "orders-api", invoke["id"], 0.002, 0.02, [put_events])
    put_record = _call(ids, "kinesis", "PutRecord", 0.05, stream_name="clicks")
    router = _invocation(trace_id, ids, "router", put_events["id"], 0.04, 0.03, [put_record])
    send = _call(
        ids, "sqs", "SendMessage", 0.11, queue_url="https://sqs.us-east-1.amazonaws.com/1/jobs"
    )
    analytics = _consumer(
        trace_id,
        ids,
        "analytics",
        put_record["id"],
        0.1,
        0.02,
        {"Stream": "clicks", "SequenceNumber": "4960"},
        [send],
    )
    worker = _consumer(
        trace_id,
        ids,
        "worker",
        send["id"],
        0.15,
        0.05 if poison else 0.01,
        {"Queue": "jobs", "MessageId": "m-1"},
        **({"fault": True} if poison else {}),
    )
    return [gateway, api, router, analytics, worker]


def _batch(service: str, record: str, records: int) -> list[dict[str, Any]]:
    """A consumer's batch invocation, in a trace of its own."""
    ids = _Ids()
    children = [
        {"id": ids(), "name": record, "start_time": T0, "end_time": T0 + 0.001}
        for _ in range(records)
    ]
    return [
        _invocation(
            "1-6b0000ff-000000000000000000000001", ids, service, "f" * 16, 0, 0.01, children
        )
    ]


def _map_of(*traces: list[dict[str, Any]]) -> Any:
    return build_map(assemble(documents) for documents in traces)


def _nodes(service_map: Any) -> set[tuple[str, str, str]]:
    return {(n.type, n.label, n.name) for n in service_map.nodes.values()}


def _edge_stats(service_map: Any) -> dict[tuple[tuple[str, str], tuple[str, str]], Any]:
    return {
        (
            (service_map.nodes[e.source].type, e.source[1]),
            (service_map.nodes[e.target].type, e.target[1]),
        ): e.stats
        for e in service_map.edges.values()
    }


def test_the_chain_through_eventbridge_kinesis_and_sqs_as_the_console_draws_it() -> None:
    service_map = _map_of(
        _chain(1, poison=False),
        _chain(2, poison=True),
        _batch("analytics", "Kinesis record", 2),
        _batch("worker", "SQS message", 1),
    )
    assert _nodes(service_map) == {
        ("client", "Client", "client"),
        ("service", "Service", "shop/prod"),
        ("function", "Lambda function", "orders-api"),
        ("bus", "EventBridge event bus", "orders"),
        ("function", "Lambda function", "router"),
        ("stream", "Kinesis stream", "clicks"),
        ("function", "Lambda function", "analytics"),
        ("queue", "SQS queue", "jobs"),
        ("function", "Lambda function", "worker"),
    }
    edges = _edge_stats(service_map)
    assert set(edges) == {
        (("client", "client"), ("service", "shop/prod")),
        (("service", "shop/prod"), ("function", "orders-api")),
        (("function", "orders-api"), ("bus", "orders")),
        (("bus", "orders"), ("function", "router")),
        (("function", "router"), ("stream", "clicks")),
        (("stream", "clicks"), ("function", "analytics")),
        (("function", "analytics"), ("queue", "jobs")),
        (("queue", "jobs"), ("function", "worker")),
    }  # no client edge for the batch invocations, none from a producer to a consumer
    # Invoked by the gateway's call: counted once, on the call's edge.
    assert edges[(("service", "shop/prod"), ("function", "orders-api"))].count == 2
    delivered = edges[(("bus", "orders"), ("function", "router"))]
    assert (delivered.count, delivered.rate("faults")) == (2, 0.0)
    assert delivered.avg_ms == pytest.approx(
        30.0, abs=0.01
    )  # the router's invocation, as delivered
    assert edges[(("stream", "clicks"), ("function", "analytics"))].avg_ms == pytest.approx(
        20.0, abs=0.01
    )
    poisoned = edges[(("queue", "jobs"), ("function", "worker"))]
    assert (poisoned.count, poisoned.rate("faults")) == (2, 0.5)
    assert poisoned.p95_ms == pytest.approx(50.0, abs=0.01)
    assert edges[(("function", "orders-api"), ("bus", "orders"))].avg_ms == pytest.approx(
        4.0, abs=0.01
    )
    assert service_map.nodes[("stream", "clicks")].stats.count == 2  # the PutRecord calls
    text = render_map_text(service_map)
    for line in (
        "orders-api (Lambda function) -> orders (EventBridge event bus)",
        "orders (EventBridge event bus) -> router (Lambda function)",
        "router (Lambda function) -> clicks (Kinesis stream)",
        "clicks (Kinesis stream) -> analytics (Lambda function)",
    ):
        assert line in text
    page = render_map_html(service_map)
    assert page.count('<g class="node bus ') == 1
    assert page.count('<g class="node stream ') == 1
    assert "EventBridge event bus</text>" in page
    assert "orders (EventBridge event bus) → router (Lambda function)" in page


def test_a_kinesis_stream_is_named_the_same_from_its_arn_and_by_a_contrib_span() -> None:
    ids = _Ids()
    trace_id = "1-6b000010-000000000000000000000001"
    calls = [
        _call(ids, "kinesis", "PutRecords", 0.01, stream_name="clicks"),
        _call(ids, "Kinesis", "PutRecords", 0.02, **{"kinesis.stream_name": "clicks"}),
    ]
    service_map = _map_of([_invocation(trace_id, ids, "api", "e" * 16, 0, 0.05, calls)])
    edges = _edge_stats(service_map)
    assert edges[(("function", "api"), ("stream", "clicks"))].count == 2


def _sns_publisher(trace_id: str, ids: _Ids) -> tuple[dict[str, Any], dict[str, Any]]:
    publish = _call(ids, "sns", "Publish", 0.01, topic_arn=f"arn:aws:sns:{REGION_ACCOUNT}:alerts")
    return publish, _invocation(trace_id, ids, "notifier", "e" * 16, 0, 0.03, [publish])


def test_sns_delivers_to_the_function_invoked_under_publish() -> None:
    ids = _Ids()
    trace_id = "1-6b000020-000000000000000000000001"
    publish, notifier = _sns_publisher(trace_id, ids)
    mailer = _invocation(trace_id, ids, "mailer", publish["id"], 0.02, 0.008, [], fault=True)
    edges = _edge_stats(_map_of([notifier, mailer]))
    assert set(edges) == {
        (("client", "client"), ("function", "notifier")),
        (("function", "notifier"), ("topic", "alerts")),
        (("topic", "alerts"), ("function", "mailer")),
    }
    delivered = edges[(("topic", "alerts"), ("function", "mailer"))]
    assert (delivered.count, delivered.rate("faults"), delivered.avg_ms) == (
        1,
        1.0,
        pytest.approx(8.0, abs=0.01),
    )


def test_sns_and_lambdas_own_segments_in_aws_are_the_topic_and_the_function() -> None:
    ids = _Ids()
    trace_id = "1-6b000021-000000000000000000000001"
    publish, notifier = _sns_publisher(trace_id, ids)
    topic = _consumer(trace_id, ids, "alerts", publish["id"], 0.012, 0.01, {})
    topic["origin"] = "AWS::SNS::Topic"
    service = _consumer(trace_id, ids, "mailer", topic["id"], 0.02, 0.02, {})
    service["origin"] = "AWS::Lambda"
    function = _consumer(trace_id, ids, "mailer", service["id"], 0.021, 0.018, {})
    function["origin"] = "AWS::Lambda::Function"
    handler = _invocation(trace_id, ids, "mailer", function["id"], 0.022, 0.015, [])
    service_map = _map_of([notifier, topic, service, function, handler])
    assert ("service", "alerts") not in service_map.nodes
    edges = _edge_stats(service_map)
    assert set(edges) == {
        (("client", "client"), ("function", "notifier")),
        (("function", "notifier"), ("topic", "alerts")),
        (("topic", "alerts"), ("function", "mailer")),
    }
    assert edges[(("topic", "alerts"), ("function", "mailer"))].count == 1


def test_dynamodb_streams_draw_the_table_its_stream_and_the_consumer() -> None:
    ids = _Ids()
    trace_id = "1-6b000030-000000000000000000000001"
    puts = [_call(ids, "dynamodb", "PutItem", 0.01 * i, table_name="orders") for i in (1, 2)]
    writer = _invocation(trace_id, ids, "writer", "e" * 16, 0, 0.05, puts)
    consumers = [
        _consumer(
            trace_id,
            ids,
            "projector",
            put["id"],
            0.1 + i * 0.01,
            0.006,
            {"TableStream": "orders", "SequenceNumber": str(i)},
            **({"fault": True} if i else {}),
        )
        for i, put in enumerate(puts)
    ]
    service_map = _map_of([writer, *consumers], _batch("projector", "DynamoDB record", 2))
    assert {n for n in _nodes(service_map) if n[2] == "orders"} == {
        ("table", "DynamoDB table", "orders"),
        ("table_stream", "DynamoDB stream", "orders"),
    }
    edges = _edge_stats(service_map)
    assert set(edges) == {
        (("client", "client"), ("function", "writer")),
        (("function", "writer"), ("table", "orders")),
        (("table", "orders"), ("table_stream", "orders")),
        (("table_stream", "orders"), ("function", "projector")),
    }
    fed = edges[(("table", "orders"), ("table_stream", "orders"))]
    assert (fed.count, fed.avg_ms, fed.rate("faults")) == (2, None, 0.0)  # records, no time
    consumed = edges[(("table_stream", "orders"), ("function", "projector"))]
    assert (consumed.count, consumed.rate("faults")) == (2, 0.5)
    text = render_map_text(service_map)
    assert "orders (DynamoDB table) -> orders (DynamoDB stream)" in text
    assert "orders (DynamoDB stream) -> projector (Lambda function)" in text


def test_a_dynamodb_stream_call_names_the_tables_stream() -> None:
    ids = _Ids()
    trace_id = "1-6b000031-000000000000000000000001"
    arn = f"arn:aws:dynamodb:{REGION_ACCOUNT}:table/orders/stream/2026-01-01T00:00:00.000"
    describe = _call(ids, "streams.dynamodb", "DescribeStream", 0.01, stream_arn=arn)
    service_map = _map_of([_invocation(trace_id, ids, "poller", "e" * 16, 0, 0.02, [describe])])
    assert ("table_stream", "DynamoDB stream", "orders") in _nodes(service_map)


def test_start_execution_delivers_from_the_state_machine() -> None:
    ids = _Ids()
    trace_id = "1-6b000040-000000000000000000000001"
    machine = f"arn:aws:states:{REGION_ACCOUNT}:stateMachine:fulfil"
    start = _call(ids, "states", "StartExecution", 0.01, state_machine_arn=machine)
    describe = _call(ids, "states", "DescribeExecution", 0.2, state_machine_arn=machine)
    starter = _invocation(trace_id, ids, "checkout", "e" * 16, 0, 0.25, [start, describe])
    packer = _invocation(trace_id, ids, "packer", start["id"], 0.05, 0.1, [])
    service_map = _map_of([starter, packer])
    assert ("state_machine", "Step Functions state machine", "fulfil") in _nodes(service_map)
    edges = _edge_stats(service_map)
    assert set(edges) == {
        (("client", "client"), ("function", "checkout")),
        (("function", "checkout"), ("state_machine", "fulfil")),
        (("state_machine", "fulfil"), ("function", "packer")),
    }
    assert edges[(("function", "checkout"), ("state_machine", "fulfil"))].count == 2
    started = edges[(("state_machine", "fulfil"), ("function", "packer"))]
    assert (started.count, started.avg_ms) == (1, pytest.approx(100.0, abs=0.01))
    page = render_map_html(service_map)
    assert "Step Functions state machine</text>" in page


def test_a_state_machines_own_segment_in_aws_is_its_node() -> None:
    ids = _Ids()
    trace_id = "1-6b000041-000000000000000000000001"
    machine = f"arn:aws:states:{REGION_ACCOUNT}:stateMachine:fulfil"
    start = _call(ids, "states", "StartExecution", 0.01, state_machine_arn=machine)
    starter = _invocation(trace_id, ids, "checkout", "e" * 16, 0, 0.25, [start])
    execution = _consumer(trace_id, ids, "fulfil", start["id"], 0.02, 0.2, {})
    execution["origin"] = "AWS::StepFunctions::StateMachine"
    task = _call(ids, "lambda", "Invoke", 0.03, function_name="packer")
    execution["subsegments"] = [task]
    service_map = _map_of([starter, execution])
    edges = _edge_stats(service_map)
    assert set(edges) == {
        (("client", "client"), ("function", "checkout")),
        (("function", "checkout"), ("state_machine", "fulfil")),
        (("state_machine", "fulfil"), ("service", "packer")),
    }


def test_an_event_bus_and_a_topic_deliver_to_queues_whose_consumers_continue_the_trace() -> None:
    ids = _Ids()
    trace_id = "1-6b000050-000000000000000000000001"
    put_events = _call(ids, "events", "PutEvents", 0.01, event_bus_name="default")
    publish = _call(ids, "sns", "Publish", 0.02, topic_arn=f"arn:aws:sns:{REGION_ACCOUNT}:alerts")
    producer = _invocation(trace_id, ids, "api", "e" * 16, 0, 0.05, [put_events, publish])
    from_bus = _consumer(trace_id, ids, "audit", put_events["id"], 0.1, 0.01, {"Queue": "audit"})
    from_topic = _consumer(
        trace_id, ids, "mailer", publish["id"], 0.1, 0.01, {"Queue": "mail"}, fault=True
    )
    edges = _edge_stats(_map_of([producer, from_bus, from_topic]))
    assert set(edges) == {
        (("client", "client"), ("function", "api")),
        (("function", "api"), ("bus", "default")),
        (("bus", "default"), ("queue", "audit")),
        (("queue", "audit"), ("service", "audit")),
        (("function", "api"), ("topic", "alerts")),
        (("topic", "alerts"), ("queue", "mail")),
        (("queue", "mail"), ("service", "mailer")),
    }
    delivered = edges[(("topic", "alerts"), ("queue", "mail"))]
    assert (delivered.count, delivered.avg_ms, delivered.rate("faults")) == (1, None, 0.0)
    assert edges[(("queue", "mail"), ("service", "mailer"))].rate("faults") == 1.0
