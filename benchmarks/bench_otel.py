"""6. Backend ``otel`` against the OpenTelemetry contrib Lambda setup.

Two measurements, each ours and its anchors in the same run, in fresh child
processes with the Lambda-like environment, ``_HANDLER`` set as Lambda sets it,
and our documents sent over real UDP to the 127.0.0.1 listener (cold start, set-up
included, against OTel contrib and ADOT is ``bench_import``):

* **Per-invocation overhead**, warm, sampled, trivial handler (as
  ``bench_invoke``: traced - bare call per batch, fresh ``_X_AMZN_TRACE_ID`` per
  call, one context object for all calls). Ours: ``tracing.handler`` on backend
  ``otel``. Contrib: the handler named by ``_HANDLER`` wrapped by
  ``AwsLambdaInstrumentor`` at instrument time; its wrapper itself calls
  ``force_flush`` on the global provider at the end of every invocation (as
  deployed; nothing is added), which makes the ``BatchSpanProcessor`` export the
  invocation's span to the in-memory exporter in the calling thread before the
  call returns. Anchor of
  the DESIGN target: aws-xray-sdk ``xray_recorder.capture`` (as in
  ``bench_invoke``). Every child counts the log records of level WARNING or above
  with a handler on the root logger.
* **First invocation with 20 init spans** made at import through the user's own
  OTel tracer (``trace.get_tracer("x").start_as_current_span``): the first
  call's wall time. Ours replays them into the first trace's Init document (the
  listener's copy is checked); contrib exports each as its own trace.
"""

from __future__ import annotations

import gc
import importlib
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

from . import _harness as bh

MODULE = "benchmarks.bench_otel"
ORDER = 60
BENCH_INVOKE = "6 otel per-invocation"
BENCH_COLD = "6 otel cold invocation"

COLD_REPS = 20
INIT_SPANS = 20
KEY = "_X_AMZN_TRACE_ID"
TIMEOUT_MS = 15 * 60 * 1000
EVENT: dict[str, Any] = {}
#: What ``AwsLambdaInstrumentor`` wraps in the per-invocation children.
HANDLER = f"{MODULE}.lambda_handler"

#: Versions shown in the table (the harness's machine line lists the other packages).
OTEL_PACKAGES = (
    "opentelemetry-api",
    "opentelemetry-sdk",
    "opentelemetry-instrumentation-aws-lambda",
    "opentelemetry-instrumentation-botocore",
)


#: The contrib Lambda set-up a user writes (``scope["exporter"]`` holds the spans).
_CONTRIB_SETUP = """\
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
provider = TracerProvider()
exporter = InMemorySpanExporter()
provider.add_span_processor(BatchSpanProcessor(exporter))
trace.set_tracer_provider(provider)
from opentelemetry.instrumentation.aws_lambda import AwsLambdaInstrumentor
AwsLambdaInstrumentor().instrument()
from opentelemetry.instrumentation.botocore import BotocoreInstrumentor
BotocoreInstrumentor().instrument()
"""


def otel_versions() -> str:
    found = []
    for name in OTEL_PACKAGES:
        try:
            found.append(f"{name.removeprefix('opentelemetry-')} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name.removeprefix('opentelemetry-')} missing")
    return ", ".join(found)


# --- 2. per-invocation overhead ----------------------------------------------------

INVOKE_CASES = {
    "ours": 'ours: tracing.handler, backend="otel"',
    "contrib": "OTel contrib: AwsLambdaInstrumentor + BatchSpanProcessor",
    "aws-xray-sdk": "aws-xray-sdk: xray_recorder.capture",
}


class LambdaContext:
    """The attributes of Lambda's context object that the tracers read, real deadline."""

    function_name = "bench"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    memory_limit_in_mb = 1024
    aws_request_id = "00000000-0000-0000-0000-000000000000"
    log_group_name = "/aws/lambda/bench"
    log_stream_name = "2026/01/01/[$LATEST]0123456789abcdef"

    def __init__(self, timeout_ms: float = TIMEOUT_MS) -> None:
        self._deadline = time.monotonic() + timeout_ms / 1000.0

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def lambda_handler(event: Any, context: Any) -> int:
    """The user's handler, named by ``_HANDLER`` (contrib wraps it in place)."""
    return 1


def bare(event: Any, context: Any) -> int:
    return 1


