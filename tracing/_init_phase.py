"""The init window: record work done at import, replay it into the first trace.

During the Lambda INIT phase there is no trace id yet, so aws-xray-sdk discards
every subsegment ("discarded due to Lambda worker still initializing",
aws-xray-sdk-python#185) and Powertools and OTel record nothing. Here init work
goes into a buffered ``Init`` span under a placeholder trace id. When the first
invocation starts, the buffer is closed and emitted once as an independent
subsegment of that invocation's trace (``trace_id`` = Root, ``parent_id`` =
Parent), then freed.

When does init end? The runtime gives no signal, so the Init entity ends at the
later of: the end of the last span recorded during init, and the moment
``@tracing.handler`` wrapped the handler (module import normally ends right
after). It is never stretched to the first invocation's start, which under
provisioned concurrency can be minutes later.

Which trace gets it? **A request's trace shows what the request waited for.**

* **On-demand** (``AWS_LAMBDA_INITIALIZATION_TYPE=on-demand``, or unset): the
  first request waited for init, so Init is a subsegment of that request's trace
  (``trace_id`` = its Root, ``parent_id`` = its Parent).
* **Provisioned concurrency** (``provisioned-concurrency``): init ran ahead of
  any request, maybe hours before the first one, which did not wait for it.
  Init is sent as a trace of its own: a new trace id stamped with init's own
  start, a segment named after the service holding the ``Init`` subsegment,
  with init's real timestamps; the first invocation is annotated
  ``InitTraceId`` with that id (and linked to it, for the OTLP exporters). This
  is what ``init_trace="always"`` does, reused.
* **Sampling.** Init follows the ``init_trace`` setting in every case. With
  ``"sampled"`` (the default) it is sent only when the first invocation is
  sampled, under provisioned concurrency too: an unsampled first request sends
  nothing, and calls made during init pass no trace on (whether Init will be
  sent is not known yet). ``"always"`` sends it as its own trace whatever the
  first invocation's decision (and init's calls pass that trace on);
  ``"off"`` never sends it.
* **SnapStart** keeps its own rules (``_snapstart.py``): the snapshot's init is
  summarised, and what the first request after a restore waited for, the
  ``Restore`` window, is in that request's trace.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from ._header import TraceHeader, new_id, new_trace_id
from ._scope import Scope
from ._span import Span

__all__ = ["InitPhase"]

log = logging.getLogger("tracing.init")

#: ``AWS_LAMBDA_INITIALIZATION_TYPE`` when init ran ahead of any request.
PROVISIONED_CONCURRENCY = "provisioned-concurrency"


class InitPhase:
    """The buffered Init span of one execution environment (or its Restore).

    Args:
        started: When init work started (``configure()`` time), epoch seconds.
        limit: Most init spans kept; the newest beyond it are dropped and counted.
        mode: ``"sampled"`` (follow the first invocation), ``"always"`` or ``"off"``.
        name: ``"Init"``, or ``"Restore"`` for a SnapStart restore (``_snapstart.py``).
        init_type: The ``InitType`` annotation; ``AWS_LAMBDA_INITIALIZATION_TYPE``
            by default.
    """

    def __init__(
        self,
        started: float,
        limit: int,
        mode: str,
        name: str = "Init",
        init_type: str | None = None,
    ) -> None:
        self.root = Span(name, start_time=started)
        self.init_type = init_type or os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
        #: Extra metadata for the entity (a Restore's summary of the snapshot's init).
        self.notes: dict[str, Any] | None = None
        # A valid, fresh trace id. With mode "always" it is final: Init is always
        # sent as a trace of its own, so calls made during init pass it on and
        # their consumers land in a trace that exists. Otherwise it is a
        # placeholder (Init is re-stamped into the first invocation's trace) and
        # nothing is passed on during init.
        self.scope = Scope(
            self.root, new_trace_id(started), None, limit=limit, placeholder=mode != "always"
        )
        self.mode = mode
        self.open = True
        self.marked_end: float | None = None

    def mark_end(self) -> None:
        """Note a moment init work was still going on (``@tracing.handler`` time)."""
        if self.open:
            self.marked_end = time.time()

    def summary(self) -> dict[str, Any]:
        """Duration and span count of the window so far, for a Restore's metadata."""
        children = self.root.children or ()
        return {
            "started_at": self.root.start_time,
            "duration_ms": round((self._end_time() - self.root.start_time) * 1000, 3),
            "spans": len(children),
            "dropped_spans": self.scope.dropped,
        }

    def discard(self) -> None:
        """Close the window without sending anything (a snapshot's init, once restored)."""
        self.open = False
        self.scope.claim()
        self.root.children = None

    def _end_time(self) -> float:
        ends = [self.marked_end or self.root.start_time]
        for child in self.root.children or ():
            end = getattr(child, "end_time", None)
            if isinstance(end, float):
                ends.append(end)
        return max(ends)

    def close(
        self, header: TraceHeader | None, sampled: bool, service: str, emit: Any
    ) -> str | None:
        """End the init window at the first invocation and emit it once.

        Args:
            header: The first invocation's trace header.
            sampled: Whether the first invocation is recorded.
            service: Service name, used when Init becomes its own trace.
            emit: ``callable(document)`` sending one top-level document.

        Returns:
            The Init's own trace id when it was emitted as a separate trace.
        """
        if not self.open:
            return None
        self.open = False
        self.scope.claim()  # done: work that ends from now on has nowhere to go
        root = self.root
        try:
            if self.mode == "off":
                return None
            root.end_time = self._end_time()
            # Set directly: the keys are fixed and valid. Annotations made at import
            # with tracing.annotate() are kept; these two win over them.
            root._set_annotation("ColdStart", True)
            root._set_annotation("InitType", self.init_type)
            if self.notes:
                root.put_json("snapshot_init", self.notes, "tracing")
            if self.mode == "always" or (sampled and self.init_type == PROVISIONED_CONCURRENCY):
                # Provisioned concurrency: no request waited for this init (see the
                # module doc); it must not stretch the first request's trace.
                trace_id = self.scope.trace_id or new_trace_id(root.start_time)
                init = self.scope.document()
                for key in ("trace_id", "parent_id", "type"):  # nested, not top-level
                    init.pop(key, None)
                emit(
                    {
                        "name": service,
                        "id": new_id(),
                        "trace_id": trace_id,
                        "start_time": root.start_time,
                        "end_time": root.end_time,
                        "origin": "AWS::Lambda::Function",
                        "annotations": {"ColdStart": True},
                        "subsegments": [init],
                    }
                )
                return trace_id
            if sampled and header is not None and header.parent:
                emit(self.scope.document(trace_id=header.root, parent_id=header.parent))
                return None
            log.debug("tracing: first invocation not sampled; Init not emitted")
            return None
        finally:
            # Free the buffer: the init tree can be large and is never needed again.
            root.children = None
