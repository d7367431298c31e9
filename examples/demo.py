"""``make demo``: run orders-api in the real Lambda runtime client, locally.

Everything is local: moto's HTTP server plays SSM, a UDP listener plays the
X-Ray daemon, and our Runtime API server drives the real ``awslambdaric``. The
demo prints every document the function emitted, as a tree per trace: the
deferred ``Init`` (with the SSM calls made at import) sits in the first
invocation's trace.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from tracing import testing
from tracing._header import new_id, new_trace_id
from tracing.local.aws import LocalAWS
from tracing.local.runtime import LocalLambda

HERE = Path(__file__).parent


def _step(message: str) -> None:
    print(f"==> {message}", flush=True)


def _render(entity: dict[str, Any], depth: int = 0) -> list[str]:
    duration = (entity.get("end_time", entity["start_time"]) - entity["start_time"]) * 1000
    marks = []
    if entity.get("fault"):
        marks.append("FAULT")
    if entity.get("error"):
        marks.append("error")
    if "aws" in entity:
        marks.append(f"aws.operation={entity['aws'].get('operation')}")
    marks.extend(f"{k}={v}" for k, v in (entity.get("annotations") or {}).items())
    line = f"{'    ' * depth}{entity['name']}  {duration:.1f} ms  {' '.join(marks)}".rstrip()
    lines = [line]
    for child in entity.get("subsegments", ()):
        lines.extend(_render(child, depth + 1))
    return lines


def main() -> int:
    """Run the demo; returns the process exit code."""
    started = time.monotonic()
    _step("starting moto's HTTP server (SSM) on 127.0.0.1")
    with LocalAWS() as aws, testing.DaemonListener() as daemon:
        aws.client("ssm").put_parameter(
            Name="/orders/config", Value=json.dumps({"currency": "EUR"}), Type="String"
        )
        _step(f"X-Ray daemon stand-in listening on udp://{daemon.address}")
        function = LocalLambda(
            "app.handler",
            code_dir=HERE / "orders_api",
            function_name="orders-api",
            env=aws.env,
            xray_daemon_address=daemon.address,
        )
        with function:
            _step("cold start: awslambdaric imports app.py (reads config from SSM)")
            function.start()
            for body in ({"sku": "book-1"}, {"sku": "pen-2"}, {}):
                header = f"Root={new_trace_id()};Parent={new_id()};Sampled=1"
                result = function.invoke({"body": json.dumps(body)}, trace_header=header)
                outcome = result.payload if result.ok else result.error
                _step(f"invoke {body} -> {json.dumps(outcome)[:90]}")
            docs = daemon.settle()
    _step(f"{len(docs)} documents received; traces:")
    traces: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        traces.setdefault(doc["trace_id"], []).append(doc)
    for trace_id, documents in traces.items():
        print(f"\ntrace {trace_id}")
        for doc in documents:
            print("\n".join("  " + line for line in _render(doc)))
    problems = [p for doc in docs for p in testing.check_document(doc)]
    _step(f"wire-rule problems: {problems or 'none'}; took {time.monotonic() - started:.1f} s")
    has_init = any(d["name"] == "Init" for d in docs)
    return 0 if has_init and not problems else 1


if __name__ == "__main__":
    sys.exit(main())