class _Counter(logging.Handler):
    """Counts the log records of level WARNING and above (and keeps the first)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0
        self.first = ""

    def emit(self, record: logging.LogRecord) -> None:
        if not self.count:
            self.first = f"{record.name}: {record.getMessage()}"[:160]
        self.count += 1


def _build(variant: str) -> tuple[Callable[[Any, Any], Any], Any]:
    """Set the variant up as a Lambda module would at import; returns (handler, exporter)."""
    if variant == "ours":
        import tracing

        tracing.configure(backend="otel")
        return tracing.handler(lambda_handler), None
    if variant == "contrib":
        scope: dict[str, Any] = {}
        exec(_CONTRIB_SETUP, scope)
        module, name = os.environ["_HANDLER"].rsplit(".", 1)
        return getattr(importlib.import_module(module), name), scope["exporter"]
    if variant == "aws-xray-sdk":
        from .bench_invoke import _build as build_sdk

        return build_sdk("aws-xray-sdk"), None
    raise SystemExit(f"unknown variant {variant!r}")


def _loop(fn: Callable[[Any, Any], Any], headers: Sequence[str], context: Any) -> float:
    environ = os.environ
    event = EVENT
    start = time.perf_counter()
    for header in headers:
        environ[KEY] = header
        fn(event, context)
    return time.perf_counter() - start


def invoke_child(variant: str, rounds: int, batch: int, warmup: int) -> None:
    counter = _Counter()
    logging.getLogger().addHandler(counter)
    traced, exporter = _build(variant)
    context = LambdaContext()
    _loop(traced, [bh.trace_header()], context)  # the cold invocation, excluded
    _loop(traced, [bh.trace_header() for _ in range(warmup)], context)
    exported = 0
    overhead, bare_us = [], []
    for i in range(rounds):
        headers = [bh.trace_header() for _ in range(batch)]
        if exporter is not None:
            exported += len(exporter.get_finished_spans())
            exporter.clear()  # what a real exporter would not keep
        gc.collect()
        if i % 2:
            t_traced = _loop(traced, headers, context)
            t_bare = _loop(bare, headers, context)
        else:
            t_bare = _loop(bare, headers, context)
            t_traced = _loop(traced, headers, context)
        overhead.append((t_traced - t_bare) / batch * 1e6)
        bare_us.append(t_bare / batch * 1e6)
    if exporter is not None:
        exported += len(exporter.get_finished_spans())
    out: dict[str, Any] = {
        "overhead_us": overhead,
        "bare_us": bare_us,
        "traced_calls": 1 + warmup + rounds * batch,
        "warnings": counter.count,
        "first_warning": counter.first,
        "exported": exported,
    }
    if variant == "ours":
        from tracing._runtime import get_runtime

        runtime = get_runtime()
        if runtime is not None:
            out["sent"] = runtime.emitter.sent
    bh.emit_json(out)


def run_invoke(
    children: int = 4, rounds: int = 5, batch: int = 2000, warmup: int = 500
) -> list[dict[str, Any]]:
    children = bh.scaled(children, 2)
    acc = {
        v: {"overhead_us": [], "bare_us": [], "expected": 0, "received": 0, "calls": 0}
        for v in INVOKE_CASES
    }
    warnings = dict.fromkeys(INVOKE_CASES, 0)
    exported = dict.fromkeys(INVOKE_CASES, 0)
    first_warning = ""
    with bh.Listener() as daemon:
        env = bh.lambda_env(daemon.address, _HANDLER=HANDLER)
        for _ in range(children):
            for variant in INVOKE_CASES:
                before = daemon.quiet()
                args = (str(rounds), str(batch), str(warmup))
                out = bh.run_module(MODULE, "invoke", variant, *args, env=env)
                got = daemon.quiet() - before
                a = acc[variant]
                a["overhead_us"] += out["overhead_us"]
                a["bare_us"] += out["bare_us"]
                a["expected"] += out.get("sent", out["traced_calls"])
                a["received"] += got
                a["calls"] += out["traced_calls"]
                warnings[variant] += out["warnings"]
                exported[variant] += out["exported"]
                if variant == "contrib" and out["first_warning"]:
                    first_warning = out["first_warning"]
    rows = {}
    for variant, case in INVOKE_CASES.items():
        a = acc[variant]
        sent = f"{a['received']}/{a['expected']} rx" if variant != "contrib" else "0 (memory)"
        rows[variant] = bh.measured(
            BENCH_INVOKE,
            case,
            a["overhead_us"],
            "µs",
            datagrams=sent,
            bare_call_us=bh.median(a["bare_us"]),
            warnings=warnings[variant],
            traced_calls=a["calls"],
        )
    ours, contrib, sdk = rows["ours"], rows["contrib"], rows["aws-xray-sdk"]
    bh.compare(ours, sdk, limit=0.3, vs="aws-xray-sdk")
    bh.compare(contrib, sdk, vs="aws-xray-sdk")
    vs_contrib = ours["median"] / contrib["median"]
    ours["note"] = (
        f"traced - bare call per invocation, fresh _X_AMZN_TRACE_ID each call, one context "
        f"object for all calls, batches of {batch} calls; ours = {vs_contrib:.2f}x OTel contrib; "
        f"log records ≥ WARNING during all traced calls: ours {warnings['ours']}, "
        f"aws-xray-sdk {warnings['aws-xray-sdk']}"
    )
    calls = acc["contrib"]["calls"]
    contrib["note"] = (
        f"InMemorySpanExporter: sends nothing (no datagram, no encoding); the wrapper's own "
        f"force_flush per invocation exports the span in the calling thread "
        f"({exported['contrib']}/{calls} invocation spans exported); "
        f"{warnings['contrib']} warnings logged in {calls} invocations "
        f"({warnings['contrib'] / calls:.2f} per invocation, counted by a handler on the root "
        f"logger, so not written anywhere): {first_warning!r}; OTel: {otel_versions()}"
    )
    return [ours, contrib, sdk]


# --- 3. first invocation with 20 init spans ---------------------------------------

_COLD_SETUP = {
    "ours": """\
