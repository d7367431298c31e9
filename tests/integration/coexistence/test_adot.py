"""Beside ADOT: its layer's start-up, its SDK and instrumentations, with tracing added.

The function (``fixtures/adot_app.py``) runs through the real awslambdaric,
started by ``opentelemetry-instrument`` with the layer's environment and the
layer's handler wrapper (``AwsLambdaInstrumentor``), from a venv with the real
``aws-opentelemetry-distro``. ADOT's exporter sends OTLP/UDP to the same
listener as the library's documents, so doubles would show.
"""

from __future__ import annotations

from typing import Any

import pytest

from tracing import testing
from tracing._header import new_id, new_trace_id, parse
from tracing.local.runtime.aws import LocalAWS

from .conftest import AdotLaunch

pytestmark = pytest.mark.integration


def _header(extra: str = "") -> tuple[str, str]:
    root = new_trace_id()
    return root, f"Root={root};Parent={new_id()};Sampled=1{extra}"


def _entities(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return list(testing.iter_entities(doc))


@pytest.fixture
def queue(aws: LocalAWS) -> tuple[str, str]:
    client = aws.client("sqs")
    url = client.create_queue(QueueName=f"adot-{new_id()}")["QueueUrl"]
    attributes = client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return url, attributes["Attributes"]["QueueArn"]


def test_one_tree_per_invocation_with_init_inside_and_no_double(
    adot_launch: AdotLaunch, daemon: testing.DaemonListener, queue: tuple[str, str]
) -> None:
    function = adot_launch("adot_app.handler", QUEUE_URL=queue[0])
    roots = []
    for _ in range(2):
        root, header = _header()
        result = function.invoke({}, trace_header=header)
        assert result.ok, (result.error, function.logs[-2000:])
        roots.append((root, result.request_id))
    docs = daemon.settle()
    for doc in docs:
        assert testing.check_document(doc) == [], doc
    # ADOT's exporter is gated: nothing of its own reaches X-Ray.
    assert daemon.otlp == []

    [init] = [d for d in docs if d["name"] == "Init"]
    assert init["trace_id"] == roots[0][0]
    assert [c["name"] for c in init["subsegments"]] == ["load config", "warm cache"]
    [init_call] = init["subsegments"][0]["subsegments"]  # one span for the init-time call
    assert init_call["namespace"] == "aws"

    invocations = [d for d in docs if d["name"] == "## handler"]
    assert [d["trace_id"] for d in invocations] == [root for root, _ in roots]
    for doc, (_, request_id) in zip(invocations, roots, strict=True):
        # One invocation span: the Lambda instrumentation's became ours, its
        # attributes kept as metadata.
        assert doc["metadata"]["default"]["faas.invocation_id"] == request_id
        names = [e["name"] for e in _entities(doc)]
        assert "adot-app" not in names
        assert names.count("price order") == 1
        calls = [e for e in _entities(doc) if e.get("namespace") == "aws"]
        assert len(calls) == 1  # OTel's botocore span only: the core stepped aside
    assert not [d for d in docs if d["name"] not in {"Init", "## handler"}]
    assert "Traceback" not in function.logs


def test_sqs_messages_continue_the_producers_trace_with_lineage(
    adot_launch: AdotLaunch,
    daemon: testing.DaemonListener,
    aws: LocalAWS,
    queue: tuple[str, str],
) -> None:
    url, arn = queue
    function = adot_launch("adot_app.handler", QUEUE_URL=url)
    root, header = _header(";Lineage=a87bd80c:1")
    assert function.invoke({}, trace_header=header).ok
    produced = daemon.settle()
    [invocation] = [d for d in produced if d["name"] == "## handler"]
    [send] = [e for e in _entities(invocation) if e.get("namespace") == "aws"]

    [message] = testing.receive_messages(aws.client("sqs"), url, 1)
    sent = parse(message["Attributes"]["AWSTraceHeader"])
    assert sent is not None
    assert (sent.root, sent.parent, sent.sampled) == (root, send["id"], "1")
    assert "Lineage=a87bd80c:1" in message["Attributes"]["AWSTraceHeader"]

    consumer = adot_launch("adot_app.consume", QUEUE_URL=url)
    daemon.clear()
    consumer_root, consumer_header = _header()
    event = testing.lambda_sqs_event([message], queue_arn=arn)
    outcome = consumer.invoke(event, trace_header=consumer_header)
    assert outcome.ok, outcome.error
    assert outcome.payload == {"batchItemFailures": []}
    docs = daemon.settle()
    assert daemon.otlp == []
    [segment] = [d for d in docs if d["trace_id"] == root]
    assert segment["parent_id"] == send["id"]
    assert [c["name"] for c in segment["subsegments"]] == ["handle message"]
    [consumer_invocation] = [d for d in docs if d["name"] == "## consume"]
    assert consumer_invocation["trace_id"] == consumer_root
    [record] = consumer_invocation["subsegments"]
    assert record["annotations"]["LinkedTraceId"] == root


def test_provider_exporter_leaves_adot_in_charge_of_the_same_trees(
    adot_launch: AdotLaunch, daemon: testing.DaemonListener, queue: tuple[str, str]
) -> None:
    function = adot_launch("adot_app.handler", QUEUE_URL=queue[0], TRACING_EXPORTER="provider")
    roots = []
    for _ in range(2):
        root, header = _header()
        assert function.invoke({}, trace_header=header).ok
        roots.append(root)
    daemon.settle()
    assert daemon.documents == []  # nothing from tracing's own exporter
    spans = daemon.otlp_spans()
    by_name: dict[str, list[Any]] = {}
    for span in spans:
        by_name.setdefault(span.name, []).append(span)
    traces = {span.trace_id.hex() for span in spans}
    assert traces == {r[2:10] + r[11:] for r in roots}

    [init] = by_name["Init"]
    assert init.trace_id.hex() == roots[0][2:10] + roots[0][11:]
    [load] = by_name["load config"]
    [warm] = by_name["warm cache"]
    assert load.parent_span_id == warm.parent_span_id == init.span_id
    assert len(by_name["## handler"]) == 2
    assert len(by_name["price order"]) == 2
    calls = by_name["SQS.SendMessage"] + by_name["SQS.GetQueueAttributes"]
    assert len(calls) == 3  # one span per call: the init-time call and two sends
    assert "adot-app" not in by_name  # the Lambda instrumentation's span gave way
    # ADOT's own exporter pipeline ran on them (its Application Signals attributes).
    attributes = {kv.key for kv in by_name["## handler"][0].attributes}
    assert "aws.local.service" in attributes or "aws.span.kind" in attributes


@pytest.mark.parametrize("exporter", ["xray-udp", "provider"])
def test_a_timed_out_invocation_is_sent_before_the_deadline(
    adot_launch: AdotLaunch, daemon: testing.DaemonListener, queue: tuple[str, str], exporter: str
) -> None:
    function = adot_launch(
        "adot_app.slow", timeout_s=1.5, QUEUE_URL=queue[0], TRACING_EXPORTER=exporter
    )
    root, header = _header()
    result = function.invoke({}, trace_header=header)
    assert result.timed_out
    daemon.settle()
    if exporter == "xray-udp":
        [invocation] = [d for d in daemon.documents if d["name"] == "## slow"]
        assert invocation["trace_id"] == root
        assert invocation["annotations"]["Timeout"] is True
        assert [c["name"] for c in invocation["subsegments"]] == ["stuck"]
        assert daemon.otlp == []
    else:  # through ADOT's own exporter, before the sandbox was killed
        spans = {s.name: s for s in daemon.otlp_spans()}
        assert {"## slow", "stuck"} <= set(spans)
        assert spans["## slow"].trace_id.hex() == root[2:10] + root[11:]
        assert daemon.documents == []
