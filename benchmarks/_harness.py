"""Shared pieces of the benchmarks: daemon listener, Lambda-like env, children, rows.

A benchmark module ``bench_*.py`` exposes ``run() -> list[dict]`` and builds its
rows with :func:`measured` (samples → median/p90) or :func:`derived` (a computed
figure such as a difference of medians). Work whose import state matters runs in
a fresh interpreter through :func:`run_module` or :func:`run_code`, which return
the JSON object the child printed on its last stdout line.

Everything is sent to a :class:`Listener` on 127.0.0.1 only; the environment built
by :func:`lambda_env` drops the caller's ``AWS_*`` variables, uses dummy
credentials and disables the EC2 metadata lookup, so nothing leaves the machine.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

#: Set by ``run.py --quick``: fewer repetitions, for checking that the suite works.
QUICK = False

#: First line of every datagram the X-Ray daemon accepts (ours and the SDK's).
DAEMON_HEADER = b'{"format":"json","version":1}\n'

PACKAGES = ("lambda-xray-tracing", "aws-xray-sdk", "aws-lambda-powertools", "boto3", "botocore")


def scaled(n: int, minimum: int = 3) -> int:
    """``n`` repetitions, or a fifth of them (at least ``minimum``) in quick mode."""
    return max(minimum, n // 5) if QUICK else n


# --- the daemon stand-in ------------------------------------------------------------


class Listener:
    """A UDP listener on 127.0.0.1 that counts datagrams, standing in for the daemon.

    It only counts and keeps the last few datagrams (decoding every one would
    compete for CPU with the process being measured). ``framed`` counts the
    datagrams that start with the daemon header line.
    """

    def __init__(self, keep: int = 64) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.1)
        self.address = "{}:{}".format(*self._sock.getsockname())
        self.count = 0
        self.framed = 0
        self.bytes = 0
        self.recent: collections.deque[bytes] = collections.deque(maxlen=keep)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-daemon", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        recv = self._sock.recv
        while not self._stop.is_set():
            try:
                data = recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            self.bytes += len(data)
            if data.startswith(DAEMON_HEADER):
                self.framed += 1
            self.recent.append(data)
            self.count += 1

    def quiet(self, quiet_s: float = 0.1, timeout_s: float = 5.0) -> int:
        """Wait until nothing arrived for ``quiet_s``; return the datagram count."""
        deadline = time.monotonic() + timeout_s
        seen = self.count
        while time.monotonic() < deadline:
            time.sleep(quiet_s)
            if self.count == seen:
                break
            seen = self.count
        return self.count

    def documents(self) -> list[dict[str, Any]]:
        """The recent datagrams decoded (those that are not valid are skipped)."""
        docs = []
        for data in list(self.recent):
            if data.startswith(DAEMON_HEADER):
                with contextlib.suppress(ValueError):
                    docs.append(json.loads(data[len(DAEMON_HEADER) :]))
        return docs

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sock.close()

    def __enter__(self) -> Listener:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# --- the Lambda-like environment ------------------------------------------------------

_DROP_PREFIXES = ("AWS_", "POWERTOOLS_", "TRACING_", "OTEL_", "LAMBDA_", "_X_AMZN", "_HANDLER")


def lambda_env(daemon_address: str, **extra: str) -> dict[str, str]:
    """Environment of a Lambda execution environment in its init phase.

    No ``_X_AMZN_TRACE_ID``: as in Lambda, the runtime sets it per invocation (the
    children do so with :func:`trace_header`). ``extra`` adds or overrides.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROP_PREFIXES)}
    env.update(
        LAMBDA_TASK_ROOT="/tmp",
        AWS_LAMBDA_FUNCTION_NAME="bench",
        AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE="1024",
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_SESSION_TOKEN="testing",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_XRAY_DAEMON_ADDRESS=daemon_address,
        PYTHONPATH=str(ROOT),
    )
    env.update(extra)
    return env


