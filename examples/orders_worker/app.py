"""orders-worker: consumes queued orders in batches and stores them in DynamoDB.

Each message's processing is recorded in the *producer's* trace (orders-api),
under the SendMessage call that queued it. Poison orders fail alone: the partial
batch response makes Lambda retry only them.
"""

from __future__ import annotations

import json
import os
from typing import Any

import boto3

import tracing

tracing.configure(service="orders-worker")

table = boto3.resource("dynamodb").Table(os.environ["TABLE_NAME"])


class PoisonOrderError(ValueError):
    """An order that can never be processed."""


def save(record: dict[str, Any]) -> None:
    """Store one order; raise for a poison one."""
    order = json.loads(record["body"])
    with tracing.span("save order", sku=order["sku"]):
        if order.get("quantity", 1) <= 0:
            raise PoisonOrderError(f"order {order['sku']} has quantity {order.get('quantity')}")
        table.put_item(Item={"sku": order["sku"], "quantity": order.get("quantity", 1)})


@tracing.handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Process an SQS batch; report failed messages individually."""
    return tracing.sqs.process_batch(event, save)
