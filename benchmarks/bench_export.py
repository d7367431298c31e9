"""10. What SigV4 signing costs per export (``exporter="xray-otlp"``).

One typical invocation's export request is made once in a child: a real
``tracing.handler`` invocation (``Init`` with two spans, the handler with eight
``tracing.span`` children carrying annotations and metadata) under
``exporter="xray-otlp"``, its buffered spans taken at the flush. Then, per
sample, interleaved in the same child, over batches of calls:

* **encode** (``exporter="otlp"``, unsigned): the request body written from the
  buffered spans (``OTLPHTTPEmitter._requests``; the spans themselves are written
  when their unit ends, alike on both paths, and are not part of the figure);
* **encode + sign, ours**: the same with ``xray-otlp``'s packing and its
  ``_signed`` (credentials read from botocore's chain, refreshed if needed, then
  our SigV4, the signing key kept for the day);
* **encode + sign, botocore**: the same body signed with botocore's
  ``SigV4Auth.add_auth`` on an ``AWSRequest``, which is what ADOT's
  ``AwsAuthSession`` does;
* **sign only**, ours and botocore's.

ADOT (``.venv-adot``, optional): ``AwsAuthSession.request`` on the same body with
``requests.Session.request`` (the send) replaced by a no-op, so the figure is
ADOT's signing path alone. No request leaves any process.
"""

from __future__ import annotations

import gc
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import _harness as bh

MODULE = "benchmarks.bench_export"
ORDER = 95
BENCH = "10 export signing"

CASES = {
    "encode": 'encode, exporter="otlp" (unsigned)',
    "ours": 'encode + sign, exporter="xray-otlp"',
    "botocore": "encode + sign, botocore SigV4Auth (ADOT's signer)",
    "sign-ours": "sign only, ours",
    "sign-botocore": "sign only, botocore SigV4Auth",
    "sign-adot": "sign only, ADOT AwsAuthSession.request (send stubbed)",
}


def _typical_spans() -> list[bytes]:
    """The spans one typical invocation buffers, taken at its flush."""
    import tracing
    from tracing._runtime import get_runtime
    from tracing.testing import FakeContext

    tracing.configure(backend="xray", exporter="xray-otlp", service="orders")
    runtime = get_runtime()
    assert runtime is not None
    emitter: Any = runtime.emitter
    taken: list[list[bytes]] = []

    def take() -> None:
        taken.append(list(emitter._spans))
        emitter._spans, emitter._bytes = [], 0

    emitter.flush = take
    with tracing.span("load config", source="ssm") as span:
        span.put_metadata("config", {"currency": "EUR", "limit": 100})
    with tracing.span("warm cache", entries=3):
        pass

    @tracing.handler
    def handler(event: Any, context: Any) -> str:
        for i in range(8):
            with tracing.span(f"step {i}", order_id=f"o-{i}", tier="gold") as step:
                step.put_metadata("item", {"sku": f"b-{i}", "quantity": i})
        return "ok"

    os.environ["_X_AMZN_TRACE_ID"] = bh.trace_header()
    handler({}, FakeContext(timeout_ms=15 * 60 * 1000))
    return taken[-1]


def child(rounds: int, batch: int, body_file: str) -> None:
    import botocore.session
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    from tracing.exporters._otlp_emitter import default_resource
    from tracing.exporters.otlp_http import OTLPHTTPEmitter
    from tracing.exporters.xray_otlp import XRayOTLPEmitter

    spans = _typical_spans()
    resource = default_resource("orders")
    session = botocore.session.Session()
    ours = XRayOTLPEmitter(resource, "us-east-1", session=session)
    plain = OTLPHTTPEmitter(resource, {"url": "http://127.0.0.1:9/v1/traces"})
    credentials = session.get_credentials()
    assert credentials is not None
    headers = {"Content-Type": "application/x-protobuf"}
    [body] = list(ours._requests(spans))
    Path(body_file).write_bytes(body)
    ours._signed(body, headers)  # the first export's endpoint and credentials lookup

    def botocore_sign(data: bytes) -> dict[str, str]:
        frozen = credentials.get_frozen_credentials()
        request = AWSRequest(method="POST", url=ours.url, data=data, headers=dict(headers))
        SigV4Auth(frozen, "xray", "us-east-1").add_auth(request)
        return dict(request.headers.items())

    def encode() -> None:
        for _data in plain._requests(spans):
            pass

    def encode_ours() -> None:
        for data in ours._requests(spans):
            ours._signed(data, headers)

    def encode_botocore() -> None:
        for data in plain._requests(spans):
            botocore_sign(data)

    variants = {
        "encode": encode,
        "ours": encode_ours,
        "botocore": encode_botocore,
        "sign-ours": lambda: ours._signed(body, headers),
        "sign-botocore": lambda: botocore_sign(body),
    }
    samples: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for i in range(rounds + 1):
        order = names[i % len(names) :] + names[: i % len(names)]  # rotate: no fixed order
        for name in order:
            call = variants[name]
            gc.collect()
            start = time.perf_counter()
            for _ in range(batch):
                call()
            elapsed = (time.perf_counter() - start) / batch * 1e6
            if i:  # the first round warms up
                samples[name].append(elapsed)
    bh.emit_json({"samples": samples, "spans": len(spans), "bytes": len(body), "url": ours.url})


