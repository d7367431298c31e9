"""7. Memory: RSS after setup, and RSS growth over 100,000 invocations.

* **RSS after setup**, in a fresh ``python -c`` per repetition with the
  Lambda-like environment (``_HANDLER=__main__.handler``, defined first): VmRSS
  from ``/proc/self/status`` after the statements and a ``gc.collect()``, before
  anything else is imported. Variants, all on top of ``import boto3``: ours
  ``tracing.configure()`` (xray) against aws-xray-sdk + ``patch(["botocore"])``;
  ours ``tracing.configure(backend="otel")`` against the OTel contrib Lambda setup
  of ``bench_otel`` (SDK ``TracerProvider`` + ``BatchSpanProcessor`` +
  ``InMemorySpanExporter``, ``AwsLambdaInstrumentor``, ``BotocoreInstrumentor``),
  and the SDK provider + processor alone. Target (DESIGN): ≤ the backend
  library's own + 2 MiB. Repetitions interleaved; medians.
* **RSS growth over 100,000 invocations** per backend, in a fresh process:
  ``@tracing.handler`` around a trivial handler with one ``tracing.span``, a fresh
  ``_X_AMZN_TRACE_ID`` and ``FakeContext`` per call, UDP documents to the
  127.0.0.1 listener. RSS (after ``gc.collect()``) after a 5,000-invocation
  warm-up and at the end; target: flat (< 1 MiB). The header is written into
  ``os.environ``'s mapping, not through glibc ``setenv()``: that one keeps every
  distinct string it was given (about 140 bytes per fresh header) whoever calls
  it, which the reference row shows with an untraced handler and
  ``os.environ[...] = header``, as awslambdaric sets it per invocation.
"""

from __future__ import annotations

import gc
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from . import _harness as bh
from .bench_otel import _CONTRIB_SETUP, otel_versions

MODULE = "benchmarks.bench_memory"
ORDER = 70
BENCH_SETUP = "7 RSS after setup"
BENCH_GROWTH = "7 RSS growth"

SETUP_REPS = 7
GROWTH_CHILDREN = 3
INVOCATIONS = 100_000
WARMUP = 5_000
SAMPLE_EVERY = 10_000
KEY = "_X_AMZN_TRACE_ID"

_OTEL_SDK = """\
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
provider = TracerProvider()
provider.add_span_processor(BatchSpanProcessor(InMemorySpanExporter()))
trace.set_tracer_provider(provider)
"""

SETUP_VARIANTS = {
    "boto3": "import boto3",
    "ours-xray": "import boto3\nimport tracing\ntracing.configure()",
    "sdk": "import boto3\nfrom aws_xray_sdk.core import patch, xray_recorder\npatch(['botocore'])",
    "ours-otel": 'import boto3\nimport tracing\ntracing.configure(backend="otel")',
    "otel-sdk": "import boto3\n" + _OTEL_SDK,
    "contrib": "import boto3\n" + _CONTRIB_SETUP,
}

SETUP_CASES = {
    "boto3": "import boto3",
    "ours-xray": "boto3 + tracing + configure()",
    "sdk": "boto3 + aws_xray_sdk + patch(botocore)",
    "ours-otel": 'boto3 + tracing + configure(backend="otel")',
    "otel-sdk": "boto3 + OTel SDK TracerProvider + BatchSpanProcessor",
    "contrib": "boto3 + OTel SDK + contrib Lambda & botocore instrumentors",
}

_SETUP_TEMPLATE = """\
def handler(event, context):
    return 1

{body}
import gc, sys
gc.collect()
_status = dict(line.split(":", 1) for line in open("/proc/self/status"))
_kib = {{k: int(_status[k].split()[0]) for k in ("VmRSS", "VmHWM", "RssAnon", "RssFile")}}
import json, threading
sys.stdout.write(json.dumps({{"kib": _kib, "modules": len(sys.modules),
                             "threads": threading.active_count()}}) + "\\n")
"""


