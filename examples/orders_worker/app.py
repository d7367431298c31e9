"""orders-worker: consumes queued orders in batches, stores them in DynamoDB and
announces each stored order on EventBridge.

Each message's processing is recorded in the *producer's* trace (orders-api),
under the SendMessage call that queued it; the ``OrderStored`` event carries that
trace on (its ``TraceHeader``, filled by the library), so orders-notifier's work
lands in it too. Poison orders fail alone: the partial batch response makes
Lambda retry only them.
"""

from __future__ import annotations

import json
import os
from typing import Any

import boto3

import tracing

tracing.configure(service="orders-worker")

table = boto3.resource("dynamodb").Table(os.environ["TABLE_NAME"])
events = boto3.client("events")


class PoisonOrderError(ValueError):
    """An order that can never be processed."""


def save(record: dict[str, Any]) -> None:
    """Store one order; raise for a poison one."""
    order = json.loads(record["body"])
    with tracing.span("save order", sku=order["sku"]):
        if order.get("quantity", 1) <= 0:
            raise PoisonOrderError(f"order {order['sku']} has quantity {order.get('quantity')}")
        table.put_item(Item={"sku": order["sku"], "quantity": order.get("quantity", 1)})
    events.put_events(
        Entries=[
            {
                "Source": "orders",
                "DetailType": "OrderStored",
                "Detail": json.dumps({"sku": order["sku"]}),
                "EventBusName": os.environ.get("EVENT_BUS", "default"),
            }
        ]
    )


@tracing.handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Process an SQS batch; report failed messages individually."""
    return tracing.sqs.process_batch(event, save)
