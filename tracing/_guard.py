"""Deadline guard: send a running invocation's trace before Lambda kills it.

When an invocation times out, Lambda freezes or kills the process and whatever
the tracer would have sent at the end is lost; the X-Ray console then shows
nothing of the slowest, most interesting invocations. One daemon thread sleeps
until ``deadline - margin``; if the armed invocation is still running then, it
closes the invocation and its open children as ``fault`` with ``Timeout=true`` and
sends them. The handler itself is never interrupted.

Cost per invocation: one ``get_remaining_time_in_millis()`` call, a tuple
assignment and a float comparison. The thread is only woken when an invocation's
deadline is earlier than the one it already sleeps towards (for example after
idling), never in a steady stream of invocations.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["DeadlineGuard"]

log = logging.getLogger("tracing.guard")


class DeadlineGuard:
    """Fires ``on_deadline(target)`` when an armed target outlives its deadline.

    Args:
        margin_s: How long before the deadline to fire, in seconds.
        on_deadline: Called from the guard thread; must not raise (it is logged).
    """

    def __init__(self, margin_s: float, on_deadline: Callable[[Any], None]) -> None:
        self.margin_s = margin_s
        self._on_deadline = on_deadline
        self._armed: tuple[Any, float] | None = None
        self._sleep_until = math.inf
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.fired = 0

    def arm(self, target: Any, context: Any) -> bool:
        """Watch ``target`` until :meth:`disarm`; False when the context has no deadline."""
        getter = getattr(context, "get_remaining_time_in_millis", None)
        if getter is None:
            return False
        try:
            remaining_ms = float(getter())
        except Exception:
            log.debug("tracing: get_remaining_time_in_millis() failed", exc_info=True)
            return False
        fire_at = time.monotonic() + remaining_ms / 1000.0 - self.margin_s
        self._armed = (target, fire_at)
        if self._thread is None:
            self._start()
        elif fire_at < self._sleep_until:
            self._wake.set()
        return True

    def disarm(self, target: Any) -> None:
        """Stop watching ``target`` (no-op if another target is armed)."""
        armed = self._armed
        if armed is not None and armed[0] is target:
            self._armed = None

    def _start(self) -> None:
        thread = threading.Thread(target=self._run, name="tracing-deadline-guard", daemon=True)
        self._thread = thread
        thread.start()

    def _run(self) -> None:
        while True:
            armed = self._armed
            if armed is None:
                # Publish "asleep forever" before re-checking, so that an arm() racing
                # with us either sees this value and wakes us, or is seen below.
                self._sleep_until = math.inf
                if self._armed is None:
                    self._wake.wait()
                self._wake.clear()
                continue
            target, fire_at = armed
            delay = fire_at - time.monotonic()
            if delay > 0:
                self._sleep_until = fire_at
                if self._armed is armed:
                    self._wake.wait(delay)
                self._wake.clear()
                continue
            if self._armed is armed:
                self._armed = None
                self.fired += 1
                try:
                    self._on_deadline(target)
                except Exception:
                    log.exception("tracing: the deadline guard failed to send a trace")
