"""Lambda's other event sources, locally: Kinesis, DynamoDB Streams, SNS, EventBridge.

Each delivers to a `LocalLambda` the event Lambda would build, with Lambda's
batch semantics, and gives the function the trace header Lambda would give it.
Like `tracing.local.runtime.event_source.SQSEventSource`, each has ``deliver()``
returning a `Delivery` and ``describe(delivery)``.

What AWS does at each hop, and so what these do:

* **Kinesis and DynamoDB Streams** records carry no trace context, so every
  invocation starts a new trace (``Root=<new>;Parent=<new>;Sampled=1``) with
  no ``Lineage``: Lambda's recursive-loop detection covers SQS, SNS, S3 and
  Lambda only, and says a loop through another service (DynamoDB is its
  example) is not detected. A shard's batches run in order, one at a time.
  With ``batchItemFailures`` (``ReportBatchItemFailures``) the next batch
  restarts at the lowest failed sequence number (the checkpoint); a failed
  invocation (an error, a timeout) retries the whole batch. After
  ``maximum_retry_attempts`` consecutive failed invocations of a shard the
  failing batch is discarded (reported in ``Delivery.discarded``, as Lambda
  sends it to an on-failure destination) and the shard moves on; -1, Lambda's
  default, retries until ``max_batches``. Not simulated: bisecting, windows,
  parallelization factor, record expiry.
* **SNS** passes the publisher's trace context (the ``Publish`` request's
  ``X-Amzn-Trace-Id``, recorded by `LocalAWS`) to a Lambda subscriber, which
  continues that trace (its ``Root``, ``Parent`` and ``Sampled``). Loop
  detection covers SNS, so ``Lineage`` is counted as for SQS, and the 17th
  invocation of a function in a chain is stopped (``Delivery.stopped``).
* **EventBridge** passes an event's trace header (the ``PutEvents`` entry's
  ``TraceHeader``, else the request's header) to its target. Loop detection
  does not cover EventBridge: the header is given unchanged, ``Lineage``
  included and not counted.

SNS and EventBridge invoke Lambda asynchronously: one message or event per
invocation, and a failed invocation is retried up to ``maximum_retry_attempts``
times (Lambda's default for asynchronous invocation: 2), at once rather than
after Lambda's back-off.

This module is where they are imported from; the stream sources are written in
`~tracing.local.runtime._streams`, SNS and EventBridge in
`~tracing.local.runtime._notifications`.
"""

from __future__ import annotations

from tracing.local.runtime._notifications import EventBridgeRule, SNSSubscription
from tracing.local.runtime._streams import DynamoDBStreamEventSource, KinesisEventSource

__all__ = [
    "DynamoDBStreamEventSource",
    "EventBridgeRule",
    "KinesisEventSource",
    "SNSSubscription",
]
