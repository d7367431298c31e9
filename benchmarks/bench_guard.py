"""4. Deadline-guard cost: ours with a context that has a deadline vs one without.

Same measurement as ``bench_invoke`` (fresh processes, fresh trace header per
call, overhead = traced - bare), ours only, with three contexts:

* ``FakeContext(15 min)`` shared by every call (what ``bench_invoke`` uses): its
  deadline is fixed, so the remaining time shrinks from call to call;
* a new ``FakeContext(15 min)`` per call, as Lambda gives a new context with a
  later deadline per invocation (made in both the bare and the traced loop);
* ``object()``: no ``get_remaining_time_in_millis``, the guard is not armed.

The guard cost is the difference of the medians. The child also counts how often
the guard thread was woken (``DeadlineGuard._wake.set``, a diagnostic on private
API): the docstring of ``_guard.py`` says it should not be, in a steady stream.
"""

from __future__ import annotations

from typing import Any

from . import _harness as bh
from .bench_invoke import datagrams, measure

ORDER = 40
BENCH = "4 deadline guard"

CONTEXTS = {
    "fake": "ours, one FakeContext for all calls",
    "fresh": "ours, new FakeContext per call",
    "none": "ours, context=object() (guard off)",
}


def run() -> list[dict[str, Any]]:
    results = measure([("ours", kind) for kind in CONTEXTS], wakes=True)
    rows = {}
    for kind, case in CONTEXTS.items():
        acc = results[("ours", kind)]
        rows[kind] = bh.measured(
            BENCH,
            case,
            acc["overhead_us"],
            "µs",
            datagrams=datagrams(acc),
            guard_wakes_per_call=round(acc["guard_wakes"] / acc["measured_calls"], 4),
        )
    for kind in ("fake", "fresh"):
        wakes = rows[kind]["guard_wakes_per_call"]
        rows[kind]["note"] = f"guard thread woken on {wakes:.1%} of the measured calls"
    off = rows["none"]["median"]
    out = list(rows.values())
    for kind, label in (("fake", "one FakeContext"), ("fresh", "new FakeContext per call")):
        cost = rows[kind]["median"] - off
        out.append(bh.derived(BENCH, f"guard cost ({label} - guard off)", cost, "µs"))
    return out


if __name__ == "__main__":
    for row in run():
        print(row)
