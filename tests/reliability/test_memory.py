"""Bounded memory under load, on both backends, each in a fresh process.

Every check runs in a child interpreter (``python -m tests.reliability.test_memory
--child ...``) with a Lambda-like environment, so the RSS read from
``/proc/self/status`` is that process's own and no state of the test session
leaks in. Documents really go over UDP to a listener in this (parent) process.

* **Steady state.** 100,000 invocations of a traced trivial handler (one
  ``tracing.span`` each, a fresh ``_X_AMZN_TRACE_ID`` and ``FakeContext`` per
  call, as Lambda gives): RSS after a 5,000-invocation warm-up and at the end
  must not grow by 10 MiB or more (generous: a leak of 100 bytes per invocation
  shows as about 9 MiB). The benchmark ``bench_memory`` reports the exact figure.
* **Caps.** 10,000 spans at import with the default ``max_init_spans`` (1000):
  RSS stays bounded, and the Init document sent at the first invocation holds
  1000 children and says ``dropped_spans`` 9000. An invocation creating 5,000
  spans with the default ``max_spans_per_invocation`` (1000) sends 1000 and says
  ``dropped_spans`` 4000 (the documents are split to fit datagrams: children are
  counted across the parts).
* **A span never ended** (otel backend, user's OTel tracer) must not pin memory,
  as it does not with plain OpenTelemetry: the bridge forgets the bookkeeping of
  spans still open when their invocation is sent.

The trace header is written into ``os.environ``'s mapping without glibc
``setenv()``, which keeps every distinct value forever (see
``_trace_header_setter``); ``bench_memory`` shows that growth separately.
"""

from __future__ import annotations

import gc
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

from tracing import testing

ROOT = Path(__file__).resolve().parents[2]
MODULE = "tests.reliability.test_memory"

INVOCATIONS = 100_000
WARMUP = 5_000
SAMPLE_EVERY = 10_000
MAX_GROWTH_MIB = 10.0
#: gc-tracked objects allowed to appear after warm-up (one per 95 invocations).
MAX_OBJECT_GROWTH = 1_000

INIT_SPANS = 10_000
INIT_LIMIT = 1_000  # the default max_init_spans
INVOCATION_SPANS = 5_000
INVOCATION_LIMIT = 1_000  # the default max_spans_per_invocation
#: RSS growth allowed for 10,000 init spans of which 1000 are kept (about 0.4 MiB
#: measured) and for the 9,000 dropped ones (0 measured).
MAX_INIT_GROWTH_MIB = 8.0
MAX_DROPPED_GROWTH_MIB = 2.0

BACKENDS = ["xray", "otel"]
_DROP_PREFIXES = ("AWS_", "POWERTOOLS_", "TRACING_", "OTEL_", "LAMBDA_", "_X_AMZN", "_HANDLER")


# --- child --------------------------------------------------------------------------


def _rss_mib() -> float:
    """This process's resident set size, after a full collection."""
    gc.collect()
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS in /proc/self/status")


def _header() -> str:
    epoch = int(time.time())
    return f"Root=1-{epoch:08x}-{os.urandom(12).hex()};Parent={os.urandom(8).hex()};Sampled=1"


def _trace_header_setter() -> Any:
    """``set(header)``: make ``os.environ["_X_AMZN_TRACE_ID"]`` read ``header``.

    Not through ``os.environ[...] = ...``: that calls glibc ``setenv()``, which
    keeps every distinct ``name=value`` string it was ever given for the life of
    the process (about 140 bytes per fresh header, 13.7 MiB per 100,000), whoever
    sets it and whether or not anything is traced. The library reads the
    variable through ``os.environ``, whose mapping this updates.
    """
    data = os.environ._data  # type: ignore[attr-defined]
    key = os.fsencode("_X_AMZN_TRACE_ID")

    def set_header(header: str) -> None:
        data[key] = os.fsencode(header)

    return set_header


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _child_load(backend: str, total: int, warmup: int, every: int, work: str) -> None:
    import tracing
    from tracing._runtime import get_runtime

    tracing.configure(backend=backend)

    if work == "span":

        @tracing.handler
        def handler(event: Any, context: Any) -> int:
            with tracing.span("work"):
                return 1

    elif work == "unended-otel-span":
        from opentelemetry import trace

        tracer = trace.get_tracer("user")

        @tracing.handler
        def handler(event: Any, context: Any) -> int:
            tracer.start_span("never ended")  # a bug in user code, or a lost span
            return 1

    else:
        raise SystemExit(f"unknown work {work!r}")

    set_header = _trace_header_setter()
    event: dict[str, Any] = {}
    context = testing.FakeContext

    def invoke(n: int) -> None:
        for _ in range(n):
            set_header(_header())
            handler(event, context(3000.0))

    setup_mib = _rss_mib()
    # The first gc.get_objects() list (about 40,000 pointers) is a large malloc; once
    # freed, glibc raises its mmap threshold and the next ones stay in the heap.
    # Made once here so that the measurement does not show up as growth.
    len(gc.get_objects())
    invoke(warmup)
    samples = [(warmup, _rss_mib(), len(gc.get_objects()))]
    started = time.perf_counter()
    done = warmup
    while done < total:
        step = min(every, total - done)
        invoke(step)
        done += step
        samples.append((done, _rss_mib(), len(gc.get_objects())))
    seconds = time.perf_counter() - started
    runtime = get_runtime()
    assert runtime is not None
    _emit(
        {
            "setup_mib": setup_mib,
            "samples": samples,
            "seconds": seconds,
            "sent": runtime.emitter.sent,
            "failed": runtime.emitter.failed,
        }
    )


