"""8. Outgoing HTTP call cost: ours against aws-xray-sdk's ``patch(['requests'])``.

Each child sets up one variant as a Lambda module would; the socket I/O is
stubbed below urllib3's pool (see ``_answer_locally``), so nothing leaves the
process and the figure is the instrumentation's own cost. One sample: a sampled invocation making
a batch of ``requests.Session().get`` calls, against the same batch made bare,
with the wrapped functions (``HTTPConnectionPool.urlopen`` for ours; the SDK's
``Session.request`` and ``prepare_request``) swapped back for the libraries'
own; the difference per call, in µs. It holds the subsegment, the trace header
and each call's share of sending the documents (the SDK streams each
subsegment as it ends, threshold 0; ours sends the invocation's document,
split into datagrams).

Variants: ``tracing.handler`` (native) and ``backend="otel"``; aws-xray-sdk
``xray_recorder.capture`` with ``patch(["requests"])`` (its subsegments are
sent with the invocation's segment, streaming threshold 0 as in bench 1).
"""

from __future__ import annotations

import gc
import io
import os
import sys
import time
from typing import Any

from . import _harness as bh

MODULE = "benchmarks.bench_http"
ORDER = 80
BENCH = "8 HTTP call overhead"

CASES = {
    "ours": "ours: requests.get in tracing.handler",
    "ours-otel": 'ours: requests.get in tracing.handler, backend="otel"',
    "aws-xray-sdk": "aws-xray-sdk: patch(['requests']) in xray_recorder.capture",
}


def _answer_locally() -> None:
    """Stub the socket I/O only: urllib3's ``_make_request`` answers 200 at once.

    Everything above it runs for real (requests, urllib3's pool and retries, both
    libraries' wrappers). With a real server, the round trip's jitter on this
    2-core machine (±100 µs per call) buried the tens of µs being measured.
    """
    from urllib3.connectionpool import HTTPConnectionPool
    from urllib3.response import HTTPResponse

    def _make_request(self: Any, conn: Any, method: str, url: str, **kwargs: Any) -> Any:
        return HTTPResponse(
            body=io.BytesIO(b"ok"),
            headers={"Content-Length": "2"},
            status=200,
            preload_content=True,
            request_method=method,
            request_url=url,
        )

    HTTPConnectionPool._make_request = _make_request  # type: ignore[method-assign]


def child(variant: str, rounds: int, batch: int) -> None:
    _answer_locally()
    url = "http://payments.local:8080/pay"
    import requests

    session = requests.Session()
    samples: list[float] = []

    def calls(event: Any, context: Any) -> None:
        for _ in range(batch):
            session.get(url)

    patched: list[tuple[Any, str]]
    if variant in ("ours", "ours-otel"):
        import tracing

        tracing.configure(backend="otel" if variant == "ours-otel" else "xray")
        from urllib3.connectionpool import HTTPConnectionPool

        patched = [(HTTPConnectionPool, "urlopen")]
        traced_calls: Any = tracing.handler(calls)
    else:
        from aws_xray_sdk.core import patch, xray_recorder

        xray_recorder.configure(streaming_threshold=0)
        patch(["requests"])
        patched = [(requests.Session, "request"), (requests.Session, "prepare_request")]
        traced_calls = xray_recorder.capture("## h")(calls)
    wrappers = [(owner, name, owner.__dict__[name]) for owner, name in patched]

    from tracing.testing import FakeContext

    context = FakeContext(timeout_ms=15 * 60 * 1000)

    def timed(traced: bool) -> float:
        # One invocation making ``batch`` calls (its document's emission
        # included); the bare one makes the same calls with the libraries'
        # own functions swapped back in.
        os.environ["_X_AMZN_TRACE_ID"] = bh.trace_header()
        if not traced:
            for owner, name, wrapper in wrappers:
                setattr(owner, name, wrapper.__wrapped__)
        start = time.perf_counter()
        try:
            (traced_calls if traced else calls)({}, context)
        finally:
            for owner, name, wrapper in wrappers:
                setattr(owner, name, wrapper)
        return time.perf_counter() - start

    for i in range(rounds + 1):
        gc.collect()
        if i % 2:
            traced_s, bare_s = timed(True), timed(False)
        else:
            bare_s, traced_s = timed(False), timed(True)
        if i:  # the first round warms the connection pool and the cold start up
            samples.append((traced_s - bare_s) / batch * 1e6)

    bh.emit_json({"overhead_us": samples})


def run() -> list[dict[str, Any]]:
    rounds = bh.scaled(20)
    batch = 200 if bh.QUICK else 500
    results: dict[str, list[float]] = {variant: [] for variant in CASES}
    with bh.Listener() as daemon:
        env = bh.lambda_env(daemon.address)
        for _ in range(2):  # two children per variant, interleaved
            for variant in CASES:
                out = bh.run_module(MODULE, variant, str(rounds), str(batch), env=env)
                results[variant].extend(out["overhead_us"])
    rows = {v: bh.measured(BENCH, CASES[v], results[v], "µs") for v in CASES}
    anchor = rows["aws-xray-sdk"]
    for variant in ("ours", "ours-otel"):
        bh.compare(rows[variant], anchor, vs="aws-xray-sdk")
    rows["ours"]["note"] = (
        "overhead per call = an invocation making a batch of requests.Session().get calls "
        "- the same calls with the wrappers swapped out; socket I/O stubbed below urllib3's "
        f"pool; batches of {batch} calls; the SDK streams each subsegment (threshold 0)"
    )
    return list(rows.values())


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        for row in run():
            print(row)