import tracing
tracing.configure(backend="otel")
from opentelemetry import trace
tracer = trace.get_tracer("x")
for i in range({n}):
    with tracer.start_as_current_span(f"init step {{i}}"):
        pass

@tracing.handler
def h(event, context):
    return 1
exported = lambda: None
""",
    "contrib": """\
def h(event, context):
    return 1

{contrib}
tracer = trace.get_tracer("x")
for i in range({n}):
    with tracer.start_as_current_span(f"init step {{i}}"):
        pass
exported = lambda: len(exporter.get_finished_spans())
""",
}

_COLD_TEMPLATE = """\
import json, os, sys, time

class Context:
    function_name = "bench"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    aws_request_id = "00000000-0000-0000-0000-000000000000"
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
after_first = exported()
os.environ["_X_AMZN_TRACE_ID"] = second
context = Context(900000)
t2 = time.perf_counter()
h({{}}, context)
t3 = time.perf_counter()
sys.stdout.write(json.dumps({{"first_ms": (t1 - t0) * 1e3, "second_ms": (t3 - t2) * 1e3,
                             "root": first.split(";")[0][5:], "exported": after_first}}) + "\\n")
"""

COLD_CASES = {
    "ours": 'ours: tracing.handler, backend="otel"',
    "contrib": "OTel contrib: AwsLambdaInstrumentor",
}


def cold_code(variant: str) -> str:
    setup = _COLD_SETUP[variant].format(n=INIT_SPANS, contrib=_CONTRIB_SETUP)
    return _COLD_TEMPLATE.format(setup=setup)


def _replayed(documents: list[dict[str, Any]], root: str) -> int | None:
    """The user's init spans inside the Init document of trace ``root``, if it arrived."""
    for doc in documents:
        if doc.get("trace_id") == root and doc.get("name") == "Init":
            names = [s.get("name", "") for s in doc.get("subsegments", ())]
            return sum(1 for n in names if n.startswith("init step "))
    return None


def run_cold() -> list[dict[str, Any]]:
    reps = bh.scaled(COLD_REPS)
    first: dict[str, list[float]] = {v: [] for v in COLD_CASES}
    second: dict[str, list[float]] = {v: [] for v in COLD_CASES}
    received = dict.fromkeys(COLD_CASES, 0)
    replayed: list[int | None] = []
    exported: list[int] = []
    with bh.Listener() as daemon:
        env = bh.lambda_env(daemon.address, _HANDLER="__main__.h")
        for rep in range(reps + 1):
            for variant in COLD_CASES:
                before = daemon.quiet(0.05)
                out = bh.run_code(cold_code(variant), env)
                got = daemon.quiet(0.05) - before
                if not rep:  # warm-up round (disk cache), discarded
                    continue
                first[variant].append(out["first_ms"])
                second[variant].append(out["second_ms"])
                received[variant] += got
                if variant == "ours":
                    replayed.append(_replayed(daemon.documents(), out["root"]))
                else:
                    exported.append(out["exported"])
    rows = []
    for variant, case in COLD_CASES.items():
        sent = f"{received[variant]} rx ({received[variant] / reps:.3g}/process)"
        rows.append(
            bh.measured(BENCH_COLD, f"{case}, 1st call", first[variant], "ms", datagrams=sent)
        )
    ours, contrib = rows
    bh.target(ours, 1.0, "≤ 1 ms")
    bh.compare(ours, contrib, kind="diff", vs="OTel contrib")
    full = sum(1 for n in replayed if n == INIT_SPANS)
    counts = sorted({n for n in replayed if n is not None})
    ours["note"] = (
        f"{INIT_SPANS} spans from trace.get_tracer('x').start_as_current_span at import, then "
        f"the first call's wall time in a fresh process; Init document holding all "
        f"{INIT_SPANS} spans received in {full}/{len(replayed)} processes (span counts seen: "
        f"{counts}); 2 calls per process"
    )
    contrib["note"] = (
        f"contrib's first call flushes the {INIT_SPANS} init spans (each its own trace) with "
        f"its own span to the InMemorySpanExporter: spans exported by the end of the 1st call "
        f"{min(exported)}-{max(exported)}; sends nothing"
    )
    for variant, case in COLD_CASES.items():
        rows.append(bh.measured(BENCH_COLD, f"{case}, 2nd call", second[variant], "ms"))
    return rows


# --- entry points ---------------------------------------------------------------------


def run() -> list[dict[str, Any]]:
    return [*run_invoke(), *run_cold()]


def main(argv: Sequence[str]) -> None:
    if argv[:2] == ["--child", "invoke"]:
        variant, rounds, batch, warmup = argv[2:6]
        invoke_child(variant, int(rounds), int(batch), int(warmup))
        return
    for row in run():
        print(row)


if __name__ == "__main__":
    main(sys.argv[1:])