def _child_caps(backend: str) -> None:
    import tracing
    from tracing._runtime import get_runtime

    tracing.configure(backend=backend)
    before = _rss_mib()
    for _ in range(INIT_LIMIT):
        with tracing.span("init work"):
            pass
    at_limit = _rss_mib()
    for _ in range(INIT_SPANS - INIT_LIMIT):
        with tracing.span("init work"):
            pass
    after = _rss_mib()

    @tracing.handler
    def handler(event: Any, context: Any) -> int:
        for _ in range(event.get("spans", 0)):
            with tracing.span("step"):
                pass
        return 1

    headers = []
    for spans in (0, INVOCATION_SPANS):
        headers.append(_header())
        os.environ["_X_AMZN_TRACE_ID"] = headers[-1]
        handler({"spans": spans}, testing.FakeContext())
    runtime = get_runtime()
    assert runtime is not None
    _emit(
        {
            "rss_mib": [before, at_limit, after, _rss_mib()],
            "headers": headers,
            "sent": runtime.emitter.sent,
            "failed": runtime.emitter.failed,
        }
    )


# --- parent -------------------------------------------------------------------------


class _CountingListener:
    """A UDP listener that only counts datagrams (decoding 100,000 would compete
    for the CPU with the child being measured, and keep them all in memory)."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.05)
        self.address = "{}:{}".format(*self._sock.getsockname())
        self.count = 0
        self.framed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-daemon", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        recv = self._sock.recv
        header = b'{"format":"json","version":1}\n'
        while not self._stop.is_set():
            try:
                data = recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            self.count += 1
            if data.startswith(header):
                self.framed += 1

    def settle(self, quiet: float = 0.2, timeout: float = 5.0) -> int:
        deadline = time.monotonic() + timeout
        seen = -1
        while time.monotonic() < deadline and self.count != seen:
            seen = self.count
            time.sleep(quiet)
        return self.count

    def __enter__(self) -> _CountingListener:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sock.close()


def _lambda_env(daemon_address: str, backend: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROP_PREFIXES)}
    env.update(
        LAMBDA_TASK_ROOT="/tmp",
        AWS_LAMBDA_FUNCTION_NAME="memory",
        AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE="1024",
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_SESSION_TOKEN="testing",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_XRAY_DAEMON_ADDRESS=daemon_address,
        TRACING_BACKEND=backend,
        PYTHONPATH=str(ROOT),
    )
    return env


def _run_child(env: dict[str, str], *args: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", MODULE, "--child", *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    lines = proc.stdout.strip().splitlines()
    assert proc.returncode == 0, f"child exited {proc.returncode}:\n{proc.stderr}"
    assert lines, f"child printed nothing:\n{proc.stderr}"
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _children_of(entity_id: str, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Direct children of an entity, across the datagrams a split document became."""
    found: list[dict[str, Any]] = []
    for doc in docs:
        if doc["id"] == entity_id:
            found.extend(doc.get("subsegments", ()))
        elif doc.get("parent_id") == entity_id and doc.get("type") == "subsegment":
            found.append(doc)
    return found


