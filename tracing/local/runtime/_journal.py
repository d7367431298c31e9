"""What a `~tracing.local.runtime.aws.LocalAWS` server received for local targets.

`AWSJournal` records EventBridge events (`RecordedEvent`) and SNS messages
(`RecordedNotification`) with their trace headers, and Step Functions
executions' trace headers; the local event sources deliver from it. Re-exported
by `tracing.local.runtime.aws`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

__all__ = ["AWSJournal", "RecordedEvent", "RecordedNotification"]


@dataclass(frozen=True)
class RecordedEvent:
    """One EventBridge ``PutEvents`` entry, as the bus received it.

    Attributes:
        bus: The event bus's name (``"default"`` unless the entry named one).
        event: The event as EventBridge delivers it to a Lambda target
            (``version``, ``id``, ``detail-type``, ``source``, ``account``,
            ``time``, ``region``, ``resources``, ``detail``).
        trace_header: The entry's ``TraceHeader``, else the request's
            ``X-Amzn-Trace-Id``; None when neither was a valid X-Ray header.
    """

    bus: str
    event: dict[str, Any]
    trace_header: str | None


@dataclass(frozen=True)
class RecordedNotification:
    """One message published to an SNS topic (``Publish`` or a ``PublishBatch`` entry).

    Attributes:
        topic_arn: The topic.
        message_id: SNS's message id.
        message: The message (for ``MessageStructure="json"``, the whole JSON text).
        subject: The subject, or None.
        message_attributes: ``{name: {"Type": ..., "Value": ...}}`` as SNS keeps them.
        message_structure: ``"json"`` or None.
        timestamp: When it was published, epoch seconds.
        trace_header: The request's ``X-Amzn-Trace-Id``; None when absent or invalid.
    """

    topic_arn: str
    message_id: str
    message: str
    subject: str | None
    message_attributes: dict[str, Any]
    message_structure: str | None
    timestamp: float
    trace_header: str | None


@dataclass
class AWSJournal:
    """What a `LocalAWS` server received that local targets are delivered from.

    Appended to by the server's threads; read with the ``*_since`` methods,
    which return a copy. Kept for the server's life (a local run is short).
    """

    events: list[RecordedEvent] = field(default_factory=list)
    notifications: list[RecordedNotification] = field(default_factory=list)
    #: Step Functions execution ARN -> the trace header it was started with.
    executions: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, item: RecordedEvent | RecordedNotification) -> None:
        with self._lock:
            if isinstance(item, RecordedEvent):
                self.events.append(item)
            else:
                self.notifications.append(item)

    def events_since(self, index: int) -> list[RecordedEvent]:
        """Events recorded from position ``index`` on."""
        with self._lock:
            return self.events[index:]

    def notifications_since(self, index: int) -> list[RecordedNotification]:
        """SNS messages recorded from position ``index`` on."""
        with self._lock:
            return self.notifications[index:]
