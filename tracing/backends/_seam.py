"""The Protocols of the seam between the core and a backend (see ``backends/__init__.py``).

They are imported for type checking only (``if TYPE_CHECKING``): defining a
``Protocol`` class costs about a tenth of a millisecond each at import, and
import is cold start. ``tracing.backends.Backend`` and the others still resolve
at run time, through the package's ``__getattr__``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .._scope import Scope
    from .._span import Span

__all__ = ["Backend", "CallWrapper", "Emitter", "ForeignEntity", "ForeignSpan"]

#: ``around(client, operation, params, call)``: runs around every botocore API call.
CallWrapper = Callable[[Any, str, Any, Callable[[], Any]], Any]


class ForeignEntity(Protocol):
    """An ended (or still open) library entity nested in a core span.

    An aws-xray-sdk subsegment, or an OpenTelemetry span converted to an X-Ray
    entity. The core serializes it in place when it builds the document.
    """

    def to_dict(self) -> dict[str, Any]:
        """The entity as an X-Ray entity dict (nested form)."""
        ...


class ForeignSpan(Protocol):
    """A library span that is currently open: the parent of what the core records now.

    Values reach it already converted by the core's value rules (``_values.py``).
    """

    @property
    def name(self) -> str:
        """The span's name."""
        ...

    @property
    def id(self) -> str:
        """The span's id as 16 hex digits (its X-Ray entity id)."""
        ...

    @property
    def trace_id(self) -> str | None:
        """Its X-Ray trace id, ``None`` if it has none."""
        ...

    @property
    def scope(self) -> Scope | None:
        """The core document it will be sent in, ``None`` if the library sends it itself."""
        ...

    @property
    def recording(self) -> bool:
        """False when the library is not recording it (unsampled)."""
        ...

    @property
    def namespace(self) -> str | None:
        """Its X-Ray namespace: ``"aws"`` for an AWS call the library records."""
        ...

    def annotate(self, key: str, value: str | int | float | bool) -> None:
        """Add an indexed annotation (key and value already valid)."""
        ...

    def put_metadata(self, key: str, value: Any, namespace: str) -> None:
        """Add metadata (a JSON-safe value) under ``namespace``."""
        ...

    def record_exception(self, exc: BaseException) -> None:
        """Mark it failed (fault) and describe ``exc``."""
        ...

    def adopt(self, child: Span) -> None:
        """Make a core span its child, serialized with it."""
        ...


class Backend(Protocol):
    """Everything the core asks of a tracing library."""

    #: ``"xray"``, ``"otel"`` or ``"none"``.
    name: str
    #: Also carry a W3C ``traceparent`` message attribute on SQS messages (for
    #: consumers on OTel's own instrumentation), when it fits.
    traceparent: bool

    def install(self) -> None:
        """Hook the library in (its context, its instrumentation). Called once by ``configure``."""
        ...

    def close(self) -> None:
        """Undo what ``install`` did to process-wide context (tests, reconfiguration)."""
        ...

    def flush(self, timeout_s: float) -> bool:
        """Send whatever the library still buffers; True when all was sent."""
        ...

    def current(self) -> ForeignSpan | None:
        """The library's current span when it is inside the core's current span.

        ``None`` when the innermost current span is the core's (the usual case),
        or when the library keeps its entities on the core's own stack.
        """
        ...

    def enter(self, span: Span) -> object:
        """Make ``span`` current in the library's context; returns a token for :meth:`exit`.

        Called for recording spans and for the non-recording span of an unsampled
        invocation (whose library spans must then record nothing either).
        """
        ...

    def exit(self, token: object) -> None:
        """Undo one :meth:`enter`. Never raises."""
        ...

    def sent(self, scope: Scope) -> None:
        """``scope`` was sent: forget whatever of the library still refers to it."""
        ...

    def open_entities(self, scope: Scope) -> dict[str, list[dict[str, Any]]]:
        """Library spans still open under ``scope``'s spans, by parent id (timeouts)."""
        ...


class Emitter(Protocol):
    """Where finished top-level documents go (UDP to the daemon, or OTLP)."""

    #: True when documents wait in a buffer until :meth:`flush`.
    buffered: bool
    #: True when it writes OTLP spans rather than X-Ray documents: documents
    #: handed to :meth:`send` may then hold library entities that write
    #: themselves (``otlp_spans``), and must be passed on as they are.
    otlp: bool

    def send_scope(self, scope: Scope) -> None:
        """Send (or buffer) one finished scope: what the handler and consumers emit.

        The common case, so the emitter writes it its fastest way. Never raises.
        """
        ...

    def link(self, span_id: str, trace_id: str | None, other_id: str | None) -> None:
        """Note an OTel link from core span ``span_id`` to another span context.

        The invocation to ``Init`` and to each SQS record's producer, a consumer
        segment to its invocation. X-Ray documents cannot carry links: only the
        OTLP emitters keep them.
        """
        ...

    def send(self, document: dict[str, Any], body: bytes | None = None) -> None:
        """Send (or buffer) one top-level document. Never raises.

        ``body``, when given, is the document already encoded as strict JSON (the
        deadline guard has it); an emitter may use it rather than encode again.
        """
        ...

    def send_encoded(self, body: bytes) -> None:
        """Send (or buffer) one top-level document already encoded as strict JSON.

        What the core's fast path writes, and the deadline guard's snapshot. Never
        raises.
        """
        ...

    def flush(self) -> None:
        """Push out anything buffered, before the sandbox freezes."""
        ...

    def close(self) -> None:
        """Release the socket or connection; a later send reopens it."""
        ...
