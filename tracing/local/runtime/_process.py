"""The runtime process of a `~tracing.local.runtime.local_lambda.LocalLambda`.

Its environment variables (`_RuntimeProcess._child_env`), spawning it in a
process group of its own, moving its output into the function's logs as it
arrives, and killing it (and whatever it started) without leaving zombies.
`LocalLambda` inherits `_RuntimeProcess`. POSIX only (process groups,
``select`` on pipes).
"""

from __future__ import annotations

import codecs
import contextlib
import logging
import os
import select
import signal
import subprocess
import threading
import time
import uuid
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tracing.local.runtime._runtime_api import RuntimeAPIServer
    from tracing.local.runtime.local_lambda import LocalLambda

logger = logging.getLogger("tracing.local.runtime")

# A handler answering right at its deadline must not be reported as timed out.
_DEADLINE_GRACE_S = 0.2
_TERM_GRACE_S = 2.0
# Blocking waits wake this often to notice a dead process or a stopped server.
_TICK_S = 0.05


def _kill_group(proc: subprocess.Popen[bytes], graceful: bool) -> None:
    """Signal the runtime's whole process group and reap it, so no zombies remain."""
    for sig in (signal.SIGTERM, signal.SIGKILL) if graceful else (signal.SIGKILL,):
        with contextlib.suppress(ProcessLookupError, PermissionError):  # already gone
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=_TERM_GRACE_S)
            return
        except subprocess.TimeoutExpired:
            continue
    logger.warning("runtime process %d survived SIGKILL", proc.pid)


def _abandon(live: list[subprocess.Popen[bytes]], server: RuntimeAPIServer) -> None:
    """Finalizer of an unstopped `LocalLambda`: kill its runtime, close everything."""
    for proc in live:
        _kill_group(proc, graceful=False)
        if proc.stdout is not None:
            proc.stdout.close()
    server.stop()


def _pump(owner: weakref.ref[LocalLambda], proc: subprocess.Popen[bytes]) -> None:
    """Reader thread: move the runtime's output into its owner's logs as it arrives."""
    stream = proc.stdout
    assert stream is not None
    while not stream.closed and (fn := owner()) is not None:
        del fn  # hold no reference while blocked, so the owner can be collected
        try:
            select.select([stream], [], [], 0.5)
        except (OSError, ValueError):
            return  # closed by _reap meanwhile
        if (fn := owner()) is not None:
            fn._drain(proc)


def _exit_reason(code: int) -> str:
    return f"exit status {code}" if code >= 0 else f"signal: {signal.strsignal(-code)}"


def _checked_env(env: object) -> dict[str, str]:
    """``env`` as a dict of str to str, or a TypeError/ValueError saying what is wrong."""
    if env is None:
        return {}
    if not isinstance(env, Mapping):
        placeholder = " ({...} is a set holding Ellipsis: write the variables out)"
        raise TypeError(
            "LocalLambda(env=...) takes a mapping of variable names to str values, such as "
            f"{{'QUEUE_URL': url}}; got a {type(env).__name__}"
            + (placeholder if env == {...} else "")
        )
    checked: dict[str, str] = {}
    for name, value in env.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(
                f"LocalLambda(env=...): {name!r}: names and values must be str, got "
                f"{type(name).__name__} = {type(value).__name__}"
            )
        if not name or "=" in name or "\0" in name or "\0" in value:
            raise ValueError(f"LocalLambda(env=...): {name!r} is not a valid variable")
        checked[name] = value
    return checked


class _RuntimeProcess:
    """The process half of `LocalLambda`: its attributes are set by ``LocalLambda.__init__``."""

    handler: str
    code_dir: str
    function_name: str
    region: str
    memory_mb: int
    init_type: str
    python: str
    exec_wrapper: tuple[str, ...]
    env: dict[str, str]
    xray_daemon_address: str | None
    _server: RuntimeAPIServer
    _proc: subprocess.Popen[bytes] | None
    _live: list[subprocess.Popen[bytes]]
    _reader: threading.Thread | None
    _log_lock: threading.Lock
    _log_chunks: list[str]
    _decoder: codecs.IncrementalDecoder
    _cold_starts: int

    @property
    def logs(self) -> str:
        """Everything the function's processes printed so far, stdout+stderr merged."""
        if (proc := self._proc) is not None:
            self._drain(proc)  # so output written before this call is always included
        with self._log_lock:
            return "".join(self._log_chunks)

    @property
    def pid(self) -> int | None:
        """PID of the live runtime process, if any."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    @property
    def cold_starts(self) -> int:
        """Number of runtime processes started so far."""
        return self._cold_starts

    def _child_env(self) -> dict[str, str]:
        keep = ("PATH", "LANG", "LC_ALL", "TMPDIR")
        env = {k: v for k, v in os.environ.items() if k in keep}
        env |= {
            "LAMBDA_TASK_ROOT": self.code_dir,
            "_HANDLER": self.handler,
            # python3.12+ would switch awslambdaric to thread polling.
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11",
            "AWS_LAMBDA_FUNCTION_NAME": self.function_name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory_mb),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{self.function_name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": time.strftime("%Y/%m/%d/[$LATEST]") + uuid.uuid4().hex,
            "AWS_LAMBDA_INITIALIZATION_TYPE": self.init_type,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "TZ": ":UTC",
            "PYTHONUNBUFFERED": "1",
        }
        if self.xray_daemon_address is not None:
            env["AWS_XRAY_DAEMON_ADDRESS"] = self.xray_daemon_address
        extra_path = self.env.get("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
        env |= self.env
        env["PYTHONPATH"] = os.pathsep.join(p for p in (self.code_dir, extra_path) if p)
        env["AWS_LAMBDA_RUNTIME_API"] = self._server.address
        return env

    def _spawn(self) -> subprocess.Popen[bytes]:
        # SnapStart runs through a small boot module that can restore copies.
        main = (
            "tracing.local.runtime._snapstart_boot"
            if self._server.hold_restores
            else "awslambdaric"
        )
        proc = subprocess.Popen(
            [*self.exec_wrapper, self.python, "-m", main, self.handler],
            cwd=self.code_dir,
            env=self._child_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: kills reach its children too
        )
        assert proc.stdout is not None
        os.set_blocking(proc.stdout.fileno(), False)  # lets `logs` drain without blocking
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._proc = proc
        self._cold_starts += 1
        self._live.append(proc)
        pump_args = (weakref.ref(self), proc)  # a strong ref would defeat the finalizer
        self._reader = threading.Thread(target=_pump, args=pump_args, daemon=True)
        self._reader.start()
        logger.debug("spawned runtime pid %d for %s", proc.pid, self.handler)
        return proc

    def _drain(self, proc: subprocess.Popen[bytes]) -> None:
        with self._log_lock:
            stream = proc.stdout
            while stream is not None and not stream.closed:
                try:
                    chunk = os.read(stream.fileno(), 65536)
                except BlockingIOError:
                    return
                self._log_chunks.append(self._decoder.decode(chunk, final=not chunk))
                if not chunk:
                    stream.close()

    def _reap(self, graceful: bool) -> None:
        proc, reader, self._proc, self._reader = self._proc, self._reader, None, None
        if proc is None:
            return
        # Even if it already exited, children it left behind may linger in its group.
        _kill_group(proc, graceful and proc.poll() is None)
        self._live.remove(proc)
        if reader is not None:
            reader.join(timeout=1.0)  # EOF arrives once the group is gone
        self._drain(proc)
        with self._log_lock:
            if proc.stdout is not None:
                proc.stdout.close()
