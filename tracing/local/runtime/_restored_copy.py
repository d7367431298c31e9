"""SnapStart: an execution environment restored from a `LocalLambda`'s snapshot.

`LocalLambda.restore` makes them; each has its own Runtime API server, forked
from the snapshot process.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from tracing.local.runtime._invocation import InvokeResult, _error
from tracing.local.runtime._process import _DEADLINE_GRACE_S

if TYPE_CHECKING:
    from tracing.local.runtime._runtime_api import RuntimeAPIServer
    from tracing.local.runtime.local_lambda import LocalLambda

__all__ = ["RestoredCopy"]


class RestoredCopy:
    """One execution environment restored from a `LocalLambda`'s SnapStart snapshot.

    It shares the snapshot's process group and logs (`LocalLambda.logs`); `stop`
    on the `LocalLambda` ends it. A deadline is reported as ``Sandbox.Timedout``
    without killing the copy.
    """

    def __init__(self, origin: LocalLambda, server: RuntimeAPIServer) -> None:
        self._origin = origin
        self._server = server

    def invoke(self, event: Any, *, trace_header: str | None = None) -> InvokeResult:
        """Invoke this copy once; as `LocalLambda.invoke`, results are never raised."""
        origin = self._origin
        origin._check_header(trace_header)
        deadline_ms = int((time.time() + origin.timeout_s) * 1000)
        inv = self._server.submit(
            event,
            trace_header=trace_header,
            deadline_ms=deadline_ms,
            function_arn=origin.function_arn,
        )
        result = inv.wait(origin.timeout_s + _DEADLINE_GRACE_S)
        if result is not None:
            return result
        message = (
            f"RequestId: {inv.request_id} Error: Task timed out after {origin.timeout_s:.2f} s"
        )
        return inv.resolve(False, None, _error("Sandbox.Timedout", message), timed_out=True) or (
            inv.wait(0) or InvokeResult(inv.request_id, False, None, None, 0.0, True)
        )