def child_adot(rounds: int, batch: int, body_file: str) -> None:
    import requests
    from amazon.opentelemetry.distro.exporter.otlp.aws.common.aws_auth_session import (
        AwsAuthSession,
    )
    from botocore.session import Session

    body = Path(body_file).read_bytes()
    requests.Session.request = lambda self, *args, **kwargs: None  # type: ignore[method-assign,assignment,misc]
    auth = AwsAuthSession(aws_region="us-east-1", service="xray", session=Session())
    url = "https://xray.us-east-1.amazonaws.com/v1/traces"
    auth.request("POST", url, data=body, headers={})  # credentials resolved once
    samples: list[float] = []
    for i in range(rounds + 1):
        gc.collect()
        start = time.perf_counter()
        for _ in range(batch):
            auth.request("POST", url, data=body, headers={})
        if i:
            samples.append((time.perf_counter() - start) / batch * 1e6)
    bh.emit_json({"samples": {"sign-adot": samples}})


def run() -> list[dict[str, Any]]:
    rounds = bh.scaled(15)
    batch = 100 if bh.QUICK else 400
    results: dict[str, list[float]] = {name: [] for name in CASES}
    info: dict[str, Any] = {}
    adot = (bh.ADOT_VENV / "bin" / "python").exists()
    with bh.Listener() as daemon, tempfile.TemporaryDirectory() as tmp:
        env = bh.lambda_env(daemon.address)
        body_file = str(Path(tmp) / "body.bin")
        for _ in range(2):  # two children of each, interleaved
            out = bh.run_module(MODULE, str(rounds), str(batch), body_file, env=env)
            info = {k: v for k, v in out.items() if k != "samples"}
            for name, values in out["samples"].items():
                results[name].extend(values)
            if adot:
                out = bh.run_module(
                    MODULE,
                    "adot",
                    str(rounds),
                    str(batch),
                    body_file,
                    env=env,
                    interpreter=[bh.adot_python()],
                )
                results["sign-adot"].extend(out["samples"]["sign-adot"])
    rows = {
        name: bh.measured(BENCH, CASES[name], values, "µs")
        for name, values in results.items()
        if values
    }
    bh.compare(rows["ours"], rows["encode"], vs="unsigned otlp")
    bh.compare(rows["botocore"], rows["encode"], vs="unsigned otlp")
    bh.compare(rows["sign-ours"], rows["sign-botocore"], vs="botocore SigV4Auth")
    out_rows = list(rows.values())
    if "sign-adot" in rows:
        rows["sign-adot"]["note"] = "ADOT's signing path; requests' send replaced by a no-op"
        ratio = rows["sign-ours"]["median"] / rows["sign-adot"]["median"]
        out_rows.append(bh.derived(BENCH, "sign only, ours / ADOT AwsAuthSession", ratio, "x"))
    rows["ours"]["note"] = (
        f"one typical invocation's request: {info.get('spans')} spans, "
        f"{info.get('bytes')} bytes; batches of {batch} calls, medians of µs per export; "
        "each span is written when its unit ends, on both paths alike, and not counted here"
    )
    return out_rows


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        if sys.argv[2] == "adot":
            child_adot(int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
        else:
            child(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    else:
        for row in run():
            print(row)
