"""Deadline guard: send a running invocation's trace before Lambda kills it.

When an invocation times out, Lambda freezes or kills the process and whatever
the tracer would have sent at the end is lost; the X-Ray console then shows
nothing of the slowest, most interesting invocations. One daemon thread sleeps
until ``deadline - margin``; if the armed invocation is still running then, it
closes the invocation and its open children as ``fault`` with ``Timeout=true`` and
sends them. The handler itself is never interrupted.

Cost per invocation: one ``get_remaining_time_in_millis()`` call, a tuple
assignment and a float comparison. The thread is only woken when an invocation's
deadline is more than 10 ms earlier than the one it already sleeps towards (in
practice: after an idle period longer than the function timeout), never in a
steady stream of invocations.
"""

from __future__ import annotations

import _thread
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
        # (target, fire_at, generation). Only the handler's thread writes it: the
        # guard thread reads it and remembers the generation it fired for, so a
        # disarm + arm racing with a firing can never unguard the next invocation.
        self._armed: tuple[Any, float, int] | None = None
        self._generation = 0
        self._sleep_until = math.inf
        self._wake = threading.Event()
        self._started = False
        self._latest = -math.inf
        # Firing up to this much late is acceptable (the default margin is 100 ms).
        self._tolerance_s = min(0.01, margin_s / 4)
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
        self._generation += 1
        self._armed = (target, fire_at, self._generation)
        self._latest = fire_at
        if not self._started:
            self._start()
        elif fire_at < self._sleep_until - self._tolerance_s:
            # Only wake the thread when it would fire noticeably late: the remaining
            # time comes in whole milliseconds, so consecutive invocations routinely
            # look up to 1 ms "earlier" than the deadline the thread sleeps towards.
            self._wake.set()
        return True

    def disarm(self, target: Any) -> None:
        """Stop watching ``target`` (no-op if another target is armed)."""
        armed = self._armed
        if armed is not None and armed[0] is target:
            self._armed = None

    def _start(self) -> None:
        # _thread rather than threading.Thread: Thread.start() blocks until the new
        # thread runs (a handshake costing 0.3-0.5 ms on the first invocation). The
        # thread is a daemon either way: it must never delay interpreter exit.
        self._started = True
        _thread.start_new_thread(self._run, ())

    def _run(self) -> None:
        tolerance = self._tolerance_s
        fired = 0  # the generation last fired for
        while True:
            armed = self._armed
            now = time.monotonic()
            if armed is not None and armed[2] != fired:
                if armed[1] <= now:
                    fired = armed[2]
                    self._fire(armed[0])
                    continue
                horizon = armed[1]
            else:
                # Nothing armed: keep the appointment of the latest deadline seen, so
                # that back-to-back invocations (deadlines only moving later) never
                # need a wake-up; sleep for good only once it has passed.
                horizon = self._latest if self._latest > now else math.inf
            # NOTE: no reference to the target while asleep: it would keep the
            # last invocation's whole span tree alive until the next one.
            armed = None
            # Publish the appointment before re-checking, so that an arm() racing with
            # us either sees it (and wakes us if it needs to) or is seen here.
            self._sleep_until = horizon
            current = self._armed
            if current is None or current[2] == fired or current[1] >= horizon - tolerance:
                current = None
                self._wake.wait(None if horizon == math.inf else horizon - now)
            current = None
            self._wake.clear()

    def _fire(self, target: Any) -> None:
        self.fired += 1
        try:
            self._on_deadline(target)
        except Exception:
            log.exception("tracing: the deadline guard failed to send a trace")
