"""orders-api: reads its config from SSM at import, then serves orders.

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
with tracing.span("load config", source="ssm"):
    CONFIG = json.loads(
        ssm.get_parameter(Name=os.environ.get("CONFIG_PARAMETER", "/orders/config"))["Parameter"][
            "Value"
        ]
    )
# An AWS call outside any span is recorded too, straight under Init.
REGION_PARAMETERS = ssm.describe_parameters(MaxResults=1)


@tracing.handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Accept an order and echo the configured currency."""
    order = json.loads(event.get("body") or "{}")
    with tracing.span("validate order", currency=CONFIG["currency"]):
        if not order.get("sku"):
            raise ValueError("order has no sku")
    tracing.annotate("sku", order["sku"])
    return {"statusCode": 202, "body": json.dumps({"accepted": order["sku"]})}
