"""9. Handing the trace to a pool task: the executor hook's cost per submitted task.

What ``_hooks.py`` adds to ``ThreadPoolExecutor.submit`` inside a unit of work
(a sampled invocation with a ``tracing.span`` current): copying the context at
submission, and running the task in it. Anchor: OpenTelemetry's own hand-off,
``opentelemetry-instrumentation-threading`` (``ThreadingInstrumentor``), with an
SDK span current.

Both sides of a task are timed apart, because the thread hand-off between them
(a queue and the GIL, ~10-20 µs) is far noisier than what is measured:

* **submit**: N ``pool.submit(noop)`` calls while the pool's one worker is held
  inside a task, so nothing competes with the submitting loop;
* **run**: the worker is released and drains the N tasks while the submitter
  waits; from release to the last task's end.

Each child measures, in the same process and interleaved by round, the hooked
executor and the original one (ours: the wrapper's ``__wrapped__``; OTel's:
after ``uninstrument()``), so the figure is a difference of medians. One sample
is one round's time per task, in µs.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from . import _harness as bh

MODULE = "benchmarks.bench_handoff"
ORDER = 90
BENCH = "9 executor hand-off"
TASKS = 2000  # per round


def _noop() -> None:
    return None


def _round(pool: Any, submit: Callable[..., Any]) -> tuple[float, float]:
    """One round: (submit µs per task, run µs per task)."""
    hold, held = threading.Event(), threading.Event()

    def blocker() -> None:
        held.set()
        hold.wait(10)

    pool.submit(blocker)  # the original submit: the blocker carries nothing
    held.wait(10)
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        futures = [submit(pool, _noop) for _ in range(TASKS)]
        submitted = time.perf_counter()
        last = futures[-1]
        released = time.perf_counter()
        hold.set()
        last.result(10)
        done = time.perf_counter()
    finally:
        gc.enable()
    return (submitted - start) / TASKS * 1e6, (done - released) / TASKS * 1e6


def _child_ours(rounds: int) -> dict[str, Any]:
    from concurrent.futures import ThreadPoolExecutor

    import tracing
    from tracing.testing import FakeContext

    tracing.configure()
    hooked = ThreadPoolExecutor.submit
    original = hooked.__wrapped__  # type: ignore[attr-defined]
    assert getattr(hooked, "_tracing_wrapped", False), "the hook is not installed"
    out: dict[str, list[float]] = {k: [] for k in ("submit", "run", "submit0", "run0")}

    @tracing.handler
    def handler(event: Any, context: Any) -> None:
        with tracing.span("fan out"), ThreadPoolExecutor(1) as pool:
            for _ in range(rounds):
                for submit, suffix in ((hooked, ""), (original, "0")):
                    cost = _round(pool, submit)
                    out[f"submit{suffix}"].append(cost[0])
                    out[f"run{suffix}"].append(cost[1])

    os.environ["_X_AMZN_TRACE_ID"] = bh.trace_header()
    handler({}, FakeContext(15 * 60 * 1000))
    return out


def _child_otel(rounds: int) -> dict[str, Any]:
    from concurrent.futures import ThreadPoolExecutor

    from opentelemetry import trace
    from opentelemetry.instrumentation.threading import ThreadingInstrumentor
    from opentelemetry.sdk.trace import TracerProvider

    provider = TracerProvider()
    tracer = provider.get_tracer("bench")
    instrumentor = ThreadingInstrumentor()
    out: dict[str, list[float]] = {k: [] for k in ("submit", "run", "submit0", "run0")}
    with tracer.start_as_current_span("fan out"), ThreadPoolExecutor(1) as pool:
        assert trace.get_current_span().is_recording()
        for _ in range(rounds):
            instrumentor.instrument()
            hooked = ThreadPoolExecutor.submit
            cost = _round(pool, hooked)
            out["submit"].append(cost[0])
            out["run"].append(cost[1])
            instrumentor.uninstrument()
            cost = _round(pool, ThreadPoolExecutor.submit)
            out["submit0"].append(cost[0])
            out["run0"].append(cost[1])
    return out


def run() -> list[dict[str, Any]]:
    rounds = bh.scaled(30)
    with bh.Listener() as daemon:
        env = bh.lambda_env(daemon.address)
        samples: dict[str, dict[str, list[float]]] = {"ours": {}, "otel": {}}
        for _ in range(bh.scaled(5, minimum=2)):
            for kind in ("ours", "otel"):
                got = bh.run_module(MODULE, kind, str(rounds), env=env)
                for key, values in got.items():
                    samples[kind].setdefault(key, []).extend(values)
    rows: list[dict[str, Any]] = []
    added = {}
    for kind, label in (("ours", "ours: tracing"), ("otel", "otel: ThreadingInstrumentor")):
        got = samples[kind]
        submit = bh.median(got["submit"]) - bh.median(got["submit0"])
        run_ = bh.median(got["run"]) - bh.median(got["run0"])
        rows.append(bh.measured(BENCH, f"{label}, submit (hooked)", got["submit"], "µs"))
        rows.append(bh.measured(BENCH, f"{label}, run in the worker (hooked)", got["run"], "µs"))
        case = f"{label}: added per task (submit + run)"
        added[kind] = bh.derived(BENCH, case, submit + run_, "µs")
    bh.compare(added["ours"], added["otel"], vs="OTel's hand-off")
    bh.target(added["ours"], 1.0, "≤ 1 µs per task")
    rows.extend([added["ours"], added["otel"]])
    return rows


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        kind, rounds = sys.argv[2], int(sys.argv[3])
        bh.emit_json(_child_ours(rounds) if kind == "ours" else _child_otel(rounds))
    else:
        for row in run():
            print(row)
