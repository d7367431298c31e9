"""Forwarding the collector's documents on to AWS X-Ray (``PutTraceSegments``).

The collector's optional *forwarder* thread (``daemon.py``): raw documents in
batches of up to 50, as the X-Ray daemon sends them, with few, short retries.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["ForwardConfig"]

_POLL_S = 0.1  # how long a thread blocks before re-checking for stop()


@dataclass(frozen=True)
class ForwardConfig:
    """Where and how to forward documents to AWS X-Ray.

    Credentials come from the environment, as for any boto3 client.

    Args:
        region: AWS region; the environment's default if None.
        endpoint_url: Another X-Ray endpoint (a local emulator, a VPC endpoint).
        batch_size: Documents per ``PutTraceSegments`` call (the daemon uses 50).
        interval_s: Longest a document waits for its batch to fill.
    """

    region: str | None = None
    endpoint_url: str | None = None
    batch_size: int = 50
    interval_s: float = 1.0


class _Forwarding:
    """The forwarder thread's loop, for :class:`~.daemon.Collector`."""

    _forward: ForwardConfig | None
    _forward_queue: queue.Queue[str]

    def _count(self, name: str, n: int = 1) -> None:
        raise NotImplementedError

    def _warn_once(self, kind: str, message: str, *args: object) -> None:
        raise NotImplementedError

    def _forward_loop(self, stop: threading.Event) -> None:
        assert self._forward is not None
        config = self._forward
        client: Any = None
        while True:
            stopping = stop.is_set()
            wait_s, fill_s = (0.0, 0.0) if stopping else (_POLL_S, config.interval_s)
            batch = _drain(self._forward_queue, config.batch_size, wait_s, fill_s, stop)
            if not batch:
                if stopping:
                    return
                continue
            try:
                client = client or _xray_client(config)
                response = client.put_trace_segments(TraceSegmentDocuments=batch)
            except Exception as exc:
                self._count("forward_errors", len(batch))
                self._warn_once("forward", "tracing collector: forwarding failed: %s", exc)
                continue
            rejected = response.get("UnprocessedTraceSegments") or []
            self._count("forwarded", len(batch) - len(rejected))
            if rejected:
                self._count("forward_errors", len(rejected))
                self._warn_once(
                    "rejected", "tracing collector: X-Ray rejected documents: %s", rejected[:3]
                )


def _drain(
    source: queue.Queue[Any],
    most: int,
    first_s: float,
    fill_s: float = 0.0,
    stop: threading.Event | None = None,
) -> list[Any]:
    """Up to ``most`` items: wait ``first_s`` for the first, then ``fill_s`` for more."""
    items: list[Any] = []
    deadline = time.monotonic() + first_s
    while len(items) < most:
        left = deadline - time.monotonic()
        try:
            items.append(
                source.get(timeout=min(left, _POLL_S)) if left > 0 else source.get_nowait()
            )
        except queue.Empty:
            if left <= 0 or (stop is not None and stop.is_set()):
                break
            continue
        if len(items) == 1:
            deadline = time.monotonic() + fill_s
    return items


def _xray_client(config: ForwardConfig) -> Any:
    # Imported here: boto3 costs ~100 ms and only --forward needs it.
    import boto3
    from botocore.config import Config

    return boto3.client(
        "xray",
        region_name=config.region,
        endpoint_url=config.endpoint_url,
        # Few, short retries: a batch is not worth stalling stop() for.
        config=Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=3),
    )
