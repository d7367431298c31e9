"""3. First (cold) invocation with 20 init spans, each in a fresh interpreter.

Init phase (no trace header): set up the tracer, record 20 spans, decorate the
handler. Then the runtime sets ``_X_AMZN_TRACE_ID`` and the first call is timed
(wall time of the call, trivial handler). Ours replays the 20 init spans into
the first trace (one extra datagram); aws-xray-sdk discards its 20
``in_subsegment`` blocks at init ("discarded due to Lambda worker still
initializing") and does nothing more on the first call. The second call is timed
too, for reference.

The child is ``python -c`` with its own context class (same behaviour as
``tracing.testing.FakeContext``), so the anchor's process does not import ours.
"""

from __future__ import annotations

from typing import Any

from . import _harness as bh

ORDER = 30
BENCH = "3 cold invocation"
REPS = 20
INIT_SPANS = 20

_SETUP = {
    "ours": """\
import tracing
tracing.configure()
for i in range({n}):
    with tracing.span(f"init step {{i}}"):
        pass

@tracing.handler
def h(event, context):
    return 1
""",
    "sdk": """\
from aws_xray_sdk.core import patch, xray_recorder
patch(["botocore"])
for i in range({n}):
    with xray_recorder.in_subsegment(f"init step {{i}}"):
        pass

@xray_recorder.capture("## h")
def h(event, context):
    return 1
""",
}

_TEMPLATE = """\
import json, os, sys, time

class Context:
    def __init__(self, timeout_ms):
        self._deadline = time.monotonic() + timeout_ms / 1000.0
    def get_remaining_time_in_millis(self):
        return max(0, int((self._deadline - time.monotonic()) * 1000))

def header():
    return (f"Root=1-{{int(time.time()):08x}}-{{os.urandom(12).hex()}};"
            f"Parent={{os.urandom(8).hex()}};Sampled=1")

{setup}
first, second = header(), header()
os.environ["_X_AMZN_TRACE_ID"] = first
context = Context(900000)
t0 = time.perf_counter()
h({{}}, context)
t1 = time.perf_counter()
os.environ["_X_AMZN_TRACE_ID"] = second
context = Context(900000)
t2 = time.perf_counter()
h({{}}, context)
t3 = time.perf_counter()
sys.stdout.write(json.dumps({{"first_ms": (t1 - t0) * 1e3, "second_ms": (t3 - t2) * 1e3,
                             "root": first.split(";")[0][5:]}}) + "\\n")
"""

CASES = {"ours": "ours: tracing.handler", "sdk": "aws-xray-sdk: xray_recorder.capture"}


def code(variant: str) -> str:
    return _TEMPLATE.format(setup=_SETUP[variant].format(n=INIT_SPANS))


def _replayed(documents: list[dict[str, Any]], root: str) -> int | None:
    """Spans inside the Init document of trace ``root``, if one arrived."""
    for doc in documents:
        if doc.get("trace_id") == root and doc.get("name") == "Init":
            return len(doc.get("subsegments", ()))
    return None


def run() -> list[dict[str, Any]]:
    reps = bh.scaled(REPS)
    first: dict[str, list[float]] = {v: [] for v in CASES}
    second: dict[str, list[float]] = {v: [] for v in CASES}
    received = dict.fromkeys(CASES, 0)
    replayed: list[int | None] = []
    with bh.Listener() as daemon:
        env = bh.lambda_env(daemon.address)
        for rep in range(reps + 1):
            for variant in CASES:
                before = daemon.quiet(0.05)
                out = bh.run_code(code(variant), env)
                got = daemon.quiet(0.05) - before
                if not rep:  # warm-up round (disk cache), discarded
                    continue
                first[variant].append(out["first_ms"])
                second[variant].append(out["second_ms"])
                received[variant] += got
                if variant == "ours":
                    replayed.append(_replayed(daemon.documents(), out["root"]))
    rows = []
    for variant, case in CASES.items():
        per_process = received[variant] / reps
        row = bh.measured(
            BENCH,
            f"{case}, 1st call",
            first[variant],
            "ms",
            datagrams=f"{received[variant]} rx ({per_process:.3g}/process)",
        )
        rows.append(row)
    ours, sdk = rows
    bh.target(ours, 1.0, "≤ 1 ms")
    bh.compare(ours, sdk, kind="diff", vs="aws-xray-sdk")
    ok = sum(1 for n in replayed if n == INIT_SPANS)
    ours["note"] = (
        f"{INIT_SPANS} init spans, then the first call's wall time in a fresh process; "
        f"Init document with all {INIT_SPANS} spans received in {ok}/{len(replayed)} "
        f"processes; 2 calls per process"
    )
    for variant, case in CASES.items():
        rows.append(bh.measured(BENCH, f"{case}, 2nd call", second[variant], "ms"))
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
