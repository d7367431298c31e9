"""Run a callback right after a module is imported, without importing it ourselves.

Cold start is the figure Lambda users pick a tracer by, so ``configure()`` never
imports what the first invocation may not need (aws-xray-sdk, OTel's propagation
API). Where the library must react to such a module (connect to aws-xray-sdk,
install its propagator into ``opentelemetry.propagate``), it calls
:func:`when_imported`: at once if the module is already in ``sys.modules``, else
from a one-shot ``sys.meta_path`` finder that takes itself off the path at the
module's first import and runs the callback as soon as the module has executed,
before the importing code gets it back.

aws-xray-sdk's ``patch_all`` and OTel contrib's instrumentors patch eagerly and
import what they patch; this hook costs nothing until the module is imported,
and nothing at all if it never is.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["ImportHook", "when_imported"]

log = logging.getLogger("tracing")


def when_imported(module: str, callback: Callable[[], None], what: str) -> ImportHook | None:
    """Run ``callback`` once ``module`` is imported (now, if it already is).

    ``what`` names the consequence of a failure for the log line ("its
    subsegments are lost"). Returns the hook left on ``sys.meta_path``, for
    :meth:`ImportHook.remove`, or ``None`` when the callback already ran.
    """
    if module in sys.modules:
        _call(callback, module, what)
        return None
    hook = ImportHook(module, callback, what)
    sys.meta_path.insert(0, hook)
    return hook


def _call(callback: Callable[[], None], module: str, what: str) -> None:
    try:
        callback()
    except Exception:
        log.exception("tracing: could not connect to %s; %s", module, what)


class ImportHook:
    """A one-shot ``sys.meta_path`` finder: ``callback()`` right after ``module`` imports.

    It finds nothing itself: on the first ``find_spec`` of ``module`` it takes
    itself off ``sys.meta_path``, asks the other finders for the real spec, and
    wraps that spec's loader so that the callback runs once the module has
    executed. A failing callback is logged once and never fails the import.
    """

    def __init__(self, module: str, callback: Callable[[], None], what: str) -> None:
        self.module = module
        self._callback = callback
        self._what = what

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != self.module:
            return None
        self.remove()
        from importlib.util import find_spec

        spec = find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _ThenCall(spec.loader, self)  # type: ignore[assignment]  # duck-typed
        return spec

    def remove(self) -> None:
        """Take the hook off ``sys.meta_path`` (idempotent)."""
        if self in sys.meta_path:
            sys.meta_path.remove(self)

    def fire(self) -> None:
        _call(self._callback, self.module, self._what)


class _ThenCall:
    """A loader that runs its wrapped loader, then the hook's callback."""

    def __init__(self, loader: Any, hook: ImportHook) -> None:
        self._loader = loader
        self._hook = hook

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self._loader.exec_module(module)
        self._hook.fire()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)
