"""Kinesis and DynamoDB Streams event sources, locally.

`KinesisEventSource` and `DynamoDBStreamEventSource` poll a stream's shards
and invoke a `LocalLambda` with batches of records, with Lambda's checkpoints
and retries; their documented home, and what each hop does, is
`tracing.local.runtime.event_sources`.
"""

from __future__ import annotations

import base64
import datetime
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tracing._header import new_id, new_trace_id
from tracing.local.runtime.event_source import Delivery, describe_delivery

if TYPE_CHECKING:
    from tracing.local.runtime.local_lambda import InvokeResult, LocalLambda

__all__ = ["DynamoDBStreamEventSource", "KinesisEventSource"]

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