def trace_header(now: float | None = None) -> str:
    """A fresh, sampled ``_X_AMZN_TRACE_ID`` value as Lambda sets it."""
    epoch = int(time.time() if now is None else now)
    return f"Root=1-{epoch:08x}-{os.urandom(12).hex()};Parent={os.urandom(8).hex()};Sampled=1"


# --- ADOT, in a venv of its own --------------------------------------------------

ADOT_VENV = ROOT / ".venv-adot"
ADOT_REQUIREMENTS = ROOT / "requirements" / "adot.txt"


def adot_env(handler: str) -> dict[str, str]:
    """What the ADOT Lambda layer's ``otel-instrument`` script exports (full mode)."""
    from tracing.testing._adot import adot_layer_env

    return adot_layer_env(handler, function_name="bench")


def adot_python() -> str:
    """The ADOT venv's interpreter."""
    return str(ADOT_VENV / "bin" / "python")


def adot_instrumented() -> list[str]:
    """How ADOT's layer starts Python: ``opentelemetry-instrument python``."""
    python = adot_python()
    return [python, str(ADOT_VENV / "bin" / "opentelemetry-instrument"), python]


def ensure_adot() -> str:
    """Make ``.venv-adot`` (ADOT + boto3) if it is missing; its distro version."""
    python = ADOT_VENV / "bin" / "python"
    if not python.exists():
        print("  creating .venv-adot (aws-opentelemetry-distro) ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(ADOT_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "-r", str(ADOT_REQUIREMENTS)],
            check=True,
            timeout=900,
        )
    version = "from importlib import metadata; print(metadata.version('aws-opentelemetry-distro'))"
    out = subprocess.run([str(python), "-c", version], capture_output=True, text=True, check=True)
    return out.stdout.strip()


# --- children -----------------------------------------------------------------------


class ChildError(RuntimeError):
    """A benchmark child failed or printed no JSON."""


