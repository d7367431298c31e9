"""The trace context to send downstream: who is the parent of an outgoing call."""

from __future__ import annotations

from ._header import TraceHeader
from ._runtime import current_node
from ._span import Span

__all__ = ["outgoing_header"]


def outgoing_header() -> TraceHeader | None:
    """The header a message or request sent now should carry, or ``None``.

    * Recorded work: the current trace, the innermost open entity as ``Parent``
      (the AWS call's own subsegment when one is open), ``Sampled=1``, and the
      pass-through keys (``Lineage``...) of the trace being continued.
    * An unsampled invocation or message: its own ``Root`` and ``Parent`` with
      ``Sampled=0``. Never a new sampled trace.
    * ``None`` outside any trace, and during init: the init buffer's trace id is a
      placeholder until the first invocation, so passing it on would send
      consumers into a trace that may never exist.
    * Work that outlived its invocation (a thread nobody joined): its own trace,
      as above, never the trace of the invocation running meanwhile.
    """
    node = current_node()
    if node is None:
        return None
    scope = node.scope
    if scope is None:
        if isinstance(node, Span):
            return None  # untraced work
        # A library span outside our documents (a segment the user opened with
        # aws-xray-sdk's own API, a worker's own OTel root span).
        trace_id = node.trace_id
        if trace_id is None or not node.recording:
            return None
        return TraceHeader(trace_id, node.id, "1")
    if scope.placeholder or scope.trace_id is None:
        return None  # not known yet
    if scope.done:
        # Sent already: work that outlived it (a thread nobody joined) still
        # passes *its own* trace on, never the invocation running now (whose
        # header botocore would copy from the environment). Past its late window
        # (a long-lived thread), it passes nothing, as untraced work does.
        if scope.past_window:
            return None
        if scope.sealed:  # sent as a timeout: its later spans are not sent
            return TraceHeader(scope.trace_id, scope.root.id, "1", scope.extra)
    if node.recording:  # recorded unsampled work (send_unsampled) says so too
        return TraceHeader(scope.trace_id, node.id, "1" if scope.sampled else "0", scope.extra)
    if not scope.sampled and scope.parent_id is not None:
        return TraceHeader(scope.trace_id, scope.parent_id, "0", scope.extra)
    return None
