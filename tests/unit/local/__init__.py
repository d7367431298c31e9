"""Tests of the local tools; :func:`realistic_documents` is shared with the e2e tests.

The documents mirror what ``make demo`` collects (same names, fields and nesting):
the deferred ``Init`` and the ``## handler`` invocation as independent subsegments
of Lambda's function segment, and the worker's consumer segment whose parent is the
producer's ``SendMessage`` subsegment.
"""

from __future__ import annotations

import time
from typing import Any

FUNCTION_SEGMENT = "f73a44bbcd85f993"
INIT = "20fbdefad160e2bf"
HANDLER = "2c988cbd80d68bb1"
SEND = "7bfe08e8e512a05e"  # SendMessage subsegment of the first message
CONSUMER = "2302ea7fd9e8a5bd"  # orders-worker segment processing the first message
WORKER_TRACE = "1-5f84c7a1-0f1e2d3c4b5a69788796a5b4"  # the worker's batch invocation


def _hex(seed: int) -> str:
    return f"{(seed * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF:016x}"


def _aws_call(
    entity_id: str, service: str, operation: str, start: float, end: float, **aws: Any
) -> dict[str, Any]:
    return {
        "id": entity_id,
        "name": service,
        "start_time": start,
        "end_time": end,
        "namespace": "aws",
        "http": {"response": {"status": 200}},
        "aws": {"operation": operation, "region": "us-east-1", "request_id": "req-" + entity_id}
        | aws,
    }


def realistic_documents(
    start: float | None = None,
    *,
    messages: int = 1,
    poison_last: bool = False,
    function_segment: bool = False,
) -> list[dict[str, Any]]:
    """The documents of one orders-api trace, in the order the collector gets them.

    Args:
        start: When init began (epoch seconds); default one second ago.
        messages: Orders sent by the invocation; each is processed by a consumer
            segment of ``orders-worker`` under its ``SendMessage`` subsegment.
        poison_last: The last message's processing fails (fault with a cause).
        function_segment: Include Lambda's own function segment (as in AWS), the
            parent of Init and of the invocation; without it (as locally) they are
            orphans.
    """
    t0 = time.time() - 1.0 if start is None else start
    trace_id = f"1-{int(t0):08x}-0c0b0ea6e00b2feb16b859d9"
    init = {
        "trace_id": trace_id,
        "id": INIT,
        "parent_id": FUNCTION_SEGMENT,
        "type": "subsegment",
        "name": "Init",
        "start_time": t0,
        "end_time": t0 + 0.125,
        "annotations": {"ColdStart": True, "InitType": "on-demand"},
        "subsegments": [
            {
                "id": "77d17b5dca8b103b",
                "name": "load config",
                "start_time": t0 + 0.117,
                "end_time": t0 + 0.1252,
                "annotations": {"source": "ssm"},
                "subsegments": [
                    _aws_call("4e1aac1402b89119", "ssm", "GetParameter", t0 + 0.1171, t0 + 0.125)
                ],
            }
        ],
    }
    h0 = t0 + 0.41
    sends = []
    for index in range(messages):
        send_id = SEND if index == 0 else _hex(100 + index)
        s0 = h0 + 0.0005 + index * 0.006
        sends.append(
            _aws_call(
                send_id,
                "sqs",
                "SendMessage",
                s0,
                s0 + 0.0055,
                queue_url="http://127.0.0.1:41781/123456789012/orders",
                message_id=f"5de22e5e-a116-413f-a7ff-4c89f1e466{index:02x}",
            )
        )
    handler = {
        "trace_id": trace_id,
        "id": HANDLER,
        "parent_id": FUNCTION_SEGMENT,
        "type": "subsegment",
        "name": "## handler",
        "start_time": h0,
        "end_time": h0 + 0.001 + messages * 0.006,
        "annotations": {"ColdStart": True, "Service": "orders-api", "sku": "book-1"},
        "metadata": {"orders-api": {"order": {"sku": "book-1", "quantity": 1}}},
        "subsegments": [
            {
                "id": "afcca9fc23f59f93",
                "name": "validate order",
                "start_time": h0 + 0.0001,
                "end_time": h0 + 0.0003,
                "annotations": {"currency": "EUR"},
            },
            *sends,
        ],
    }
    documents = [init, handler]
    for index, send in enumerate(sends):
        c0 = send["end_time"] + 0.02 + index * 0.004
        consumer_id = CONSUMER if index == 0 else _hex(200 + index)
        failed = poison_last and index == messages - 1
        work: dict[str, Any] = {
            "id": _hex(300 + index),
            "name": "save order",
            "start_time": c0 + 0.0001,
            "end_time": c0 + (0.0012 if failed else 0.0073),
            "annotations": {"sku": "poison" if failed else "book-1"},
        }
        if failed:
            work["fault"] = True
        else:
            work["subsegments"] = [
                _aws_call(
                    _hex(400 + index),
                    "dynamodb",
                    "PutItem",
                    c0 + 0.0002,
                    c0 + 0.0071,
                    table_name="orders",
                )
            ]
        consumer: dict[str, Any] = {
            "trace_id": trace_id,
            "id": consumer_id,
            "parent_id": send["id"],
            "name": "orders-worker",
            "start_time": c0,
            "end_time": c0 + (0.0013 if failed else 0.0074),
            "annotations": {
                "MessageId": send["aws"]["message_id"],
                "Queue": "orders",
                "LinkedTraceId": WORKER_TRACE,
            },
            "subsegments": [work],
        }
        if failed:
            consumer["fault"] = True
            consumer["cause"] = {
                "working_directory": "/var/task",
                "exceptions": [
                    {
                        "id": _hex(500 + index),
                        "type": "PoisonOrderError",
                        "message": "order poison has quantity 0",
                        "stack": [{"path": "/var/task/app.py", "line": 32, "label": "save"}],
                    }
                ],
            }
        documents.append(consumer)
    if function_segment:
        documents.insert(
            0,
            {
                "trace_id": trace_id,
                "id": FUNCTION_SEGMENT,
                "name": "orders-api",
                "origin": "AWS::Lambda::Function",
                "start_time": t0,
                "end_time": handler["end_time"] + 0.0004,
                "aws": {
                    "function_arn": "arn:aws:lambda:us-east-1:123456789012:function:orders-api"
                },
            },
        )
    return documents