def run_child(
    args: Sequence[str],
    env: dict[str, str],
    timeout_s: float = 300.0,
    interpreter: Sequence[str] | None = None,
) -> Any:
    """Run ``python *args`` from the repository root; return its last stdout line as JSON.

    ``interpreter`` replaces ``python`` (another venv's, or a launcher before it).
    """
    proc = subprocess.run(
        [*(interpreter or [sys.executable]), *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    if proc.returncode != 0 or not lines:
        tail = "\n".join(proc.stderr.splitlines()[-15:])
        raise ChildError(f"child {args[:3]} exited {proc.returncode}:\n{tail}")
    try:
        return json.loads(lines[-1])
    except ValueError as exc:
        raise ChildError(f"child {args[:3]} printed no JSON: {lines[-1]!r}") from exc


def run_module(
    module: str,
    *args: str,
    env: dict[str, str],
    timeout_s: float = 300.0,
    interpreter: Sequence[str] | None = None,
) -> Any:
    """Run ``python -m module --child *args`` (the module handles ``--child``)."""
    return run_child(["-m", module, "--child", *args], env, timeout_s, interpreter)


def run_code(code: str, env: dict[str, str], timeout_s: float = 120.0) -> Any:
    """Run ``python -c code``; the code must print one JSON object last."""
    return run_child(["-c", code], env, timeout_s)


def emit_json(obj: Any) -> None:
    """What a child prints last: one line of JSON."""
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


# --- statistics and rows ------------------------------------------------------------


def median(values: Iterable[float]) -> float:
    return float(statistics.median(list(values)))


def p90(values: Iterable[float]) -> float:
    """90th percentile, linear interpolation between closest ranks."""
    data = sorted(values)
    if len(data) == 1:
        return float(data[0])
    pos = 0.9 * (len(data) - 1)
    low = int(pos)
    high = min(low + 1, len(data) - 1)
    return float(data[low] + (data[high] - data[low]) * (pos - low))


def _round(value: float | None, digits: int = 4) -> float | None:
    if value is None:
        return None
    return float(f"{value:.{digits}g}")


def measured(bench: str, case: str, samples: Sequence[float], unit: str, **extra: Any) -> dict:
    """A row from raw samples: median, p90 and n (samples are kept in the JSON)."""
    return {
        "bench": bench,
        "case": case,
        "unit": unit,
        "median": _round(median(samples)),
        "p90": _round(p90(samples)),
        "n": len(samples),
        "samples": [_round(s) for s in samples],
        **extra,
    }


def derived(bench: str, case: str, value: float, unit: str, **extra: Any) -> dict:
    """A row holding a computed figure (a difference of medians, a paired delta...)."""
    return {"bench": bench, "case": case, "unit": unit, "median": _round(value), **extra}


def compare(
    row: dict,
    anchor: dict,
    *,
    kind: str = "ratio",
    limit: float | None = None,
    target: str = "",
    vs: str = "",
) -> dict:
    """Set ``row``'s comparison with ``anchor``'s median, and whether it meets ``limit``.

    ``kind="ratio"``: ours / anchor, met when ≤ ``limit``. ``kind="diff"``: ours -
    anchor (in the unit), met when ≤ ``limit``. ``vs`` names the anchor in the
    table (default: its case).
    """
    ours, theirs = row["median"], anchor["median"]
    value = (ours / theirs if theirs else float("inf")) if kind == "ratio" else ours - theirs
    row["vs"] = vs or anchor["case"]
    row[kind] = _round(value)
    if limit is not None:
        row["target"] = target or (f"≤ {limit:g}x" if kind == "ratio" else f"≤ +{limit:g}")
        row["met"] = value <= limit
    return row


def target(row: dict, limit: float, text: str) -> dict:
    """Mark an absolute target on ``row`` (met when its median ≤ ``limit``)."""
    row["target"] = text
    row["met"] = row["median"] <= limit
    return row


def error_row(bench: str, exc: BaseException) -> dict:
    return {"bench": bench, "case": "ERROR", "unit": "", "median": None, "note": str(exc)}


# --- output -------------------------------------------------------------------------


def _fmt(value: float | None) -> str:
    if value is None:
        return ""
    size = abs(value)
    if size >= 100:
        return f"{value:.0f}"
    if size >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _versus(row: dict) -> str:
    if "ratio" in row:
        return f"{row['ratio']:.2f}x {row['vs']}"
    if "diff" in row:
        return f"{row['diff']:+.2f} {row['unit']} vs {row['vs']}"
    return ""


def format_table(rows: Sequence[dict]) -> str:
    """The rows as a fixed-width text table, notes numbered underneath."""
    header = ("bench", "case", "median", "p90", "unit", "n", "vs anchor", "target", "ok", "sent")
    lines: list[tuple[str, ...]] = []
    notes: list[str] = []
    for row in rows:
        met = row.get("met")
        case = row["case"]
        if row.get("note"):
            notes.append(row["note"])
            case = f"{case} [{len(notes)}]"
        lines.append(
            (
                row["bench"],
                case,
                _fmt(row.get("median")),
                _fmt(row.get("p90")),
                row.get("unit", ""),
                str(row.get("n", "")),
                _versus(row),
                row.get("target", ""),
                "" if met is None else ("yes" if met else "NO"),
                row.get("datagrams", ""),
            )
        )
    widths = [max(len(col[i]) for col in [header, *lines]) for i in range(len(header))]
    right = {2, 3, 5}

    def render(cols: Sequence[str]) -> str:
        pairs = enumerate(zip(cols, widths, strict=True))
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in pairs]
        return "  ".join(cells).rstrip()

    out = [render(header), render(["-" * w for w in widths])]
    previous = None
    for row, cols in zip(rows, lines, strict=True):
        if previous is not None and row["bench"] != previous:
            out.append("")
        previous = row["bench"]
        out.append(render(cols))
    if notes:
        out.append("")
        out.extend(f"[{i}] {note}" for i, note in enumerate(notes, 1))
    return "\n".join(out)


def machine_info() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor()
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    return {
        "nproc": usable,
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "packages": versions,
        "git": _git_revision(),
    }


def _git_revision() -> str | None:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("-dirty" if dirty else "")
