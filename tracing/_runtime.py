"""Process-wide state set up by ``configure()``, and the current-span lookup."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

from ._config import Settings
from ._init_phase import InitPhase
from ._scope import STACK, Scope, seal_open
from .backends import Backend
from .backends.xray_udp import UDPEmitter

__all__ = ["Runtime", "current_node", "get_runtime", "set_runtime"]

log = logging.getLogger("tracing")


@dataclass(eq=False)
class Runtime:
    """Everything ``configure()`` decided, shared by the public functions."""

    settings: Settings
    emitter: UDPEmitter
    backend: Backend
    in_lambda: bool
    init: InitPhase | None
    #: The service name as an X-Ray entity name, cleaned once.
    service_name: str = "service"
    cold: bool = True
    guard: Any = None
    #: The otel backend, when active: the core keeps OTel's context in step.
    bridge: Any = None
    errors_logged: set[str] = field(default_factory=set)

    def emit(self, document: dict[str, Any]) -> None:
        """Send one top-level document. Never raises (a failure is logged once)."""
        try:
            self.emitter.send(document)
        except Exception:
            self.log_once("emit", "tracing: could not send a trace document (logged once)")

    def emit_scope(self, scope: Scope) -> bool:
        """Emit ``scope`` unless the deadline guard already did."""
        claimed = scope.claim()
        if claimed:
            try:  # one guarded step, not two: this runs once per invocation and record
                self.emitter.send(scope.document())
            except Exception:
                self.log_once("emit", "tracing: could not send a trace document (logged once)")
        bridge = self.bridge
        if bridge is not None:
            bridge.processor.forget(scope)
        return claimed

    def on_deadline(self, scope: Scope) -> None:
        """Guard callback: send ``scope`` now, open entities closed as timeouts."""
        if not scope.claim():
            return
        now = time.time()
        for _attempt in range(3):  # the handler thread may be mutating the tree
            try:
                doc = scope.document()
                break
            except RuntimeError:
                continue
        else:
            log.warning("tracing: could not snapshot a timed-out invocation")
            return
        if self.bridge is not None:
            _graft(doc, self.bridge.scope_open_entities(scope))
        seal_open(doc, now)
        self.emit(doc)
        self.end_of_unit()
        log.warning(
            "tracing: invocation %s still running %d ms before its deadline; sent its "
            "trace as a timeout",
            doc.get("name"),
            self.settings.deadline_margin_ms,
        )

    def end_of_unit(self) -> None:
        """A unit of work (invocation, worker message) ended: push out buffered data.

        UDP documents are already sent; an OTLP exporter exports its buffer here,
        before the handler returns and the sandbox freezes.
        """
        flush = getattr(self.emitter, "flush", None)
        if flush is not None:
            flush()

    def log_once(self, key: str, message: str, *args: object) -> None:
        """Log the exception being handled: a warning the first time, then debug.

        Call from an ``except`` block; ``message`` should say it is logged once.
        """
        level = logging.DEBUG if key in self.errors_logged else logging.WARNING
        self.errors_logged.add(key)
        log.log(level, message, *args, exc_info=True)


_RUNTIME: list[Runtime | None] = [None]


def get_runtime() -> Runtime | None:
    """The configured runtime, or ``None`` before ``configure()``."""
    return _RUNTIME[0]


def set_runtime(runtime: Runtime | None) -> None:
    """Install (or clear, for tests) the process-wide runtime."""
    _RUNTIME[0] = runtime


def current_node() -> Any:
    """The innermost open span or SDK entity in this context, or ``None``.

    Outside any scope, during the init window, that is the buffered Init span.
    """
    stack = STACK.get()
    if stack:
        return stack[-1]
    runtime = _RUNTIME[0]
    if runtime is not None and runtime.init is not None and runtime.init.open:
        return runtime.init.root
    return None


def in_lambda_environment() -> bool:
    """True inside a Lambda execution environment (or our local runtime)."""
    return bool(os.environ.get("LAMBDA_TASK_ROOT"))


def _graft(document: dict[str, Any], children: dict[str, list[dict[str, Any]]]) -> None:
    """Attach entities under the entities of ``document`` with the given ids."""
    if not children:
        return
    stack = [document]
    while stack:
        entity = stack.pop()
        extra = children.get(entity.get("id", ""))
        if extra:
            entity.setdefault("subsegments", []).extend(extra)
        stack.extend(entity.get("subsegments", ()))
