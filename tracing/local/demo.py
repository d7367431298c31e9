"""``tracing demo`` (``make demo``): the example application, end to end, locally.

Everything runs on this machine, with no AWS account: moto's HTTP server plays
SSM, SQS, DynamoDB and EventBridge; the embedded collector (``tracing daemon``'s) receives the
X-Ray documents into a SQLite store; and our Runtime API server drives the real
``awslambdaric`` for each function, each in its own process:

1. ``orders-api`` reads its config from SSM at import (init work) and queues
   orders on SQS;
2. the queued messages are received and handed to ``orders-worker`` as the
   Lambda SQS event, exactly as Lambda builds it;
3. ``orders-worker`` stores them in DynamoDB with ``process_batch`` (one poison
   order fails alone) and puts an ``OrderStored`` event on EventBridge for each;
4. a local EventBridge rule hands each event to ``orders-notifier`` with the
   event's trace header, as EventBridge does.

Then it prints the trace list and the tree of the first order's trace, which
holds the deferred ``Init`` (with the SSM call made at import), the SendMessage
call, the worker's processing with its DynamoDB and PutEvents calls, and the
notifier's invocation under that PutEvents call, and writes the same
trace as an HTML timeline; and it ends with the service map of every trace
(client -> orders-api -> SSM and the orders queue -> orders-worker -> the
orders table and the default event bus -> orders-notifier, the poison order as
the fault rate of the queue's edge), printed
and written as an HTML page.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tracing._header import new_id, new_trace_id

__all__ = ["ORDERS", "run_demo"]

ORDERS = (
    {"sku": "book-1", "quantity": 1},
    {"sku": "pen-2", "quantity": 2},
    {"sku": "poison", "quantity": 0},
)


def _step(message: str) -> None:
    print(f"==> {message}", flush=True)


def _find_examples(examples: str | None) -> Path:
    candidates = [Path(examples)] if examples else [Path.cwd() / "examples"]
    for candidate in candidates:
        if (candidate / "orders_api" / "app.py").is_file():
            return candidate.resolve()
    raise ValueError(
        "the example application was not found; run from the repository root or pass --examples DIR"
    )


def _setup(aws: Any) -> tuple[str, str]:
    aws.client("ssm").put_parameter(
        Name="/orders/config", Value=json.dumps({"currency": "EUR"}), Type="String", Overwrite=True
    )
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName="orders")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    aws.client("dynamodb").create_table(
        TableName="orders",
        KeySchema=[{"AttributeName": "sku", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "sku", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return url, arn


def run_demo(backend: str = "xray", out_dir: str = "out", examples: str | None = None) -> int:
    """Run the demo; returns the process exit code (0 when the trace is complete)."""
    from tracing import testing
    from tracing.local.collector.daemon import Collector
    from tracing.local.collector.service_graph import build_map
    from tracing.local.collector.store import TraceStore
    from tracing.local.collector.traces import assemble, summarize
    from tracing.local.runtime import LocalLambda
    from tracing.local.runtime.aws import LocalAWS
    from tracing.local.runtime.event_source import SQSEventSource
    from tracing.local.runtime.event_sources import EventBridgeRule
    from tracing.local.runtime.run import wait_quiet
    from tracing.local.views.service_map import render_map_html, render_map_text
    from tracing.local.views.terminal import print_trace_table, show_trace

    started = time.monotonic()
    apps = _find_examples(examples)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    db = out / "demo.sqlite3"
    for stale in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        stale.unlink(missing_ok=True)
    _step(
        f"backend {backend}; starting moto's HTTP server (SSM, SQS, DynamoDB, EventBridge) "
        "on 127.0.0.1"
    )
    with LocalAWS() as aws, TraceStore(db) as store, Collector("127.0.0.1:0", store) as collector:
        url, _ = _setup(aws)
        _step(f"collector listening on udp://{collector.address}, storing in {db}")
        common = {**aws.env, "TRACING_BACKEND": backend}
        api = LocalLambda(
            "app.handler",
            code_dir=apps / "orders_api",
            function_name="orders-api",
            env={**common, "QUEUE_URL": url},
            xray_daemon_address=collector.address,
        )
        worker = LocalLambda(
            "app.handler",
            code_dir=apps / "orders_worker",
            function_name="orders-worker",
            env={**common, "TABLE_NAME": "orders"},
            xray_daemon_address=collector.address,
        )
        notifier = LocalLambda(
            "app.handler",
            code_dir=apps / "orders_notifier",
            function_name="orders-notifier",
            env=common,
            xray_daemon_address=collector.address,
        )
        with api, worker, notifier:
            _step("orders-api cold start: awslambdaric imports app.py (reads config from SSM)")
            api.start()
            roots = []
            for order in (*ORDERS, {}):
                root = new_trace_id()
                roots.append(root)
                header = f"Root={root};Parent={new_id()};Sampled=1"
                result = api.invoke({"body": json.dumps(order)}, trace_header=header)
                outcome = result.payload if result.ok else result.error
                _step(f"orders-api {json.dumps(order)} -> {json.dumps(outcome)[:70]}")
            _step(
                "orders-worker gets the queue's messages through the local SQS event source "
                "mapping (one batch; Lineage counted as Lambda does)"
            )
            rule = EventBridgeRule(
                notifier, aws, pattern={"source": ["orders"], "detail-type": ["OrderStored"]}
            )
            source = SQSEventSource(worker, aws.client("sqs"), url, batch_size=len(ORDERS))
            delivery = source.deliver(max_batches=1)
            for result, _ in delivery.invocations:
                outcome = result.payload if result.ok else result.error
                _step(f"orders-worker -> {json.dumps(outcome)}")
            _step(
                "orders-notifier gets each OrderStored event through a local EventBridge rule "
                "(with the event's trace header)"
            )
            for result, _ in rule.deliver().invocations:
                outcome = result.payload if result.ok else result.error
                _step(f"orders-notifier -> {json.dumps(outcome)}")
        wait_quiet(collector)
        _step("traces in the store (`tracing traces --db out/demo.sqlite3`):")
        print_trace_table([summarize(store.documents(t)) for t in store.trace_ids(limit=20)])
        first = store.documents(roots[0])
        html = out / "demo-trace.html"
        _step(f"the first order's trace (`tracing show {roots[0]} --db {db}`):")
        show_trace(first, html=str(html))
        problems = [p for doc in store.documents(roots[0]) for p in testing.check_document(doc)]
        trace = assemble(first)
        service_map = build_map(assemble(store.documents(t)) for t in store.trace_ids(limit=100))
        map_html = out / "demo-map.html"
        _step(f"the service map of every trace (`tracing map --db {db} --html {map_html}`):")
        print(render_map_text(service_map))
        map_html.write_text(render_map_html(service_map, title="orders demo"), encoding="utf-8")
    names = {node.name for node in _walk(trace.roots)}
    complete = {"Init", "orders-worker", "dynamodb", "sqs", "## handler"} <= names
    complete = complete and "notify customer" in names and not problems
    _step(
        f"{'complete' if complete else 'INCOMPLETE'}: Init, SendMessage, the worker's "
        f"DynamoDB call and the notifier in one trace; open {html} in a browser; took "
        f"{time.monotonic() - started:.1f} s"
    )
    _step(f"the service map: open {map_html} in a browser (click a node to list its traces)")
    _step(
        f"browse and search them: `tracing ui --db {db}`, then http://127.0.0.1:8000/ "
        '(a filter box for X-Ray\'s expressions, e.g. annotation.sku = "book-1")'
    )
    return 0 if complete else 1


def _walk(nodes: Any) -> Any:
    for node in nodes:
        yield node
        yield from _walk(node.children)
