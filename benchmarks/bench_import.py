"""2. Import + configure cost, each repetition in a fresh interpreter.

The child is ``python -c`` with nothing imported before the measured statements
but ``time``; ``time.perf_counter`` brackets the statements, so interpreter
start-up is excluded. Lambda-like environment, init phase (no trace header).
Repetitions are interleaved (each round runs every variant once) after one
discarded warm-up round, so disk cache and machine drift hit all variants alike.

Deltas "on top of import boto3" are paired per round (same round's boto3-only
run), then summarized; ours - anchor is the difference of those medians.

Stack-depth sensitivity: on CPython 3.11 the cost of a big import depends on how
deep in the call stack it runs. When the interpreter's frame stack crosses one of
its 16 KiB chunks back and forth, every crossing is an ``mmap``/``munmap`` pair;
``urllib3.util.url``'s regex compilation alone then takes 10-20 ms longer. So
``tracing.configure()`` (which imports botocore a few frames down) and a
top-level ``patch()`` can differ by that much for no reason of their own. The
"alone" pair is therefore also run at a random call depth (0-63 extra frames,
the same for both variants within a round) to show how much of the difference is
this artifact.
"""

from __future__ import annotations

import random
import textwrap
from typing import Any

from . import _harness as bh

ORDER = 20
BENCH = "2 import + configure"
REPS = 25
MAX_DEPTH = 64

VARIANTS = {
    "boto3": "import boto3",
    "boto3+ours": "import boto3\nimport tracing\ntracing.configure()",
    "boto3+sdk": (
        "import boto3\nfrom aws_xray_sdk.core import patch, xray_recorder\npatch(['botocore'])"
    ),
    "boto3+powertools": (
        "import boto3\nfrom aws_lambda_powertools import Tracer\nTracer(service='bench')"
    ),
    "ours": "import tracing\ntracing.configure()",
    "sdk": "from aws_xray_sdk.core import patch, xray_recorder\npatch(['botocore'])",
}

CASES = {
    "boto3": "import boto3",
    "boto3+ours": "boto3 + tracing + configure()",
    "boto3+sdk": "boto3 + aws_xray_sdk + patch(botocore)",
    "boto3+powertools": "boto3 + powertools Tracer()",
    "ours": "tracing + configure() alone",
    "sdk": "aws_xray_sdk + patch(botocore) alone",
}

DEPTH_VARIANTS = ("ours", "sdk")

_TEMPLATE = """\
import time
_t0 = time.perf_counter()
{body}
_t1 = time.perf_counter()
import json, sys
sys.stdout.write(json.dumps({{"ms": (_t1 - _t0) * 1e3, "modules": len(sys.modules)}}) + "\\n")
"""

_DEPTH_TEMPLATE = """\
import time

def _nest(n):
    if n:
        return _nest(n - 1)
    t0 = time.perf_counter()
    exec(compile({body!r}, "<bench>", "exec"), {{"__name__": "__main__"}})
    return time.perf_counter() - t0

_dt = _nest({depth})
import json, sys
sys.stdout.write(json.dumps({{"ms": _dt * 1e3, "modules": len(sys.modules)}}) + "\\n")
"""


def code(statements: str, depth: int | None = None) -> str:
    """The child program timing ``statements`` (at ``depth`` extra frames if given)."""
    body = textwrap.dedent(statements)
    if depth is None:
        return _TEMPLATE.format(body=body)
    return _DEPTH_TEMPLATE.format(body=body, depth=depth)


def run() -> list[dict[str, Any]]:
    reps = bh.scaled(REPS)
    samples: dict[str, list[float]] = {name: [] for name in VARIANTS}
    at_depth: dict[str, list[float]] = {name: [] for name in DEPTH_VARIANTS}
    modules: dict[str, int] = {}
    rng = random.Random(2000)
    with bh.Listener() as daemon:
        env = bh.lambda_env(daemon.address)
        for rep in range(reps + 1):
            for name, statements in VARIANTS.items():
                out = bh.run_code(code(statements), env)
                if rep:  # round 0 warms the disk cache and is discarded
                    samples[name].append(out["ms"])
                    modules[name] = out["modules"]
            depth = rng.randrange(MAX_DEPTH)
            for name in DEPTH_VARIANTS:
                out = bh.run_code(code(VARIANTS[name], depth), env)
                if rep:
                    at_depth[name].append(out["ms"])
        sent = daemon.quiet()
    rows = {
        name: bh.measured(BENCH, CASES[name], values, "ms", modules=modules[name])
        for name, values in samples.items()
    }
    base = samples["boto3"]
    deltas = {}
    for name in ("boto3+ours", "boto3+sdk", "boto3+powertools"):
        paired = [a - b for a, b in zip(samples[name], base, strict=True)]
        label = CASES[name].removeprefix("boto3 + ")
        deltas[name] = bh.measured(BENCH, f"{label}, on top of boto3", paired, "ms")
    sdk_delta = "aws-xray-sdk on top of boto3"
    bh.compare(deltas["boto3+ours"], deltas["boto3+sdk"], kind="diff", limit=5.0, vs=sdk_delta)
    bh.compare(deltas["boto3+powertools"], deltas["boto3+sdk"], kind="diff", vs=sdk_delta)
    bh.compare(rows["ours"], rows["sdk"], kind="diff", vs="aws-xray-sdk alone")
    depth_rows = {
        name: bh.measured(BENCH, f"{CASES[name]}, random call depth", at_depth[name], "ms")
        for name in DEPTH_VARIANTS
    }
    bh.compare(depth_rows["ours"], depth_rows["sdk"], kind="diff", vs="aws-xray-sdk same depth")
    rows["boto3"]["note"] = (
        f"time.perf_counter around the statements in a fresh `python -c` ({reps} runs each, "
        f"interleaved); 'on top of boto3' = paired per-round difference with `import boto3`; "
        f"datagrams sent during import/configure: {sent} (expected 0)"
    )
    depth_rows["ours"]["note"] = (
        f"the same statements run {MAX_DEPTH - 1} or fewer frames deep (random per round, same "
        f"for both): CPython 3.11 frame-stack chunk thrashing makes big imports 10-20 ms slower "
        f"at some depths, whoever imports"
    )
    return [*rows.values(), *deltas.values(), *depth_rows.values()]


if __name__ == "__main__":
    for row in run():
        print(row)
