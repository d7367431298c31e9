"""``tracing run``: a handler in the local Lambda runtime, with an embedded collector."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from .._header import new_id, new_trace_id

__all__ = ["passthrough_env", "run_handler", "wait_quiet"]


def passthrough_env(backend: str | None = None) -> dict[str, str]:
    """The caller's AWS and tracing settings, for a function process.

    The local runtime starts functions with a clean environment; credentials,
    region, profile and ``AWS_ENDPOINT_URL`` are what users expect to carry over.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if k.startswith(("AWS_", "TRACING_", "OTEL_"))
        and k not in ("AWS_XRAY_DAEMON_ADDRESS", "AWS_LAMBDA_RUNTIME_API")
    }
    if backend:
        env["TRACING_BACKEND"] = backend
    return env


def wait_quiet(collector: Any, quiet_s: float = 0.4, timeout_s: float = 10.0) -> None:
    """Wait until the collector stored everything it received and nothing new came."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        stats = dict(collector.stats)
        done = stats.get("stored", 0) + stats.get("garbage", 0) + stats.get("dropped", 0)
        current = (stats.get("received", 0), done)
        if current == last and current[0] <= current[1]:
            return
        last = current
        time.sleep(quiet_s)


def run_handler(
    handler: str,
    *,
    event_file: str,
    invocations: int = 1,
    code_dir: str = ".",
    db: str | None = None,
    backend: str | None = None,
    timeout_s: float = 30.0,
    snapstart: int = 0,
) -> int:
    """Invoke ``handler`` ``invocations`` times and print the resulting traces.

    With ``snapstart`` > 0 the function is a SnapStart function: initialised
    once, then restored as that many environments (copies of the snapshot), each
    invoked ``invocations`` times.

    Returns:
        0 when every invocation returned, 1 when one failed, 2 when the function
        could not start.
    """
    from .daemon import Collector
    from .runtime import InitError, LocalLambda
    from .store import TraceStore
    from .views import show_trace

    try:
        event = json.loads(Path(event_file).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"tracing run: cannot read the event from {event_file}: {exc}", file=sys.stderr)
        return 2
    failed = False
    roots: list[str] = []
    with TraceStore(db) as store, Collector("127.0.0.1:0", store) as collector:
        function = LocalLambda(
            handler,
            code_dir=code_dir,
            function_name=handler.rsplit(".", 1)[0],
            timeout_s=timeout_s,
            env=passthrough_env(backend),
            xray_daemon_address=collector.address,
            init_type="snap-start" if snapstart else "on-demand",
        )
        with function:
            try:
                function.start()
                targets: list[tuple[str, Any]] = (
                    [(f"copy {n + 1} ", c) for n, c in enumerate(function.restore(snapstart))]
                    if snapstart
                    else [("", function)]
                )
            except InitError as exc:
                print(f"tracing run: the function failed to initialise: {exc}", file=sys.stderr)
                print(exc.logs, file=sys.stderr)
                return 2
            for label, target in targets:
                for index in range(invocations):
                    root = new_trace_id()
                    roots.append(root)
                    header = f"Root={root};Parent={new_id()};Sampled=1"
                    result = target.invoke(event, trace_header=header)
                    outcome = result.payload if result.ok else result.error
                    failed = failed or not result.ok
                    text = json.dumps(outcome, default=str)[:200]
                    print(f"{label}invocation {index + 1}: {text}")
            logs = function.logs
        wait_quiet(collector)
        if logs.strip():
            print("--- function log ---")
            print(logs.rstrip())
        for root in roots:
            print()
            show_trace(store.documents(root))
    return 1 if failed else 0
