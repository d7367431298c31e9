"""2. Cold start: import + set-up of each tracer, in process and whole process.

**In process (the headline: what Lambda's INIT pays).** A fresh ``python -c``
per repetition imports what the function imports anyway (``boto3``; for the
OpenTelemetry group also the OTel SDK), then ``time.perf_counter`` brackets the
tracer's own statements:

* ours, native: ``import tracing; tracing.configure()``;
* aws-xray-sdk: ``from aws_xray_sdk.core import patch, xray_recorder; patch(['botocore'])``;
* Powertools: ``from aws_lambda_powertools import Tracer; Tracer(service=...)``;
* ours, otel: ``tracing.configure(backend="otel")`` (also with
  ``botocore_instrumentation="contrib"``), on top of the OTel SDK's import;
* OTel contrib, the setup a Lambda user writes: SDK ``TracerProvider`` +
  ``BatchSpanProcessor`` + ``InMemorySpanExporter``, ``AwsLambdaInstrumentor`` and
  ``BotocoreInstrumentor``, on top of the same import;
* ADOT (``aws-opentelemetry-distro``, in its own venv ``.venv-adot`` made on
  first use): what its Lambda layer runs before the handler, with the layer
  wrapper's environment (``OTEL_PYTHON_DISTRO=aws_distro``,
  ``OTEL_PYTHON_CONFIGURATOR=aws_configurator``, its disabled-instrumentation
  list...): ``auto_instrumentation.initialize()`` (the ``sitecustomize`` of
  ``opentelemetry-instrument``) and ``AwsLambdaInstrumentor().instrument()`` (its
  ``otel_wrapper``), on top of ``import boto3`` (ADOT imports the SDK itself).

The garbage collector's phase is randomised: each child runs ``gc.collect()``
after its base imports and then keeps a random number (0-6,999) of empty lists
alive, so whether a generation-1 pass (one per 7,000 allocations) falls inside
the timed statements is chance, as it is in a real function, not an accident of
what was imported before.

**Whole process.** Wall time from spawning ``python -c`` to its exit, paired per
round with the same interpreter running only the base imports, so the figure
includes interpreter exit (atexit handlers, module teardown, threads). The child
stamps ``time.time()`` last; "exit" rows are what the tracer adds between that
stamp and the process being reaped. ADOT runs as its layer runs it:
``opentelemetry-instrument python -c ...``.

Repetitions are interleaved (each round runs every variant once) after one
discarded warm-up round, so disk cache and machine drift hit all variants alike.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from typing import Any

from . import _harness as bh

ORDER = 20
BENCH = "2 cold start, in process"
BENCH_ALONE = "2 cold start, no boto3"
BENCH_WHOLE = "2 cold start, whole process"
REPS = 25
TARGET_MS = 5.0


BOTO3 = "import boto3"
OTEL_SDK = "import boto3\nimport opentelemetry.sdk.trace, opentelemetry.trace"
AWSLAMBDARIC = "import awslambdaric.bootstrap"

_CONTRIB = """\
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
provider = TracerProvider()
provider.add_span_processor(BatchSpanProcessor(InMemorySpanExporter()))
trace.set_tracer_provider(provider)
from opentelemetry.instrumentation.aws_lambda import AwsLambdaInstrumentor
AwsLambdaInstrumentor().instrument()
from opentelemetry.instrumentation.botocore import BotocoreInstrumentor
BotocoreInstrumentor().instrument()
"""

_ADOT = """\
from opentelemetry.instrumentation.auto_instrumentation import initialize
initialize()
from opentelemetry.instrumentation.aws_lambda import AwsLambdaInstrumentor
AwsLambdaInstrumentor().instrument()
"""

#: The wrapper instrumentation for ADOT's whole-process run (``initialize()`` is
#: done by ``opentelemetry-instrument``'s ``sitecustomize``).
_ADOT_WRAPPER = """\
from opentelemetry.instrumentation.aws_lambda import AwsLambdaInstrumentor
AwsLambdaInstrumentor().instrument()
"""


class Variant:
    """One tracer set-up: what runs before the clock, what is timed, and where."""

    def __init__(self, case: str, base: str, body: str, adot: bool = False) -> None:
        self.case = case
        self.base = base
        self.body = body
        self.adot = adot


IN_PROCESS = {
    "ours": Variant("ours: tracing.configure()", BOTO3, "import tracing\ntracing.configure()"),
    "sdk": Variant(
        "aws-xray-sdk + patch(botocore)",
        BOTO3,
        "from aws_xray_sdk.core import patch, xray_recorder\npatch(['botocore'])",
    ),
    "powertools": Variant(
        "Powertools Tracer()",
        BOTO3,
        "from aws_lambda_powertools import Tracer\nTracer(service='bench')",
    ),
    "ours-otel": Variant(
        'ours: configure(backend="otel")',
        OTEL_SDK,
        'import tracing\ntracing.configure(backend="otel")',
    ),
    "ours-otel-contrib": Variant(
        'ours: configure(backend="otel", botocore contrib)',
        OTEL_SDK,
        'import tracing\ntracing.configure(backend="otel", botocore_instrumentation="contrib")',
    ),
    "contrib": Variant("OTel contrib Lambda + botocore instrumentors", OTEL_SDK, _CONTRIB),
    "adot": Variant("ADOT layer (aws-opentelemetry-distro)", BOTO3, _ADOT, adot=True),
}

#: Functions that never import boto3: on top of what awslambdaric itself imports.
ALONE = {
    "ours": Variant(
        "ours: tracing.configure()", AWSLAMBDARIC, "import tracing\ntracing.configure()"
    ),
    "sdk": Variant(
        "aws-xray-sdk + patch(botocore)",
        AWSLAMBDARIC,
        "from aws_xray_sdk.core import patch, xray_recorder\npatch(['botocore'])",
    ),
}

WHOLE = {
    "ours": Variant("ours: tracing.configure()", BOTO3, IN_PROCESS["ours"].body),
    "sdk": Variant("aws-xray-sdk + patch(botocore)", BOTO3, IN_PROCESS["sdk"].body),
    "powertools": Variant("Powertools Tracer()", BOTO3, IN_PROCESS["powertools"].body),
    "ours-otel": Variant('ours: configure(backend="otel")', OTEL_SDK, IN_PROCESS["ours-otel"].body),
    "contrib": Variant("OTel contrib instrumentors", OTEL_SDK, _CONTRIB),
    "adot": Variant("ADOT layer: opentelemetry-instrument", BOTO3, _ADOT_WRAPPER, adot=True),
}

_TIMED = """\
import gc, json, random, sys, time

