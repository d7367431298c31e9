"""Helpers for testing your own traced handlers.

Example::

    from tracing import testing

    def test_handler(monkeypatch):
        testing.reset()
        ...
"""

from __future__ import annotations

from ._runtime import get_runtime, set_runtime
from ._scope import STACK

__all__ = ["reset"]


def reset() -> None:
    """Forget the configuration and any open spans, so ``configure()`` runs anew.

    Library instrumentation already installed (the botocore patch) stays in place,
    as it would in a real process.
    """
    runtime = get_runtime()
    if runtime is not None:
        runtime.emitter.close()
    set_runtime(None)
    STACK.set(())