def run_setup() -> list[dict[str, Any]]:
    reps = bh.scaled(SETUP_REPS)
    samples: dict[str, list[float]] = {name: [] for name in SETUP_VARIANTS}
    detail: dict[str, dict[str, Any]] = {}
    with bh.Listener() as daemon:
        env = bh.lambda_env(daemon.address, _HANDLER="__main__.handler")
        for _ in range(reps):
            for name, statements in SETUP_VARIANTS.items():
                out = bh.run_code(_SETUP_TEMPLATE.format(body=statements), env)
                samples[name].append(out["kib"]["VmRSS"] / 1024.0)
                detail[name] = out
        sent = daemon.quiet()
    rows = {}
    for name, case in SETUP_CASES.items():
        kib, out = detail[name]["kib"], detail[name]
        rows[name] = bh.measured(
            BENCH_SETUP,
            case,
            samples[name],
            "MiB",
            anon_mib=round(kib["RssAnon"] / 1024.0, 2),
            file_mib=round(kib["RssFile"] / 1024.0, 2),
            modules=out["modules"],
            threads=out["threads"],
        )
    bh.compare(rows["ours-xray"], rows["sdk"], kind="diff", limit=2, vs="aws-xray-sdk")
    bh.compare(rows["ours-otel"], rows["contrib"], kind="diff", limit=2, vs="OTel contrib")
    bh.compare(rows["otel-sdk"], rows["contrib"], kind="diff", vs="OTel contrib")
    base = bh.median(samples["boto3"])
    on_top = ", ".join(
        f"{key} {bh.median(samples[key]) - base:+.2f}"
        for key in ("ours-xray", "sdk", "ours-otel", "otel-sdk", "contrib")
    )
    anon = ", ".join(f"{key} {row['anon_mib']:.1f}" for key, row in rows.items())
    sdk_only = bh.median(samples["ours-otel"]) - bh.median(samples["otel-sdk"])
    rows["ours-otel"]["note"] = (
        f"{sdk_only:+.2f} MiB vs the OTel SDK TracerProvider + BatchSpanProcessor alone "
        f"(no instrumentors)"
    )
    rows["boto3"]["note"] = (
        f"VmRSS after the statements and gc.collect() in a fresh `python -c` ({reps} runs "
        f"each, interleaved), Lambda-like env, _HANDLER=__main__.handler; MiB on top of "
        f"import boto3: {on_top}; of which anonymous (heap) MiB: {anon}; datagrams sent "
        f"during setup: {sent} (expected 0); OTel: {otel_versions()}"
    )
    return list(rows.values())


# --- growth over 100,000 invocations ---------------------------------------------------


def _rss_mib() -> float:
    gc.collect()
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS")


def growth_child(variant: str, total: int, warmup: int, every: int) -> None:
    from tracing.testing import FakeContext

    if variant in ("xray", "otel"):
        import tracing

        tracing.configure(backend=variant)

        @tracing.handler
        def handler(event: Any, context: Any) -> int:
            with tracing.span("work"):
                return 1

        data = os.environ._data  # type: ignore[attr-defined]
        key = os.fsencode(KEY)

        def set_header(header: str) -> None:
            data[key] = os.fsencode(header)  # no setenv(): see the module docstring

    elif variant == "setenv":

        def handler(event: Any, context: Any) -> int:
            return 1

        environ = os.environ

        def set_header(header: str) -> None:
            environ[KEY] = header  # as awslambdaric's bootstrap does per invocation

    else:
        raise SystemExit(f"unknown variant {variant!r}")

    event: dict[str, Any] = {}

    def invoke(n: int) -> None:
        now = time.time()
        for _ in range(n):
            set_header(bh.trace_header(now))
            handler(event, FakeContext(3000.0))

    setup_mib = _rss_mib()
    len(gc.get_objects())  # its first big list moves glibc's mmap threshold; not growth
    invoke(warmup)
    samples = [(warmup, _rss_mib(), len(gc.get_objects()))]
    started = time.perf_counter()
    done = warmup
    while done < total:
        step = min(every, total - done)
        invoke(step)
        done += step
        samples.append((done, _rss_mib(), len(gc.get_objects())))
    out: dict[str, Any] = {
        "setup_mib": setup_mib,
        "samples": samples,
        "us_per_call": (time.perf_counter() - started) / (total - warmup) * 1e6,
        "calls": total,
    }
    if variant != "setenv":
        from tracing._runtime import get_runtime

        runtime = get_runtime()
        if runtime is not None:
            out["sent"] = runtime.emitter.sent
            out["failed"] = runtime.emitter.failed
    bh.emit_json(out)


