"""Test helpers around the emitters."""

from __future__ import annotations

import time
from typing import Any

from tracing import testing

__all__ = ["Both", "until_sent"]


def until_sent(daemon: testing.DaemonListener, timeout: float = 10.0) -> None:
    """Wait until ``daemon`` receives a datagram sent after this call began.

    For a handler that must still be running when the deadline guard sends: it
    waits for the guard's document instead of sleeping past the moment the guard
    should fire, which a busy machine may delay. Bounded: a guard that never fires
    fails the test's assertions, it does not hang it.
    """
    daemon.sync()
    before = len(daemon.datagrams)
    give_up = time.monotonic() + timeout
    while len(daemon.datagrams) == before and time.monotonic() < give_up:
        time.sleep(0.005)


class Both:
    """Two real emitters fed the same emissions (the comparison's only device)."""

    otlp = True  # documents keep the library entities that write themselves

    def __init__(self, xray: Any, otlp: Any) -> None:
        self.emitters = (xray, otlp)
        self.buffered = any(emitter.buffered for emitter in self.emitters)

    def send_scope(self, scope: Any) -> None:
        for emitter in self.emitters:
            emitter.send_scope(scope)

    def send(self, document: dict[str, Any], body: bytes | None = None) -> None:
        for emitter in self.emitters:
            emitter.send(document, body)

    def send_encoded(self, body: bytes) -> None:
        for emitter in self.emitters:
            emitter.send_encoded(body)

    def link(self, span_id: str, trace_id: str | None, other_id: str | None) -> None:
        for emitter in self.emitters:
            emitter.link(span_id, trace_id, other_id)

    def flush(self) -> None:
        for emitter in self.emitters:
            emitter.flush()

    def close(self) -> None:
        for emitter in self.emitters:
            emitter.close()
