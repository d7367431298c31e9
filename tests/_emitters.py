"""Test helpers around the emitters."""

from __future__ import annotations

from typing import Any

__all__ = ["Both"]


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
