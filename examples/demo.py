"""``make demo``: the example application, end to end, on this machine.

Everything is local: moto's HTTP server plays SSM, SQS and DynamoDB, a UDP
listener plays the X-Ray daemon, and our Runtime API server drives the real
``awslambdaric`` for each function in its own process:

1. ``orders-api`` reads its config from SSM at import (init work) and queues
   orders on SQS;
2. the queued messages are received and handed to ``orders-worker`` as the Lambda
   SQS event, exactly as Lambda builds it;
3. ``orders-worker`` stores them in DynamoDB with ``process_batch``; one poison
   order fails alone.

It then prints every trace as a tree: the deferred ``Init`` in the first
request's trace, and each order's processing by the worker inside the trace of
the request that queued it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from tracing import testing
from tracing._header import new_id, new_trace_id
from tracing.local.aws import LocalAWS
from tracing.local.runtime import LocalLambda

HERE = Path(__file__).parent
ORDERS = (
    {"sku": "book-1", "quantity": 1},
    {"sku": "pen-2", "quantity": 2},
    {"sku": "poison", "quantity": 0},
)


def _step(message: str) -> None:
    print(f"==> {message}", flush=True)


def _render(entity: dict[str, Any], depth: int = 0) -> list[str]:
    duration = (entity.get("end_time", entity["start_time"]) - entity["start_time"]) * 1000
    marks = []
    if entity.get("fault"):
        marks.append("FAULT")
    if entity.get("error"):
        marks.append("error")
    if "aws" in entity:
        marks.append(f"aws.operation={entity['aws'].get('operation')}")
    marks.extend(f"{k}={v}" for k, v in (entity.get("annotations") or {}).items())
    kind = "segment " if depth == 0 and entity.get("type") != "subsegment" else ""
    line = f"{'    ' * depth}{kind}{entity['name']}  {duration:.1f} ms  {' '.join(marks)}"
    lines = [line.rstrip()]
    for child in entity.get("subsegments", ()):
        lines.extend(_render(child, depth + 1))
    return lines


def _print_traces(docs: list[dict[str, Any]]) -> None:
    traces: dict[str, list[dict[str, Any]]] = {}
    for doc in sorted(docs, key=lambda d: d["start_time"]):
        traces.setdefault(doc["trace_id"], []).append(doc)
    for trace_id, documents in traces.items():
        print(f"\ntrace {trace_id}")
        for doc in documents:
            print("\n".join("  " + line for line in _render(doc)))


def _setup(aws: LocalAWS) -> tuple[str, str]:
    aws.client("ssm").put_parameter(
        Name="/orders/config", Value=json.dumps({"currency": "EUR"}), Type="String"
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


def _receive(aws: LocalAWS, url: str, count: int) -> list[dict[str, Any]]:
    sqs = aws.client("sqs")
    messages: list[dict[str, Any]] = []
    for _ in range(10):
        reply = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=1,
            MessageSystemAttributeNames=["All"],
        )
        messages.extend(reply.get("Messages", []))
        if len(messages) >= count:
            break
    return messages


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=("xray", "otel"), default="xray")
    args = parser.parse_args(argv)
    started = time.monotonic()
    _step(f"backend: {args.backend}")
    _step("starting moto's HTTP server (SSM, SQS, DynamoDB) on 127.0.0.1")
    with LocalAWS() as aws, testing.DaemonListener() as daemon:
        url, arn = _setup(aws)
        _step(f"X-Ray daemon stand-in listening on udp://{daemon.address}")
        api = LocalLambda(
            "app.handler",
            code_dir=HERE / "orders_api",
            function_name="orders-api",
            env={**aws.env, "QUEUE_URL": url, "TRACING_BACKEND": args.backend},
            xray_daemon_address=daemon.address,
        )
        worker = LocalLambda(
            "app.handler",
            code_dir=HERE / "orders_worker",
            function_name="orders-worker",
            env={**aws.env, "TABLE_NAME": "orders", "TRACING_BACKEND": args.backend},
            xray_daemon_address=daemon.address,
        )
        with api, worker:
            _step("orders-api cold start: awslambdaric imports app.py (reads config from SSM)")
            api.start()
            for order in (*ORDERS, {}):
                header = f"Root={new_trace_id()};Parent={new_id()};Sampled=1"
                result = api.invoke({"body": json.dumps(order)}, trace_header=header)
                outcome = result.payload if result.ok else result.error
                _step(f"orders-api {json.dumps(order)} -> {json.dumps(outcome)[:80]}")
            messages = _receive(aws, url, len(ORDERS))
            _step(f"received {len(messages)} messages; invoking orders-worker with the SQS event")
            event = testing.lambda_sqs_event(messages, queue_arn=arn)
            header = f"Root={new_trace_id()};Parent={new_id()};Sampled=1"
            result = worker.invoke(event, trace_header=header)
            _step(f"orders-worker -> {json.dumps(result.payload if result.ok else result.error)}")
            docs = daemon.settle()
    _step(f"{len(docs)} documents received; traces:")
    _print_traces(docs)
    problems = [p for doc in docs for p in testing.check_document(doc)]
    _step(f"wire-rule problems: {problems or 'none'}; took {time.monotonic() - started:.1f} s")
    has_init = any(d["name"] == "Init" for d in docs)
    producer_traces = {d["trace_id"] for d in docs if d["name"] == "## handler"}
    consumer_in_producer = [
        d for d in docs if d["name"] == "orders-worker" and d["trace_id"] in producer_traces
    ]
    return 0 if has_init and len(consumer_in_producer) == len(ORDERS) and not problems else 1


if __name__ == "__main__":
    sys.exit(main())
