"""Creates what app.py expects, in the local AWS of ``tracing run --aws local``.

It runs before the function starts, with the function's environment (the
``--env-file`` values, the local endpoint, dummy credentials and the region).
"""

import os

import boto3

boto3.client("s3").create_bucket(Bucket=os.environ["BUCKET"])
boto3.client("sqs").create_queue(QueueName=os.environ["QUEUE_URL"].rsplit("/", 1)[-1])
boto3.client("dynamodb").create_table(
    TableName=os.environ["TABLE"],
    KeySchema=[{"AttributeName": "order_id", "KeyType": "HASH"}],
    AttributeDefinitions=[{"AttributeName": "order_id", "AttributeType": "S"}],
    BillingMode="PAY_PER_REQUEST",
)
