"""One trace across API Gateway -> Lambda -> EventBridge -> Lambda -> Kinesis ->
Lambda -> SQS -> Lambda, in the local runtime, on both backends.

Four real ``awslambdaric`` processes (tests/e2e/fixtures/chain_app.py), moto's
HTTP server as EventBridge, Kinesis and SQS, the local event sources delivering
as Lambda does (`EventBridgeRule`, `KinesisEventSource`, `SQSEventSource`), and
a real UDP listener. Kinesis carries no context: the router opts in with
``TRACING_PAYLOAD_CONTEXT=kinesis``; every other hop is carried by AWS (locally,
by `LocalAWS` and the event sources) from what the library writes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tracing import testing
from tracing._header import new_id, new_trace_id, parse
from tracing.local.collector.service_graph import build_map
from tracing.local.collector.traces import Node, assemble
from tracing.local.runtime import LocalLambda
from tracing.local.runtime.aws import LocalAWS
from tracing.local.runtime.event_source import SQSEventSource
from tracing.local.runtime.event_sources import EventBridgeRule, KinesisEventSource

FIXTURES = Path(__file__).parent / "fixtures"
LINEAGE = "Lineage=5b1e7c2a:1"


@pytest.fixture(params=["xray", "otel"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Chain:
    """The four functions and the AWS resources between them."""

    def __init__(self, aws: LocalAWS, daemon: testing.DaemonListener, backend: str) -> None:
        kinesis, sqs = aws.client("kinesis"), aws.client("sqs")
        self.stream = f"orders-{new_id()}"
        kinesis.create_stream(StreamName=self.stream, ShardCount=1)
        self.queue_url = sqs.create_queue(QueueName=f"stored-{new_id()}")["QueueUrl"]
        env = {**aws.env, "TRACING_BACKEND": backend}
        self.functions = {
            name: LocalLambda(
                f"chain_app.{name}",
                code_dir=FIXTURES,
                function_name=name,
                timeout_s=30.0,
                env={**env, **extra},
                xray_daemon_address=daemon.address,
            )
            for name, extra in (
                ("gateway", {}),
                ("router", {"STREAM": self.stream, "TRACING_PAYLOAD_CONTEXT": "kinesis"}),
                ("stream", {"QUEUE_URL": self.queue_url}),
                ("sink", {}),
            )
        }
        for function in self.functions.values():
            function.start()
        self.rule = EventBridgeRule(self.functions["router"], aws, pattern={"source": ["orders"]})
        self.kinesis = KinesisEventSource(self.functions["stream"], kinesis, self.stream)
        self.sqs = SQSEventSource(self.functions["sink"], sqs, self.queue_url, batch_size=10)

    def stop(self) -> None:
        for function in self.functions.values():
            function.stop()


@pytest.fixture
def chain(aws: LocalAWS, daemon: testing.DaemonListener, backend: str) -> Iterator[Chain]:
    built = Chain(aws, daemon, backend)
    yield built
    built.stop()


def _walk(nodes: list[Node]) -> Iterator[Node]:
    for node in nodes:
        yield node
        yield from _walk(node.children)


def _payload(result: Any) -> dict[str, Any]:
    assert result.ok, result.error
    payload = result.payload
    assert isinstance(payload, dict)
    return payload


def test_one_request_is_one_trace_across_every_hop(
    chain: Chain, daemon: testing.DaemonListener
) -> None:
    root = new_trace_id()
    api_header = f"Root={root};Parent={new_id()};Sampled=1;{LINEAGE}"
    reply = chain.functions["gateway"].invoke(
        {"httpMethod": "POST", "headers": {}, "body": json.dumps({"sku": "book-1"})},
        trace_header=api_header,
    )
    assert _payload(reply)["statusCode"] == 202

    routed = chain.rule.deliver()
    [(router_result, router_header)] = routed.invocations
    streamed = chain.kinesis.deliver()
    [(stream_result, _)] = streamed.invocations
    sunk = chain.sqs.deliver()
    [(sink_result, sink_header)] = sunk.invocations
    assert _payload(stream_result)["batchItemFailures"] == []
    assert _payload(sink_result)["batchItemFailures"] == []
    _payload(router_result)

    documents = daemon.sync()
    by_trace: dict[str, list[dict[str, Any]]] = {}
    for document in documents:
        by_trace.setdefault(document["trace_id"], []).append(document)
    trace = assemble(by_trace[root])
    names = [node.name for node in _walk(trace.roots)]
    # Every function's work is in the request's trace, each under the call that
    # handed it over: nothing is an orphan.
    for expected in ("## gateway", "## router", "route", "stream", "sink", "store"):
        assert expected in names, (expected, names)
    # Only the gateway's own work hangs under Lambda's segment (not sent here).
    assert {node.name for node in trace.roots if node.orphan} <= {"## gateway", "Init"}
    assert [node.name for node in trace.roots if not node.orphan] == []
    entities = {e["id"]: e for d in by_trace[root] for e in testing.iter_entities(d)}
    calls = {e["aws"]["operation"]: e for e in entities.values() if e.get("namespace") == "aws"}
    router = next(e for e in entities.values() if e["name"] == "## router")
    assert router["parent_id"] == calls["PutEvents"]["id"]
    [kinesis_consumer] = [
        d for d in by_trace[root] if d["name"] == "stream" and "Stream" in d.get("annotations", {})
    ]
    assert kinesis_consumer["parent_id"] == calls["PutRecord"]["id"]
    [sqs_consumer] = [
        d for d in by_trace[root] if d["name"] == "sink" and "Queue" in d.get("annotations", {})
    ]
    assert sqs_consumer["parent_id"] == calls["SendMessage"]["id"]

    # Lineage: EventBridge gives the router the gateway's header unchanged (loop
    # detection does not count EventBridge); Kinesis starts a new chain; SQS
    # counts the sink once.
    assert router_header == f"Root={root};Parent={calls['PutEvents']['id']};Sampled=1;{LINEAGE}"
    assert dict(parse(_payload(router_result)["header"]).extra)["Lineage"] == LINEAGE[8:]
    sink_lineage = dict(parse(sink_header).extra)["Lineage"]
    assert sink_lineage.endswith(":1")

    # The map draws every hop of the chain.
    service_map = build_map([trace])
    edges = {(source[0], source[1], target[0], target[1]) for source, target in service_map.edges}
    hops = [
        ("client", "service", "gateway"),
        ("service", "bus", "default"),
        ("bus", "service", "router"),
        ("service", "stream", chain.stream),
        ("stream", "service", "stream"),
        ("service", "queue", chain.queue_url.rsplit("/", 1)[1]),
        ("queue", "service", "sink"),
    ]
    kinds = {key[0] for key in service_map.nodes}
    assert {"bus", "stream", "queue"} <= kinds
    for source_kind, target_kind, target_name in hops:
        assert any(
            s_kind == source_kind and t_kind == target_kind and t_name == target_name
            for s_kind, _, t_kind, t_name in edges
        ), (source_kind, target_kind, target_name, sorted(edges))