@pytest.mark.parametrize("backend", BACKENDS)
def test_rss_is_flat_over_100k_invocations(backend: str) -> None:
    with _CountingListener() as daemon:
        env = _lambda_env(daemon.address, backend)
        args = (str(INVOCATIONS), str(WARMUP), str(SAMPLE_EVERY), "span")
        out = _run_child(env, "load", backend, *args)
        received = daemon.settle()
    samples = out["samples"]
    (first, warm_mib, warm_objects), (last, end_mib, end_objects) = samples[0], samples[-1]
    growth = end_mib - warm_mib
    trail = ", ".join(f"{n}: {mib:.2f} MiB/{objects} objects" for n, mib, objects in samples)
    print(
        f"\n{backend}: setup {out['setup_mib']:.2f} MiB; {last - first} invocations in "
        f"{out['seconds']:.1f} s; RSS {warm_mib:.2f} -> {end_mib:.2f} MiB ({growth:+.2f}); "
        f"gc objects {warm_objects} -> {end_objects}; datagrams {received}/{out['sent']} "
        f"received/sent\n  {trail}"
    )
    assert (first, last) == (WARMUP, INVOCATIONS)
    assert growth < MAX_GROWTH_MIB, f"RSS grew {growth:.2f} MiB after warm-up: {trail}"
    # Leaked Python objects show here long before they add up in RSS.
    assert end_objects - warm_objects < MAX_OBJECT_GROWTH, trail
    # One document per invocation (trivial handler, one span) plus the (empty) Init
    # document at the first one, all actually sent.
    assert out["sent"] == INVOCATIONS + 1
    assert out["failed"] == 0
    # Real emission: loopback UDP may drop if this process falls behind, rarely.
    assert daemon.framed >= 0.9 * out["sent"], (received, out["sent"])


def test_otel_span_never_ended_does_not_pin_memory() -> None:
    """Plain OpenTelemetry frees a span that is never ended; the bridge must too."""
    warmup = 12_000  # past the 10,000 open spans the bridge keeps for the deadline guard
    total = warmup + 20_000
    with _CountingListener() as daemon:
        env = _lambda_env(daemon.address, "otel")
        args = (str(total), str(warmup), "10000", "unended-otel-span")
        out = _run_child(env, "load", "otel", *args)
    samples = out["samples"]
    growth = samples[-1][1] - samples[0][1]
    trail = ", ".join(f"{n}: {mib:.2f} MiB/{objects} objects" for n, mib, objects in samples)
    assert growth < 5.0, f"RSS grew {growth:.2f} MiB over 20,000 invocations: {trail}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_init_and_invocation_span_caps(backend: str) -> None:
    with testing.DaemonListener() as daemon:
        env = _lambda_env(daemon.address, backend)
        out = _run_child(env, "caps", backend)
        docs = daemon.settle()
        garbage = list(daemon.garbage)
    before, at_limit, after, end = out["rss_mib"]
    print(
        f"\n{backend}: RSS {before:.2f} MiB, +{INIT_LIMIT} init spans {at_limit:.2f}, "
        f"+{INIT_SPANS - INIT_LIMIT} dropped {after:.2f}, after 2 invocations {end:.2f}; "
        f"{len(docs)} documents"
    )
    assert out["failed"] == 0
    assert not garbage
    assert len(docs) == out["sent"]
    for doc in docs:
        assert testing.check_document(doc) == []
    assert after - before < MAX_INIT_GROWTH_MIB
    assert after - at_limit < MAX_DROPPED_GROWTH_MIB

    def roots(header: str) -> tuple[str, str]:
        fields = dict(part.split("=", 1) for part in header.split(";"))
        return fields["Root"], fields["Parent"]

    first_root, first_parent = roots(out["headers"][0])
    [init] = [d for d in docs if d["name"] == "Init" and d.get("parent_id") == first_parent]
    assert init["trace_id"] == first_root
    assert init["metadata"]["tracing"]["dropped_spans"] == INIT_SPANS - INIT_LIMIT
    init_children = _children_of(init["id"], docs)
    assert len(init_children) == INIT_LIMIT
    assert {c["name"] for c in init_children} == {"init work"}

    second_root, second_parent = roots(out["headers"][1])
    [invocation] = [d for d in docs if d.get("parent_id") == second_parent]
    assert invocation["trace_id"] == second_root
    assert invocation["name"] == "## handler"
    assert invocation["metadata"]["tracing"]["dropped_spans"] == INVOCATION_SPANS - INVOCATION_LIMIT
    steps = _children_of(invocation["id"], docs)
    assert len(steps) == INVOCATION_LIMIT
    assert {c["name"] for c in steps} == {"step"}


def _child_main(argv: list[str]) -> None:
    mode, backend = argv[0], argv[1]
    if mode == "load":
        total, warmup, every = (int(a) for a in argv[2:5])
        _child_load(backend, total, warmup, every, argv[5])
    elif mode == "caps":
        _child_caps(backend)
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        _child_main(sys.argv[2:])
