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
import sys
from typing import TYPE_CHECKING, Any

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
        self._hook: _WhenImported | None = None

    def install(self) -> None:
        if SDK_MODULE in sys.modules:
            self._connect()
        else:
            self._hook = _WhenImported(SDK_MODULE, self._connect)
            sys.meta_path.insert(0, self._hook)

    def _connect(self) -> None:
        try:
            from . import xray_sdk

            xray_sdk.connect(self.service)
            self.sdk = True
        except Exception:
            log.exception("tracing: could not connect aws-xray-sdk; its subsegments are lost")

    def close(self) -> None:
        # The recorder keeps our Context: it stands aside once unconfigured.
        hook, self._hook = self._hook, None
        if hook is not None and hook in sys.meta_path:
            sys.meta_path.remove(hook)

    def flush(self, timeout_s: float) -> bool:
        # Documents are sent synchronously when their scope ends: nothing is queued.
        return True

    # -- the seam: SDK entities live on the core's stack, nothing more to do ----------

    def current(self) -> ForeignSpan | None:
        return None

    def enter(self, span: Span) -> object:
        return None

    def exit(self, token: object) -> None:
        return None

    def link(self, span_id: str, trace_id: str | None, other_id: str | None) -> None:
        return None  # X-Ray documents cannot carry links

    def sent(self, scope: Scope) -> None:
        if self.sdk:
            from . import xray_sdk

            xray_sdk.forget()  # the SDK view cache must not keep the sent tree alive

    def open_entities(self, scope: Scope) -> dict[str, list[dict[str, Any]]]:
        return {}  # open SDK subsegments are already in the tree, written in_progress


class _WhenImported:
    """A one-shot ``sys.meta_path`` finder: ``callback()`` right after ``module`` imports.

    It finds nothing itself: on the first ``find_spec`` of ``module`` it takes
    itself off ``sys.meta_path``, asks the other finders for the real spec, and
    wraps that spec's loader so that ``callback`` runs once the module has
    executed.
    """

    def __init__(self, module: str, callback: Any) -> None:
        self._module = module
        self._callback = callback

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != self._module:
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        from importlib.util import find_spec

        spec = find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _ThenCall(spec.loader, self._callback)  # type: ignore[assignment]  # duck-typed
        return spec


class _ThenCall:
    """A loader that runs its wrapped loader, then a callback (errors logged)."""

    def __init__(self, loader: Any, callback: Any) -> None:
        self._loader = loader
        self._callback = callback

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self._loader.exec_module(module)
        try:
            self._callback()
        except Exception:
            log.exception("tracing: could not connect aws-xray-sdk")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)