def handler(event, context):
    return 1

{base}
gc.collect()
_pad = [[] for _ in range(random.randrange(7000))]
_t0 = time.perf_counter()
{body}
_t1 = time.perf_counter()
sys.stdout.write(json.dumps({{"ms": (_t1 - _t0) * 1e3, "modules": len(sys.modules)}}) + "\\n")
"""

_WHOLE = """\
def handler(event, context):
    return 1

{base}
{body}
import json, sys, time
sys.stdout.write(json.dumps({{"end": time.time()}}) + "\\n")
"""


def _python(adot: bool) -> str:
    return bh.adot_python() if adot else sys.executable


def _spawn(args: list[str], env: dict[str, str]) -> tuple[dict[str, Any], float]:
    """Run a child; its last stdout line as JSON, and when it was reaped (``time.time()``)."""
    started = time.time()
    proc = subprocess.run(
        args,
        cwd=bh.ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    ended = time.time()
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    if proc.returncode != 0 or not lines:
        tail = "\n".join(proc.stderr.splitlines()[-15:])
        raise bh.ChildError(f"child {args[:3]} exited {proc.returncode}:\n{tail}")
    out = json.loads(lines[-1])
    out["wall_ms"] = (ended - started) * 1e3
    return out, ended


def _env(variant: Variant, daemon: str) -> dict[str, str]:
    extra = {"_HANDLER": "__main__.handler"}
    if variant.adot:
        extra.update(bh.adot_env("__main__.handler"))
        # Our repository is not on an ADOT function's path.
        env = bh.lambda_env(daemon, **extra)
        env.pop("PYTHONPATH", None)
        return env
    return bh.lambda_env(daemon, **extra)


def _timed(variant: Variant, daemon: str) -> dict[str, Any]:
    code = _TIMED.format(base=variant.base, body=textwrap.dedent(variant.body))
    out, _ = _spawn([_python(variant.adot), "-c", code], _env(variant, daemon))
    return out


def _whole(variant: Variant, daemon: str, traced: bool) -> tuple[float, float]:
    """(wall ms, exit ms) of the variant, or of its base imports only."""
    body = variant.body if traced else ""
    code = _WHOLE.format(base=variant.base, body=textwrap.dedent(body))
    python = _python(variant.adot)
    args = [python, "-c", code]
    if variant.adot and traced:
        args = [*bh.adot_instrumented(), "-c", code]
    out, reaped = _spawn(args, _env(variant, daemon))
    return out["wall_ms"], (reaped - out["end"]) * 1e3


def run() -> list[dict[str, Any]]:
    reps = bh.scaled(REPS)
    try:
        adot_version: str | None = bh.ensure_adot()
    except (OSError, subprocess.SubprocessError) as exc:
        print(f"  ADOT venv unavailable ({exc}); ADOT rows skipped", file=sys.stderr)
        adot_version = None
    in_process = {k: v for k, v in IN_PROCESS.items() if adot_version or not v.adot}
    whole = {k: v for k, v in WHOLE.items() if adot_version or not v.adot}

    samples: dict[str, list[float]] = {name: [] for name in in_process}
    alone: dict[str, list[float]] = {name: [] for name in ALONE}
    modules: dict[str, int] = {}
    wall: dict[str, list[float]] = {name: [] for name in whole}
    exits: dict[str, list[float]] = {name: [] for name in whole}
    bases = {"boto3": WHOLE["ours"], "otel": WHOLE["ours-otel"], "adot": WHOLE.get("adot")}
    base_wall: dict[str, list[float]] = {
        name: [] for name, v in bases.items() if v in whole.values()
    }
    base_exit: dict[str, list[float]] = {name: [] for name in base_wall}
    with bh.Listener() as daemon:
        address = daemon.address
        for rep in range(reps + 1):
            for name, variant in in_process.items():
                out = _timed(variant, address)
                if rep:  # round 0 warms the disk cache and is discarded
                    samples[name].append(out["ms"])
                    modules[name] = out["modules"]
            for name, variant in ALONE.items():
                out = _timed(variant, address)
                if rep:
                    alone[name].append(out["ms"])
            for name in base_wall:
                variant = bases[name]
                ms, ex = _whole(variant, address, traced=False)
                if rep:
                    base_wall[name].append(ms)
                    base_exit[name].append(ex)
            for name, variant in whole.items():
                ms, ex = _whole(variant, address, traced=True)
                if rep:
                    wall[name].append(ms)
                    exits[name].append(ex)
        sent = daemon.quiet()

    rows = _in_process_rows(in_process, samples, modules, reps, sent, adot_version)
    rows += _alone_rows(alone)
    rows += _whole_rows(whole, wall, exits, base_wall, base_exit)
    return rows


def _in_process_rows(
    variants: dict[str, Variant],
    samples: dict[str, list[float]],
    modules: dict[str, int],
    reps: int,
    sent: int,
    adot_version: str | None,
) -> list[dict[str, Any]]:
    rows = {
        name: bh.measured(BENCH, v.case, samples[name], "ms", modules=modules[name])
        for name, v in variants.items()
    }
    ours, otel = rows["ours"], rows["ours-otel"]
    bh.target(ours, TARGET_MS, f"≤ {TARGET_MS:g} ms")
    bh.target(otel, TARGET_MS, f"≤ {TARGET_MS:g} ms")
    bh.compare(ours, rows["sdk"], vs="aws-xray-sdk")
    bh.compare(otel, rows["contrib"], vs="OTel contrib")
    bh.compare(rows["ours-otel-contrib"], rows["contrib"], vs="OTel contrib")
    ratios = [_versus("ours, native", ours, rows["powertools"], "Powertools")]
    if "adot" in rows:
        ratios.append(_versus("ours, otel", otel, rows["adot"], "ADOT layer"))
    ours["note"] = (
        f"time.perf_counter around the tracer's statements in a fresh `python -c` after "
        f"`import boto3` ({reps} runs each, interleaved, GC phase randomised); the otel group "
        f"after `import boto3` and the OTel SDK's import; datagrams sent during set-up: {sent} "
        f"(expected 0)"
    )
    if "adot" in rows:
        rows["adot"]["note"] = (
            f"aws-opentelemetry-distro {adot_version} in .venv-adot, the layer wrapper's "
            f"environment; auto_instrumentation.initialize() + AwsLambdaInstrumentor().instrument()"
            f" after `import boto3` (ADOT imports the OTel SDK itself)"
        )
    return [*rows.values(), *ratios]


def _versus(label: str, ours: dict[str, Any], anchor: dict[str, Any], name: str) -> dict[str, Any]:
    """A row holding ours / anchor for an anchor the ``vs anchor`` column does not show."""
    row = bh.derived(ours["bench"], f"{label} / {name}", ours["median"] / anchor["median"], "x")
    row["vs"] = name
    return row


def _alone_rows(alone: dict[str, list[float]]) -> list[dict[str, Any]]:
    rows = {name: bh.measured(BENCH_ALONE, ALONE[name].case, alone[name], "ms") for name in ALONE}
    bh.compare(rows["ours"], rows["sdk"], vs="aws-xray-sdk")
    rows["ours"]["note"] = (
        "a function that never imports boto3, on top of what awslambdaric's bootstrap imports: "
        "ours pays for the stdlib modules it needs (typing, socket, random...) and never imports "
        "botocore (its hooks wait for botocore to be imported); patch(['botocore']) imports it"
    )
    return list(rows.values())


def _whole_rows(
    whole: dict[str, Variant],
    wall: dict[str, list[float]],
    exits: dict[str, list[float]],
    base_wall: dict[str, list[float]],
    base_exit: dict[str, list[float]],
) -> list[dict[str, Any]]:
    def base_of(name: str) -> str:
        if name == "adot":
            return "adot"
        return "otel" if whole[name].base == OTEL_SDK else "boto3"

    rows: dict[str, dict[str, Any]] = {}
    exit_rows: dict[str, dict[str, Any]] = {}
    for name, variant in whole.items():
        base = base_of(name)
        paired = [a - b for a, b in zip(wall[name], base_wall[base], strict=True)]
        rows[name] = bh.measured(BENCH_WHOLE, f"{variant.case}, added", paired, "ms")
        paired_exit = [a - b for a, b in zip(exits[name], base_exit[base], strict=True)]
        exit_rows[name] = bh.measured(
            BENCH_WHOLE, f"{variant.case}, of which at exit", paired_exit, "ms"
        )
    bh.compare(rows["ours"], rows["sdk"], vs="aws-xray-sdk")
    bh.compare(rows["ours-otel"], rows["contrib"], vs="OTel contrib")
    if "adot" in rows:
        bh.compare(rows["ours-otel"], rows["adot"], vs="ADOT layer")
    bh.compare(exit_rows["ours"], exit_rows["sdk"], kind="diff", vs="aws-xray-sdk")
    base_median = bh.median(base_wall["boto3"])
    rows["ours"]["note"] = (
        f"spawn-to-reap wall time of `python -c` minus the same round's run with only the base "
        f"imports (`import boto3` alone takes {base_median:.0f} ms whole-process here); "
        f"'at exit' = from the child's last statement to the process being reaped, paired the "
        f"same way; ADOT as its layer runs it (`opentelemetry-instrument python ...`, two "
        f"interpreter start-ups)"
    )
    return [*rows.values(), *exit_rows.values()]


if __name__ == "__main__":
    for row in run():
        print(row)
