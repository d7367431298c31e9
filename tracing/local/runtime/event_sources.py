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
"""

from __future__ import annotations

import base64
import datetime
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tracing._header import new_id, new_trace_id, parse
from tracing.local.runtime.event_source import (
    MAX_HOPS,
    Delivery,
    describe_delivery,
    lineage_count,
    next_lineage,
)

if TYPE_CHECKING:
    from tracing.local.runtime.aws import LocalAWS, RecordedEvent, RecordedNotification
    from tracing.local.runtime.local_lambda import InvokeResult, LocalLambda

__all__ = [
    "DynamoDBStreamEventSource",
    "EventBridgeRule",
    "KinesisEventSource",
    "SNSSubscription",
]

_STARTS = frozenset({"TRIM_HORIZON", "LATEST"})


def _new_header() -> str:
    return f"Root={new_trace_id()};Parent={new_id()};Sampled=1"


def _epoch(value: Any) -> Any:
    return round(value.timestamp(), 3) if isinstance(value, datetime.datetime) else value


def _jsonable(value: Any) -> Any:
    """boto3's parsed record as Lambda's JSON has it: bytes as base64, times as epoch seconds."""
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(item) for item in value]
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    return _epoch(value)


def _failures(result: InvokeResult, batch: list[str], report: bool) -> int:
    """How many leading records of ``batch`` (their sequence numbers) are done."""
    if not result.ok:
        return 0  # the whole batch is retried
    payload = result.payload
    items = payload.get("batchItemFailures") if report and isinstance(payload, dict) else None
    if not items:
        return len(batch)
    ids = [item.get("itemIdentifier") if isinstance(item, dict) else None for item in items]
    if any(i not in batch for i in ids):
        return 0  # an empty or unknown identifier fails the whole batch, as in Lambda
    return min(batch.index(str(i)) for i in ids)


@dataclass
class _Shard:
    iterator: str | None
    pending: list[dict[str, Any]] = field(default_factory=list)
    failures: int = 0


class _StreamEventSource:
    """Shared polling, checkpointing and retrying of Kinesis and DynamoDB Streams."""

    function: LocalLambda
    client: Any
    batch_size: int
    starting_position: str
    maximum_retry_attempts: int
    report_batch_item_failures: bool
    source_arn: str

    def _setup(self) -> None:
        if self.starting_position not in _STARTS:
            raise ValueError(f"starting_position must be one of {sorted(_STARTS)}")
        self._shards: dict[str, _Shard] = {}
        self._add_shards(self.starting_position)

    def _add_shards(self, position: str) -> None:
        for shard_id in self._shard_ids():
            if shard_id not in self._shards:
                self._shards[shard_id] = _Shard(self._iterator(shard_id, position))

    # Service specifics.
    def _shard_ids(self) -> list[str]:
        raise NotImplementedError

    def _iterator(self, shard_id: str, position: str) -> str | None:
        raise NotImplementedError

    def _records(self, shard_id: str, iterator: str) -> tuple[list[dict[str, Any]], str | None]:
        raise NotImplementedError

    def _sequence(self, record: dict[str, Any]) -> str:
        raise NotImplementedError

    def _fill(self, shard_id: str, shard: _Shard) -> list[dict[str, Any]]:
        while len(shard.pending) < self.batch_size and shard.iterator is not None:
            records, shard.iterator = self._records(shard_id, shard.iterator)
            shard.pending.extend(records)
            if not records:
                break
        return shard.pending[: self.batch_size]

    def deliver(self, *, max_batches: int = 100) -> Delivery:
        """Poll every shard and invoke until no shard has records (or ``max_batches``)."""
        delivery = Delivery()
        self._add_shards("TRIM_HORIZON")  # a shard created later is read from its start
        batches = 0
        while batches < max_batches:
            busy = False
            for shard_id, shard in self._shards.items():
                batch = self._fill(shard_id, shard)
                if not batch or batches >= max_batches:
                    continue
                busy, batches = True, batches + 1
                self._invoke(shard, batch, delivery)
            if not busy:
                break
        return delivery

    def _invoke(self, shard: _Shard, batch: list[dict[str, Any]], delivery: Delivery) -> None:
        header = _new_header()  # nothing upstream: Lambda starts a trace
        event = {"Records": batch}
        result = self.function.invoke(event, trace_header=header)
        delivery.invocations.append((result, header))
        delivery.events.append(event)
        done = _failures(
            result, [self._sequence(r) for r in batch], self.report_batch_item_failures
        )
        if done == len(batch):
            shard.pending, shard.failures = shard.pending[done:], 0
            return
        shard.pending = shard.pending[done:]  # the checkpoint: the lowest failed record
        shard.failures += 1
        limit = self.maximum_retry_attempts
        if limit >= 0 and shard.failures > limit:
            given_up = len(batch) - done
            delivery.discarded.extend(shard.pending[:given_up])
            shard.pending, shard.failures = shard.pending[given_up:], 0

    def describe(self, delivery: Delivery) -> str:
        """One line per invocation and discarded record, for a console."""
        return describe_delivery(delivery)


class KinesisEventSource(_StreamEventSource):
    """Deliver a Kinesis stream's records to a function, as Lambda's event source mapping does.

    Args:
        function: The function to invoke.
        client: A boto3 Kinesis client (``LocalAWS.client("kinesis")``).
        stream_name: The stream to read.
        batch_size: Most records per invocation (Lambda's default: 100).
        starting_position: ``"TRIM_HORIZON"`` (every record) or ``"LATEST"``
            (records put after this object was made).
        maximum_retry_attempts: Retries of a failing batch before it is
            discarded; -1 (Lambda's default) retries while ``max_batches`` allows.
        report_batch_item_failures: Honour ``batchItemFailures`` in the
            function's response (``FunctionResponseTypes=["ReportBatchItemFailures"]``);
            when False a returned response is a success.
    """

    def __init__(
        self,
        function: LocalLambda,
        client: Any,
        stream_name: str,
        *,
        batch_size: int = 100,
        starting_position: str = "TRIM_HORIZON",
        maximum_retry_attempts: int = -1,
        report_batch_item_failures: bool = True,
    ) -> None:
        self.function, self.client, self.stream_name = function, client, stream_name
        self.batch_size, self.starting_position = batch_size, starting_position
        self.maximum_retry_attempts = maximum_retry_attempts
        self.report_batch_item_failures = report_batch_item_failures
        summary = client.describe_stream_summary(StreamName=stream_name)
        self.source_arn = summary["StreamDescriptionSummary"]["StreamARN"]
        self.region = client.meta.region_name
        account = function.function_arn.split(":")[4]
        self.invoke_identity_arn = f"arn:aws:iam::{account}:role/{function.function_name}-role"
        self._setup()

    def _shard_ids(self) -> list[str]:
        shards = self.client.list_shards(StreamName=self.stream_name)["Shards"]
        return [shard["ShardId"] for shard in shards]

    def _iterator(self, shard_id: str, position: str) -> str | None:
        reply = self.client.get_shard_iterator(
            StreamName=self.stream_name, ShardId=shard_id, ShardIteratorType=position
        )
        iterator: str | None = reply.get("ShardIterator")
        return iterator

    def _records(self, shard_id: str, iterator: str) -> tuple[list[dict[str, Any]], str | None]:
        reply = self.client.get_records(ShardIterator=iterator, Limit=self.batch_size)
        return [self._record(shard_id, r) for r in reply["Records"]], reply.get("NextShardIterator")

    def _record(self, shard_id: str, record: dict[str, Any]) -> dict[str, Any]:
        sequence = record["SequenceNumber"]
        return {
            "kinesis": {
                "kinesisSchemaVersion": "1.0",
                "partitionKey": record["PartitionKey"],
                "sequenceNumber": sequence,
                "data": base64.b64encode(record["Data"]).decode(),
                "approximateArrivalTimestamp": _epoch(record["ApproximateArrivalTimestamp"]),
            },
            "eventSource": "aws:kinesis",
            "eventVersion": "1.0",
            "eventID": f"{shard_id}:{sequence}",
            "eventName": "aws:kinesis:record",
            "invokeIdentityArn": self.invoke_identity_arn,
            "awsRegion": self.region,
            "eventSourceARN": self.source_arn,
        }

    def _sequence(self, record: dict[str, Any]) -> str:
        return str(record["kinesis"]["sequenceNumber"])


class DynamoDBStreamEventSource(_StreamEventSource):
    """Deliver a table's stream records to a function, as Lambda's event source mapping does.

    Args:
        function: The function to invoke.
        client: A boto3 DynamoDB Streams client (``LocalAWS.client("dynamodbstreams")``).
        table_name: The table, whose latest stream is read.
        batch_size, starting_position, maximum_retry_attempts,
        report_batch_item_failures: As for `KinesisEventSource`.

    Raises:
        ValueError: The table has no stream.
    """

    def __init__(
        self,
        function: LocalLambda,
        client: Any,
        table_name: str,
        *,
        batch_size: int = 100,
        starting_position: str = "TRIM_HORIZON",
        maximum_retry_attempts: int = -1,
        report_batch_item_failures: bool = True,
    ) -> None:
        self.function, self.client, self.table_name = function, client, table_name
        self.batch_size, self.starting_position = batch_size, starting_position
        self.maximum_retry_attempts = maximum_retry_attempts
        self.report_batch_item_failures = report_batch_item_failures
        streams = client.list_streams(TableName=table_name).get("Streams", [])
        if not streams:
            raise ValueError(f"table {table_name!r} has no stream (StreamSpecification)")
        self.source_arn = streams[-1]["StreamArn"]
        self._setup()

    def _shard_ids(self) -> list[str]:
        stream = self.client.describe_stream(StreamArn=self.source_arn)["StreamDescription"]
        return [shard["ShardId"] for shard in stream["Shards"]]

    def _iterator(self, shard_id: str, position: str) -> str | None:
        reply = self.client.get_shard_iterator(
            StreamArn=self.source_arn, ShardId=shard_id, ShardIteratorType=position
        )
        iterator: str | None = reply.get("ShardIterator")
        return iterator

    def _records(self, shard_id: str, iterator: str) -> tuple[list[dict[str, Any]], str | None]:
        reply = self.client.get_records(ShardIterator=iterator, Limit=self.batch_size)
        records = [{**_jsonable(r), "eventSourceARN": self.source_arn} for r in reply["Records"]]
        return records, reply.get("NextShardIterator")

    def _sequence(self, record: dict[str, Any]) -> str:
        return str(record["dynamodb"]["SequenceNumber"])


def _async_invoke(
    function: LocalLambda, event: Any, header: str, retries: int, delivery: Delivery
) -> None:
    for _ in range(retries + 1):
        result = function.invoke(event, trace_header=header)
        delivery.invocations.append((result, header))
        delivery.events.append(event)
        if result.ok:
            return


class SNSSubscription:
    """A function subscribed to an SNS topic of a `LocalAWS`.

    Messages published to the topic after this object is made are delivered,
    one per invocation, in the event Lambda builds, with the ``Publish``
    request's trace header continued and its ``Lineage`` counted.

    Args:
        function: The function to invoke.
        aws: The `LocalAWS` the topic lives in (its journal records publishes).
        topic_arn: The topic.
        max_hops: Invocations of the function in one chain before the next is stopped.
        maximum_retry_attempts: Retries of a failed invocation (0-2; Lambda's default 2).
    """

    def __init__(
        self,
        function: LocalLambda,
        aws: LocalAWS,
        topic_arn: str,
        *,
        max_hops: int = MAX_HOPS,
        maximum_retry_attempts: int = 2,
    ) -> None:
        self.function, self.aws, self.topic_arn = function, aws, topic_arn
        self.max_hops, self.maximum_retry_attempts = max_hops, maximum_retry_attempts
        self.subscription_arn = f"{topic_arn}:{uuid.uuid4()}"
        self._cursor = len(aws.journal.notifications)

    def deliver(self, *, max_invocations: int = 100) -> Delivery:
        """Deliver every message published since the last call, including those
        published meanwhile by the function itself (or ``max_invocations``)."""
        delivery = Delivery()
        while len(delivery.invocations) < max_invocations:
            fresh = self.aws.journal.notifications_since(self._cursor)
            if not fresh:
                break
            for note in fresh:
                self._cursor += 1
                if note.topic_arn == self.topic_arn:
                    self._one(note, delivery)
                if len(delivery.invocations) >= max_invocations:
                    break
        return delivery

    def _one(self, note: RecordedNotification, delivery: Delivery) -> None:
        arn = self.function.function_arn
        event = self.event(note)
        count, pairs = lineage_count(note.trace_header, arn)
        if count >= self.max_hops:
            delivery.stopped.append(event)  # RecursiveInvocationException
            return
        upstream = parse(note.trace_header)
        root = upstream.root if upstream is not None else new_trace_id()
        parent = upstream.parent if upstream is not None and upstream.parent else new_id()
        sampled = upstream.sampled if upstream is not None and upstream.sampled else "1"
        extra = [
            (k, v) for k, v in (upstream.extra if upstream is not None else ()) if k != "Lineage"
        ]
        extra.append(("Lineage", next_lineage(pairs, arn, count)))
        header = ";".join(
            [f"Root={root}", f"Parent={parent}", f"Sampled={sampled}"]
            + [f"{k}={v}" for k, v in extra]
        )
        _async_invoke(self.function, event, header, self.maximum_retry_attempts, delivery)

    def event(self, note: RecordedNotification) -> dict[str, Any]:
        """The Lambda event for one published message."""
        message = note.message
        if note.message_structure == "json":
            try:
                parts = json.loads(message)
                message = parts.get("lambda", parts.get("default", message))
            except (ValueError, AttributeError):
                pass
        region = self.topic_arn.split(":")[3]
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(note.timestamp))
        millis = int(note.timestamp * 1000) % 1000
        attributes = {
            name: {"Type": value.get("Type"), "Value": value.get("Value")}
            for name, value in note.message_attributes.items()
            if isinstance(value, dict)
        }
        return {
            "Records": [
                {
                    "EventSource": "aws:sns",
                    "EventVersion": "1.0",
                    "EventSubscriptionArn": self.subscription_arn,
                    "Sns": {
                        "Type": "Notification",
                        "MessageId": note.message_id,
                        "TopicArn": note.topic_arn,
                        "Subject": note.subject,
                        "Message": message,
                        "Timestamp": f"{stamp}.{millis:03d}Z",
                        "SignatureVersion": "1",
                        "Signature": base64.b64encode(b"local, unsigned").decode(),
                        "SigningCertUrl": (
                            f"https://sns.{region}.amazonaws.com/SimpleNotificationService-local.pem"
                        ),
                        "UnsubscribeUrl": (
                            f"https://sns.{region}.amazonaws.com/?Action=Unsubscribe"
                            f"&SubscriptionArn={self.subscription_arn}"
                        ),
                        "MessageAttributes": attributes,
                    },
                }
            ]
        }

    def describe(self, delivery: Delivery) -> str:
        """One line per invocation and stop, for a console."""
        return describe_delivery(delivery)


class EventBridgeRule:
    """A rule on an event bus of a `LocalAWS` whose target is a function.

    Events put on the bus after this object is made and matching ``pattern``
    (EventBridge's event-pattern syntax, matched by moto's matcher) are
    delivered, one per invocation, with the event's trace header unchanged.

    Args:
        function: The function to invoke.
        aws: The `LocalAWS` whose ``PutEvents`` are delivered.
        pattern: The event pattern, a dict (``{"source": ["orders"]}``).
        bus: The event bus's name.
        maximum_retry_attempts: Retries of a failed invocation (0-2; Lambda's default 2).
    """

    def __init__(
        self,
        function: LocalLambda,
        aws: LocalAWS,
        *,
        pattern: dict[str, Any],
        bus: str = "default",
        maximum_retry_attempts: int = 2,
    ) -> None:
        from moto.events.models import EventPattern

        self.function, self.aws, self.bus = function, aws, bus
        self.pattern, self.maximum_retry_attempts = pattern, maximum_retry_attempts
        self._matcher = EventPattern.load(json.dumps(pattern))
        self._cursor = len(aws.journal.events)

    def matches(self, recorded: RecordedEvent) -> bool:
        """Whether the rule delivers this recorded event."""
        return recorded.bus == self.bus and bool(self._matcher.matches_event(dict(recorded.event)))  # type: ignore[arg-type]

    def deliver(self, *, max_invocations: int = 100) -> Delivery:
        """Deliver every matching event put since the last call, including those put
        meanwhile by the function itself (or ``max_invocations``)."""
        delivery = Delivery()
        while len(delivery.invocations) < max_invocations:
            fresh = self.aws.journal.events_since(self._cursor)
            if not fresh:
                break
            for recorded in fresh:
                self._cursor += 1
                if self.matches(recorded):
                    header = recorded.trace_header or _new_header()
                    event = dict(recorded.event)
                    retries = self.maximum_retry_attempts
                    _async_invoke(self.function, event, header, retries, delivery)
                if len(delivery.invocations) >= max_invocations:
                    break
        return delivery

    def describe(self, delivery: Delivery) -> str:
        """One line per invocation, for a console."""
        return describe_delivery(delivery)
