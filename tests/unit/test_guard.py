from __future__ import annotations

import threading
import time
from typing import Any

from tracing import testing
from tracing._guard import DeadlineGuard


def _guard() -> tuple[DeadlineGuard, list[Any], threading.Event]:
    fired: list[Any] = []
    event = threading.Event()

    def on_deadline(target: Any) -> None:
        fired.append(target)
        event.set()

    return DeadlineGuard(0.05, on_deadline), fired, event


def test_fires_for_a_target_still_armed_at_its_deadline() -> None:
    guard, fired, event = _guard()
    assert guard.arm("slow", testing.FakeContext(timeout_ms=150))
    assert event.wait(2.0)
    assert fired == ["slow"]
    assert guard.fired == 1


def test_disarmed_target_never_fires() -> None:
    guard, fired, _ = _guard()
    for index in range(50):
        guard.arm(index, testing.FakeContext(timeout_ms=100))
        guard.disarm(index)
    time.sleep(0.3)
    assert fired == []


def test_wakes_from_idle_for_a_new_target() -> None:
    guard, fired, event = _guard()
    guard.arm("first", testing.FakeContext(timeout_ms=5000))
    guard.disarm("first")
    time.sleep(0.05)
    guard.arm("second", testing.FakeContext(timeout_ms=120))
    assert event.wait(2.0)
    assert fired == ["second"]


def test_context_without_deadline_is_not_armed() -> None:
    guard, _, _ = _guard()
    assert not guard.arm("x", object())

    class Broken:
        def get_remaining_time_in_millis(self) -> int:
            raise RuntimeError("no")

    assert not guard.arm("x", Broken())


def test_disarming_another_target_keeps_the_armed_one() -> None:
    guard, fired, event = _guard()
    guard.arm("a", testing.FakeContext(timeout_ms=100))
    guard.disarm("b")
    assert event.wait(2.0)
    assert fired == ["a"]
