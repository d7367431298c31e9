"""The seam between the core and a tracing library.

The core owns the Lambda lifecycle (cold start, init window, invocation scope,
deadline guard), the trace-header model and SQS carriers. A backend connects a
tracing library's own API to it, so that spans users create through that library
land in the same documents.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["Backend"]


class Backend(Protocol):
    """What the core needs from a backend."""

    name: str

    def install(self) -> None:
        """Hook the library in (context, instrumentation). Called once by ``configure``."""

    def flush(self, timeout_s: float) -> bool:
        """Send whatever the library still buffers; True when all was sent."""
