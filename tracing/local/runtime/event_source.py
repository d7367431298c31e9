"""Lambda's SQS event source mapping, locally, with its recursive-loop detection.

`SQSEventSource` polls a queue (moto's, through `tracing.local.runtime.aws.LocalAWS`)
and invokes a `LocalLambda` with batches of messages, as Lambda's event source
mapping does: the event is built the way Lambda builds it, successfully
processed messages are deleted, and ``batchItemFailures`` are left on the queue.

**Loop detection.** Lambda stops a Lambda -> SQS/SNS/S3 -> same-Lambda loop: "If
your function is invoked approximately 16 times in the same chain of requests,
then Lambda automatically stops the next function invocation in that request
chain" (AWS docs, "Use Lambda recursive loop detection to prevent infinite
loops"). It counts with the ``Lineage`` key of the X-Ray trace header: each
invocation's ``_X_AMZN_TRACE_ID`` carries it, every AWS SDK call passes it on
(botocore copies it into ``X-Amzn-Trace-Id``; SQS stores that as the message's
``AWSTraceHeader``), and the next invocation is counted from the message. The
real value is opaque (AWS documents no format); this simulation writes
``Lineage=<function hash>:<invocations>`` pairs joined by ``|``, the form of the
documentation's examples, and stops the delivery that would be a function's
17th invocation in the chain. The stopped messages are reported (and, like
Lambda after the queue's ``maxReceiveCount``, moved to the dead-letter queue
when one is given).

A tracer that replaced the trace header and dropped ``Lineage`` would reset the
count at every hop: the loop would run on, and bill on.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from tracing._header import new_id, new_trace_id, parse
from tracing.local.runtime.local_lambda import InvokeResult, LocalLambda
from tracing.testing import lambda_sqs_event

__all__ = [
    "MAX_HOPS",
    "Delivery",
    "SQSEventSource",
    "describe_delivery",
    "lineage_count",
    "next_lineage",
]

#: Invocations of one function in one chain before Lambda stops the next.
MAX_HOPS = 16


def _function_hash(function_arn: str) -> str:
    return hashlib.sha256(function_arn.encode()).hexdigest()[:8]


def _pairs(lineage: str) -> dict[str, int]:
    pairs: dict[str, int] = {}
    for item in lineage.split("|"):
        name, _, count = item.partition(":")
        if name and count.isdigit():
            pairs[name] = int(count)
    return pairs


def lineage_count(trace_header: str | None, function_arn: str) -> tuple[int, dict[str, int]]:
    """How many times the chain of ``trace_header`` already invoked the function.

    Returns:
        The count, and every function's count in the chain.
    """
    header = parse(trace_header)
    lineage = dict(header.extra).get("Lineage", "") if header is not None else ""
    pairs = _pairs(lineage)
    return pairs.get(_function_hash(function_arn), 0), pairs


def next_lineage(pairs: dict[str, int], function_arn: str, count: int) -> str:
    """The ``Lineage`` value of the function's next invocation in a chain.

    Args:
        pairs: Every function's count in the chain so far (from `lineage_count`).
        function_arn: The function about to be invoked.
        count: Its count so far; the invocation makes it ``count + 1``.
    """
    pairs = {**pairs, _function_hash(function_arn): count + 1}
    return "|".join(f"{name}:{n}" for name, n in pairs.items())


@dataclass
class Delivery:
    """What one ``deliver`` call of a local event source did."""

    #: One entry per invocation: its result and the trace header it was given.
    invocations: list[tuple[InvokeResult, str]] = field(default_factory=list)
    #: Messages not delivered because their chain reached the limit.
    stopped: list[dict[str, Any]] = field(default_factory=list)
    #: The event of each invocation, in the order of ``invocations``.
    events: list[Any] = field(default_factory=list)
    #: Stream records given up after their batch's last retry.
    discarded: list[dict[str, Any]] = field(default_factory=list)


def describe_delivery(delivery: Delivery) -> str:
    """One line per invocation, stop and discarded record, for a console."""
    lines = []
    for index, (result, header) in enumerate(delivery.invocations, 1):
        lineage = header.rpartition("Lineage=")[2] if "Lineage=" in header else "-"
        outcome = "ok" if result.ok else json.dumps(result.error)[:80]
        lines.append(f"invocation {index}: Lineage={lineage} {outcome}")
    for message in delivery.stopped:
        name = message.get("MessageId") or message.get("id") or "?"
        lines.append(f"stopped message {name}: recursive loop detected")
    for record in delivery.discarded:
        name = record.get("eventID", "?")
        lines.append(f"discarded record {name}: retries exhausted")
    return "\n".join(lines)


class SQSEventSource:
    """Deliver a queue's messages to a function, as Lambda's event source mapping does.

    Args:
        function: The function to invoke.
        client: A boto3 SQS client (``LocalAWS.client("sqs")``).
        queue_url: The queue to poll.
        batch_size: Most messages per invocation.
        dead_letter_url: Where stopped messages go; deleted when None.
        max_hops: Invocations of the function in one chain before the next is stopped.
    """

    def __init__(
        self,
        function: LocalLambda,
        client: Any,
        queue_url: str,
        *,
        batch_size: int = 1,
        dead_letter_url: str | None = None,
        max_hops: int = MAX_HOPS,
    ) -> None:
        self.function = function
        self.client = client
        self.queue_url = queue_url
        self.batch_size = batch_size
        self.dead_letter_url = dead_letter_url
        self.max_hops = max_hops
        arn = client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
        self.queue_arn = arn["Attributes"]["QueueArn"]

    def deliver(self, *, max_batches: int = 100, wait_s: int = 1) -> Delivery:
        """Poll and invoke until the queue is empty (or ``max_batches`` were seen)."""
        delivery = Delivery()
        for _ in range(max_batches):
            reply = self.client.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=self.batch_size,
                WaitTimeSeconds=wait_s,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            messages = reply.get("Messages", [])
            if not messages:
                return delivery
            self._batch(messages, delivery)
        return delivery

    def _batch(self, messages: list[dict[str, Any]], delivery: Delivery) -> None:
        arn = self.function.function_arn
        counted = [
            (m, *lineage_count((m.get("Attributes") or {}).get("AWSTraceHeader"), arn))
            for m in messages
        ]
        runnable = []
        for message, count, _ in counted:
            if count >= self.max_hops:
                delivery.stopped.append(message)  # RecursiveInvocationException
                self._dead_letter(message)
            else:
                runnable.append((message, count))
        if not runnable:
            return
        count = max(c for _, c in runnable)
        pairs = max((p for _, c, p in counted if c == count), key=len, default={})
        lineage = next_lineage(pairs, arn, count)
        header = f"Root={new_trace_id()};Parent={new_id()};Sampled=1;Lineage={lineage}"
        batch = [m for m, _ in runnable]
        event = lambda_sqs_event(batch, queue_arn=self.queue_arn)
        result = self.function.invoke(event, trace_header=header)
        delivery.invocations.append((result, header))
        delivery.events.append(event)
        failed = set()
        if result.ok and isinstance(result.payload, dict):
            items = result.payload.get("batchItemFailures") or []
            failed = {i.get("itemIdentifier") for i in items if isinstance(i, dict)}
        elif not result.ok:
            failed = {m["MessageId"] for m in batch}  # the whole batch comes back
        for message in batch:
            if message["MessageId"] not in failed:
                self.client.delete_message(
                    QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
                )

    def _dead_letter(self, message: dict[str, Any]) -> None:
        if self.dead_letter_url is not None:
            self.client.send_message(
                QueueUrl=self.dead_letter_url,
                MessageBody=message.get("Body", ""),
                MessageAttributes=message.get("MessageAttributes") or {},
            )
        self.client.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def describe(self, delivery: Delivery) -> str:
        """One line per invocation and stop, for a console."""
        return describe_delivery(delivery)
