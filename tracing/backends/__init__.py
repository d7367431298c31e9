"""The typed seam between the core and a tracing library (a *backend*).

The core owns the Lambda lifecycle (cold start, the init window, the invocation
scope, the deadline guard), the trace-header model and the propagation rule, the
SQS carriers and the X-Ray documents. It records everything in its own
:class:`~tracing.Span` objects and never holds an aws-xray-sdk or OpenTelemetry
object of its own accord. A backend connects one tracing library to that core,
both ways:

* **Library to core.** When user code opens a span through the library's own API
  (``xray_recorder.capture``, ``tracer.start_as_current_span``), that span can be
  the current one. The backend hands it to the core as a :class:`ForeignSpan`:
  the core can annotate it, give it metadata, hang ``tracing.span`` children under
  it and find its trace context for propagation, without knowing its type. Ended
  library spans reach the core as :class:`ForeignEntity` children (anything that
  serializes itself to an X-Ray entity dict).
* **Core to library.** When the core makes one of its spans current (an
  invocation, an SQS record, a ``tracing.span``), it calls :meth:`Backend.enter`,
  so that spans the user opens through the library nest under it, and
  :meth:`Backend.exit` when it ends.

Everything the core asks of a backend is in :class:`Backend`; both backends
implement all of it and mypy checks that they do. The core modules import this
module only, never ``backends.xray`` or ``backends.otel``: the dependency runs
core <- backends <- local tools, never the other way.

The Protocols are written in ``_seam.py`` and imported for type checking only,
so that importing a backend (or the UDP emitter) costs no ``Protocol`` class
creation at cold start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._seam import Backend, CallWrapper, Emitter, ForeignEntity, ForeignSpan

__all__ = ["Backend", "CallWrapper", "Emitter", "ForeignEntity", "ForeignSpan"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import _seam

        return getattr(_seam, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
