"""orders-api: reads its config from SSM at import, then queues orders on SQS.

Deployable as is (see ``examples/template.yaml``); locally, ``make demo`` runs it
in the real ``awslambdaric`` runtime against moto's HTTP server.
"""

from __future__ import annotations

import json
import os
from typing import Any

import boto3

import tracing

tracing.configure(service="orders-api")

# Init-phase work: runs once per execution environment, before any request.
# aws-xray-sdk alone discards all of it; tracing replays it into the first
# invocation's trace as the "Init" subsegment.
ssm = boto3.client("ssm")
sqs = boto3.client("sqs")
with tracing.span("load config", source="ssm"):
    CONFIG = json.loads(
        ssm.get_parameter(Name=os.environ.get("CONFIG_PARAMETER", "/orders/config"))["Parameter"][
            "Value"
        ]
    )
QUEUE_URL = os.environ["QUEUE_URL"]


@tracing.handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Validate an order and queue it; the message carries this trace."""
    order = json.loads(event.get("body") or "{}")
    with tracing.span("validate order", currency=CONFIG["currency"]):
        if not order.get("sku"):
            return {"statusCode": 400, "body": json.dumps({"error": "order has no sku"})}
    tracing.annotate("sku", order["sku"])
    sent = sqs.send_message(QueueUrl=QUEUE_URL, MessageBody=json.dumps(order))
    return {"statusCode": 202, "body": json.dumps({"messageId": sent["MessageId"]})}
