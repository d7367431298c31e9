"""Backend ``xray`` (the default): X-Ray documents, with no tracing library at all.

The core records everything itself (init, invocations, ``tracing.span``, AWS
calls, SQS, the deadline guard) and sends X-Ray documents over UDP, so this
backend needs nothing: its seam methods have nothing to do, and ``configure()``
imports no aws-xray-sdk (about 20 ms of cold start, and a library that reaches
end of support on 2027-02-25).

**aws-xray-sdk, when the application uses it.** Code that calls
``xray_recorder.capture``, ``in_subsegment``, ``begin_subsegment`` or ``patch``
keeps working: its subsegments land in our documents, during init too. The
integration (``xray_sdk.py``, the one module that imports the SDK) is connected
when the SDK is imported: at once if it already was when ``configure()`` runs,
else by a one-shot import hook that connects it right after
``aws_xray_sdk.core`` finishes importing, before any application code can use
``xray_recorder``. Nothing is imported to set the hook up.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from .._hooks import ImportHook, when_imported
from .._scope import Scope
from .._span import Span

if TYPE_CHECKING:
    from . import ForeignSpan

__all__ = ["XRayBackend"]

log = logging.getLogger("tracing.backends.xray")

SDK_MODULE = "aws_xray_sdk.core"


class XRayBackend:
    """X-Ray documents from the core; aws-xray-sdk connected only if the app uses it."""

    name = "xray"
    traceparent = False

    def __init__(self, service: str) -> None:
        self.service = service
        #: True once aws-xray-sdk is connected.
        self.sdk = False
        self._hook: ImportHook | None = None

    def install(self) -> None:
        self._hook = when_imported(SDK_MODULE, self._connect, "its subsegments are lost")

    def _connect(self) -> None:
        from . import xray_sdk

        xray_sdk.connect(self.service)
        self.sdk = True

    def close(self) -> None:
        # The recorder keeps our Context: it stands aside once unconfigured.
        hook, self._hook = self._hook, None
        if hook is not None:
            hook.remove()

    def flush(self, timeout_s: float) -> bool:
        # Documents are sent synchronously when their scope ends: nothing is queued.
        return True

    # -- the seam: SDK entities live on the core's stack, nothing more to do ----------

    def current(self) -> ForeignSpan | None:
        return None

    def enter(self, span: Span) -> object:
        if self.sdk:
            from . import xray_sdk

            xray_sdk.absorb_outer(span)  # Powertools' handler decorator around ours
        return None

    def exit(self, token: object) -> None:
        return None

    def sent(self, scope: Scope) -> None:
        if self.sdk:
            from . import xray_sdk

            xray_sdk.forget()  # the SDK view cache must not keep the sent tree alive

    def open_entities(self, scope: Scope) -> dict[str, list[dict[str, Any]]]:
        return {}  # open SDK subsegments are already in the tree, written in_progress