GROWTH_CASES = {
    "xray": "ours xray: 100k invocations, 1 span each",
    "otel": "ours otel: 100k invocations, 1 span each",
    "setenv": "reference: untraced, os.environ[KEY] = header",
}


def run_growth() -> list[dict[str, Any]]:
    children = bh.scaled(GROWTH_CHILDREN, 1)
    acc: dict[str, dict[str, Any]] = {
        v: {"growth": [], "objects": [], "trails": [], "expected": 0, "received": 0, "us": []}
        for v in GROWTH_CASES
    }
    with bh.Listener() as daemon:
        env = bh.lambda_env(daemon.address)
        for _ in range(children):
            for variant in GROWTH_CASES:
                before = daemon.quiet()
                args = (str(INVOCATIONS), str(WARMUP), str(SAMPLE_EVERY))
                out = bh.run_module(MODULE, "growth", variant, *args, env=env)
                got = daemon.quiet() - before
                samples = out["samples"]
                a = acc[variant]
                a["growth"].append(samples[-1][1] - samples[0][1])
                a["objects"].append(samples[-1][2] - samples[0][2])
                a["trails"].append(" ".join(f"{mib:.2f}" for _, mib, _ in samples))
                a["expected"] += out.get("sent", 0)
                a["received"] += got
                a["failed"] = a.get("failed", 0) + out.get("failed", 0)
                a["us"].append(out["us_per_call"])
                a["setup_mib"] = out["setup_mib"]
    rows = []
    for variant, case in GROWTH_CASES.items():
        a = acc[variant]
        extra: dict[str, Any] = {
            "object_growth": a["objects"],
            "us_per_call": round(bh.median(a["us"]), 1),
            "setup_mib": round(a["setup_mib"], 2),
        }
        if variant != "setenv":
            extra["datagrams"] = f"{a['received']}/{a['expected']} rx"
            extra["failed"] = a["failed"]
        row = bh.measured(BENCH_GROWTH, case, a["growth"], "MiB", **extra)
        if variant != "setenv":
            bh.target(row, 1.0, "< 1 MiB (flat)")
        row["note"] = (
            f"RSS after {WARMUP} warm-up invocations, then every {SAMPLE_EVERY} up to "
            f"{INVOCATIONS} (MiB, one child): {a['trails'][0]}; gc objects after warm-up "
            f"-> end: {', '.join(f'{n:+d}' for n in a['objects'])}; "
            f"{bh.median(a['us']):.1f} µs per loop iteration"
        )
        rows.append(row)
    rows[-1]["note"] += (
        " — glibc setenv() keeps every distinct string (Python >= 3.9 os.putenv calls "
        "setenv); the Lambda runtime (awslambdaric) sets _X_AMZN_TRACE_ID this way "
        "per invocation, so this growth exists in Lambda whatever the tracer"
    )
    return rows


def run() -> list[dict[str, Any]]:
    return [*run_setup(), *run_growth()]


def main(argv: Sequence[str]) -> None:
    if argv[:2] == ["--child", "growth"]:
        variant, total, warmup, every = argv[2:6]
        growth_child(variant, int(total), int(warmup), int(every))
        return
    for row in run():
        print(row)


if __name__ == "__main__":
    main(sys.argv[1:])
