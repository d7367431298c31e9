"""Lambda-shaped test inputs: a context with a deadline, SQS events, and a reset."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from .._runtime import get_runtime, set_runtime
from .._scope import STACK

__all__ = ["FakeContext", "lambda_sqs_event", "receive_messages", "reset", "trace_header"]


def reset() -> None:
    """Forget the configuration and any open spans, so ``configure()`` runs anew.

    Library instrumentation already installed (the botocore patch) stays in place,
    as it would in a real process.
    """
    runtime = get_runtime()
    if runtime is not None:
        runtime.emitter.close()
        runtime.backend.close()
    set_runtime(None)
    STACK.set(())


def trace_header(sampled: bool = True, **extra: str) -> str:
    """A fresh trace header, as Lambda sets ``_X_AMZN_TRACE_ID`` for an invocation.

    A new trace id (its time part now) and parent id each call; ``extra`` keys are
    appended as they are (``trace_header(Lineage="a87bd80c:1")``).
    """
    from .._header import new_id, new_trace_id

    text = f"Root={new_trace_id()};Parent={new_id()};Sampled={1 if sampled else 0}"
    return text + "".join(f";{key}={value}" for key, value in extra.items())


@dataclass
class FakeContext:
    """A Lambda context with a real deadline and the attributes Lambda's has.

    Other libraries read them (OTel's Lambda instrumentation reads
    ``invoked_function_arn``, Powertools ``function_name`` and
    ``memory_limit_in_mb``...), so the test context carries all of them.

    Args:
        timeout_ms: Milliseconds left when the context is created.
    """

    timeout_ms: float = 3000.0
    function_name: str = "test-function"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 128
    invoked_function_arn: str = ""
    log_group_name: str = ""
    log_stream_name: str = "2026/01/01/[$LATEST]00000000000000000000000000000000"
    identity: Any = None
    client_context: Any = None

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_ms / 1000.0
        if not self.invoked_function_arn:
            self.invoked_function_arn = (
                f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"
            )
        if not self.log_group_name:
            self.log_group_name = f"/aws/lambda/{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds until the deadline, never negative."""
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def lambda_sqs_event(
    messages: list[dict[str, Any]],
    queue_arn: str = "arn:aws:sqs:us-east-1:123456789012:queue",
) -> dict[str, Any]:
    """Build the Lambda SQS event for ``ReceiveMessage`` messages, as Lambda does.

    Lambda's event source mapping renames the fields of each received message
    (``MessageId`` -> ``messageId``, ``Attributes`` -> ``attributes``, message
    attribute values to ``stringValue``/``dataType``...). Use it to feed messages
    received from a real (or moto) queue to a consumer handler in tests.
    """
    region = queue_arn.split(":")[3] if queue_arn.count(":") >= 5 else "us-east-1"
    records = []
    for message in messages:
        attributes = {
            name: {
                "stringValue": value.get("StringValue"),
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": value.get("DataType", "String"),
            }
            for name, value in (message.get("MessageAttributes") or {}).items()
        }
        records.append(
            {
                "messageId": message["MessageId"],
                "receiptHandle": message.get("ReceiptHandle", ""),
                "body": message.get("Body", ""),
                "attributes": dict(message.get("Attributes") or {}),
                "messageAttributes": attributes,
                "md5OfBody": message.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
        )
    return {"Records": records}


def receive_messages(
    client: Any, queue_url: str, count: int, *, attempts: int = 20
) -> list[dict[str, Any]]:
    """Receive up to ``count`` messages with every attribute, in bounded attempts.

    ``client`` is a boto3 SQS client; each attempt long-polls for one second.
    Pair it with :func:`lambda_sqs_event` to feed a consumer handler.
    """
    messages: list[dict[str, Any]] = []
    for _ in range(attempts):
        reply = client.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=1,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages.extend(reply.get("Messages", []))
        if len(messages) >= count:
            break
    return messages
