"""The trace context to send downstream: who is the parent of an outgoing call."""

from __future__ import annotations

from typing import Any

from ._header import TraceHeader, parse
from ._runtime import current_node, get_runtime
from ._scope import Scope
from ._span import Span

__all__ = ["outgoing_header"]


def _scope_of(node: Any) -> Scope | None:
    if isinstance(node, Span):
        return node.scope if node.recording else None
    segment = getattr(node, "parent_segment", node)
    scope = getattr(segment, "scope", None)
    return scope if isinstance(scope, Scope) else None


def outgoing_header() -> TraceHeader | None:
    """The header a message or request sent now should carry, or ``None``.

    The parent is the innermost open entity: the SDK's subsegment for the AWS call
    itself when botocore is patched, else the current span. ``None`` when nothing
    sampled is being recorded, and during init: the init buffer's trace id is a
    placeholder until the first invocation, so propagating it would send
    consumers into a trace that may never exist.
    """
    runtime = get_runtime()
    bridge = runtime.bridge if runtime is not None else None
    if bridge is not None:
        otel_span = bridge.current_otel_span()
        if otel_span is not None:
            header: TraceHeader | None = bridge.outgoing_header(otel_span)
            return header
    node = current_node()
    if node is None:
        return None
    if isinstance(node, Span):
        if not node.recording:
            return None
    elif not getattr(node, "sampled", False):
        return None
    scope = _scope_of(node)
    if scope is None:
        # A segment the user opened with aws-xray-sdk's own API (outside Lambda).
        header = parse(f"Root={getattr(node, 'trace_id', '')};Parent={getattr(node, 'id', '')}")
        return header.with_parent(header.parent) if header and header.parent else None
    if scope.trace_id is None or (
        runtime is not None and runtime.init is not None and scope is runtime.init.scope
    ):
        return None
    return TraceHeader(scope.trace_id, node.id, "1", scope.extra)
