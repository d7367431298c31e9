"""A function that uses S3, SQS and DynamoDB, named by its environment variables.

Run it with no AWS account: ``tracing run app.handler --event event.json
--env-file .env --aws local --aws-setup setup_aws.py`` (see the README).
"""

from __future__ import annotations

import json
import os
from typing import Any

import boto3

import tracing

tracing.configure()

BUCKET = os.environ["BUCKET"]
QUEUE_URL = os.environ["QUEUE_URL"]
TABLE = os.environ["TABLE"]

s3 = boto3.client("s3")
sqs = boto3.client("sqs")
table = boto3.resource("dynamodb").Table(TABLE)


@tracing.handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Store an order in S3 and DynamoDB, then queue it."""
    order_id = event["order_id"]
    body = json.dumps(event)
    s3.put_object(Bucket=BUCKET, Key=f"orders/{order_id}.json", Body=body.encode())
    table.put_item(Item={"order_id": order_id, "sku": event["sku"]})
    sent = sqs.send_message(QueueUrl=QUEUE_URL, MessageBody=body)
    return {"order_id": order_id, "message_id": sent["MessageId"]}
