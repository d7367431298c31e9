"""A real, local Lambda execution environment.

`RuntimeAPIServer` implements the Lambda Runtime API (2018-06-01) on 127.0.0.1 and
`LocalLambda` runs the genuine ``awslambdaric`` client against it, so handlers see
Lambda's own bootstrap, ``_X_AMZN_TRACE_ID`` handling, context and error payloads.
Deadlines are enforced like Lambda: the process is killed and the next invoke is a
cold start. The runtime process itself (spawning, output, killing) is
`~tracing.local.runtime._process`; SnapStart's restored environments are
`~tracing.local.runtime._restored_copy`. Stdlib only; POSIX only (process
groups, ``select`` on pipes).
"""

from __future__ import annotations

import codecs
import logging
import os
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

from tracing.local.runtime._invocation import InvokeResult, PendingInvocation, _error
from tracing.local.runtime._process import (
    _DEADLINE_GRACE_S,
    _TICK_S,
    _abandon,
    _checked_env,
    _exit_reason,
    _RuntimeProcess,
)
from tracing.local.runtime._restored_copy import RestoredCopy
from tracing.local.runtime._runtime_api import RuntimeAPIServer

__all__ = [
    "InitError",
    "InvokeResult",
    "LocalLambda",
    "PendingInvocation",
    "RestoredCopy",
    "RuntimeAPIServer",
]

logger = logging.getLogger("tracing.local.runtime")


class InitError(RuntimeError):
    """The function failed to initialise: import error, crash or init timeout.

    Attributes:
        payload: The body posted to ``/init/error``, or a synthesised one with
            errorType ``Runtime.ExitError`` or ``Sandbox.Timedout``.
        logs: Everything the failed process printed.
    """

    def __init__(self, payload: dict[str, Any], logs: str) -> None:
        kind = payload.get("errorType", "Runtime.Unknown")
        super().__init__(f"{kind}: {payload.get('errorMessage', '')}")
        self.payload = payload
        self.logs = logs


class LocalLambda(_RuntimeProcess):
    """One Lambda execution environment running the real ``awslambdaric``.

    The child gets a clean environment (Lambda's variables plus ``PATH``/``LANG``)
    updated with ``env``, which wins; but ``AWS_LAMBDA_RUNTIME_API`` always points
    at our server and ``PYTHONPATH`` is the task root followed by ``env``'s (or
    else our own) ``PYTHONPATH``. AWS config and credential files point at
    /dev/null so real credentials never reach the function.

    `start` (and so a lazily starting `invoke`) raises `InitError` if the module
    fails to import, the process dies during init, or init exceeds
    ``init_timeout_s``; the next call retries in a fresh process, as Lambda does.
    Invocations never raise: handler errors, timeouts (``Sandbox.Timedout``) and
    crashes (``Runtime.ExitError``) are results with ``ok=False``, and after a
    timeout or crash the next invoke is a cold start.

    Args:
        handler: ``module.function``, as in the Lambda console.
        code_dir: The task root (``LAMBDA_TASK_ROOT``, cwd, first on ``PYTHONPATH``).
        function_name: ``AWS_LAMBDA_FUNCTION_NAME``; also used in the function ARN.
        timeout_s: Per-invocation deadline, after which the process is killed.
        memory_mb: ``AWS_LAMBDA_FUNCTION_MEMORY_SIZE`` (informational only).
        region: ``AWS_REGION``, ``AWS_DEFAULT_REGION`` and the ARN's region.
        env: Variables for the function (a mapping of str to str, e.g.
            ``{**LocalAWS().env, "QUEUE_URL": url}``); they win over the
            ones above, except ``AWS_LAMBDA_RUNTIME_API``.
        xray_daemon_address: ``AWS_XRAY_DAEMON_ADDRESS``; unset when None.
        init_type: ``AWS_LAMBDA_INITIALIZATION_TYPE``.
        python: Interpreter that has ``awslambdaric`` installed.
        init_timeout_s: Longest wait for the first ``/next`` poll.
        exec_wrapper: A command the runtime's command line is appended to, as
            Lambda runs ``AWS_LAMBDA_EXEC_WRAPPER`` (a layer's start-up script,
            e.g. ADOT's ``opentelemetry-instrument``). Empty: none.
        refuse_extensions: Answer every Extensions API registration 403, as an
            environment without the Extensions API would fail it.
    """

    def __init__(
        self,
        handler: str,
        *,
        code_dir: str | os.PathLike[str],
        function_name: str = "local-function",
        timeout_s: float = 3.0,
        memory_mb: int = 128,
        region: str = "us-east-1",
        env: Mapping[str, str] | None = None,
        xray_daemon_address: str | None = None,
        init_type: str = "on-demand",
        python: str = sys.executable,
        init_timeout_s: float = 10.0,
        exec_wrapper: Sequence[str] = (),
        refuse_extensions: bool = False,
    ) -> None:
        self.handler, self.code_dir = handler, os.path.abspath(code_dir)
        self.function_name, self.region = function_name, region
        self.timeout_s, self.init_timeout_s = timeout_s, init_timeout_s
        self.memory_mb, self.init_type, self.python = memory_mb, init_type, python
        self.exec_wrapper = tuple(exec_wrapper)
        self.env, self.xray_daemon_address = _checked_env(env), xray_daemon_address
        self.function_arn = f"arn:aws:lambda:{region}:123456789012:function:{function_name}"
        self._server = RuntimeAPIServer()
        self._proc: subprocess.Popen[bytes] | None = None
        self._live: list[subprocess.Popen[bytes]] = []  # what the finalizer must kill
        # Cleans up if we are collected, or at interpreter exit (finalize runs
        # from atexit), when nobody called stop().
        weakref.finalize(self, _abandon, self._live, self._server)
        self._reader: threading.Thread | None = None
        self._lock = threading.RLock()  # one invocation in flight, like a sandbox
        self._log_lock = threading.Lock()
        self._log_chunks: list[str] = []
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._cold_starts = 0
        # SnapStart: init stops at the snapshot point until restore() or invoke().
        self._server.hold_restores = init_type == "snap-start"
        self._restored = False
        self._copies: list[RuntimeAPIServer] = []
        self._bad_headers: set[str] = set()  # warned about once each
        self._server.refuse_extensions = refuse_extensions
        self._server.function_info = {
            "functionName": function_name,
            "functionVersion": "$LATEST",
            "handler": handler,
        }
        # The last invocation and its deadline (time.monotonic()): the next one
        # waits until its extensions are done (Lambda's freeze rule).
        self._last: tuple[InvokeResult, float] | None = None

    def _check_header(self, trace_header: str | None) -> None:
        """Warn once per value when a trace header will not parse: nothing would be sent."""
        from tracing._header import parse

        if trace_header is None or parse(trace_header) is not None:
            return
        if trace_header not in self._bad_headers and len(self._bad_headers) < 100:
            self._bad_headers.add(trace_header)
            logger.warning(
                "trace_header %r is not an X-Ray trace header "
                "(Root=1-<8 hex>-<24 hex>;Parent=<16 hex>;Sampled=1): the function gets it, "
                "but tracing records nothing for the invocation",
                trace_header,
            )

    def start(self) -> None:
        """Spawn the runtime and return once init finished (it polled ``/next``).

        No-op while a runtime process is alive.

        Raises:
            InitError: The module failed to import, the process exited during
                init, or init took longer than ``init_timeout_s``.
        """
        with self._lock:
            if self.pid is not None:
                return
            self._reap(graceful=False)
            self._server.start()
            self._server.reset_runtime()
            log_offset, began = len(self.logs), time.monotonic()
            self._restored = False
            proc = self._spawn()
            server = self._server
            snapstart = server.hold_restores

            def ready() -> bool:
                # SnapStart: init ends at the snapshot point; otherwise at the first poll.
                return (
                    server.wait_for_snapshot(_TICK_S)
                    if snapstart
                    else (server.wait_for_next_poll(_TICK_S))
                )

            self._await(proc, ready, began, log_offset, "init")
            init_ms = (time.monotonic() - began) * 1000
            logger.debug("cold start %d: init %.1f ms", self._cold_starts, init_ms)

    def _await(
        self,
        proc: subprocess.Popen[bytes],
        ready: Any,
        began: float,
        log_offset: int,
        phase: str,
    ) -> None:
        """Wait for ``ready()``, raising `InitError` if the process dies or times out."""
        while not ready():
            error = self._server.init_error
            if error is None and proc.poll() is not None:
                reason = _exit_reason(proc.returncode)
                message = f"Runtime exited during {phase}: {reason}"
                if "No module named awslambdaric" in self.logs[log_offset:]:
                    message += (
                        f" (awslambdaric is not installed for {self.python}: "
                        "pip install 'lambda-xray-tracing[local]')"
                    )
                error = _error("Runtime.ExitError", message)
            elif error is None and time.monotonic() - began > self.init_timeout_s:
                message = f"{phase.upper()} timed out after {self.init_timeout_s:.2f} seconds"
                error = _error("Sandbox.Timedout", message)
            if error is not None:
                # The error is already logged by awslambdaric; nothing is lost.
                self._reap(graceful=False)
                logger.info("%s of %s failed: %s", phase, self.handler, error)
                raise InitError(error, self.logs[log_offset:])

    def restore(self, copies: int) -> list[RestoredCopy]:
        """SnapStart: restore ``copies`` environments from this one's snapshot.

        Needs ``init_type="snap-start"``. Init runs once (`start`); each copy is a
        fork of the snapshot process, with the PRNG state of the snapshot as a
        real restore has it, its own Runtime API, and its after-restore hooks run.

        Returns:
            One `RestoredCopy` per environment, ready to be invoked.

        Raises:
            InitError: Init, or a copy's restore, failed.
            RuntimeError: Not a SnapStart function, or already restored.
        """
        with self._lock:
            if not self._server.hold_restores:
                raise RuntimeError("restore() needs init_type='snap-start'")
            self.start()
            if self._restored:
                raise RuntimeError("this snapshot was already restored; stop() and start again")
            proc = self._proc
            assert proc is not None
            servers = [RuntimeAPIServer() for _ in range(copies)]
            for server in servers:
                server.start()
            self._copies.extend(servers)
            self._restored = True
            self._server.release_restore([server.address for server in servers])
            began, log_offset = time.monotonic(), len(self.logs)
            for server in servers:
                self._await(
                    proc,
                    lambda s=server: s.wait_for_next_poll(_TICK_S),
                    began,
                    log_offset,
                    "restore",
                )
            return [RestoredCopy(self, server) for server in servers]

    def invoke(self, event: Any, *, trace_header: str | None = None) -> InvokeResult:
        """Invoke the function once, starting the runtime first if needed.

        A ``trace_header`` that does not parse is still passed on, as Lambda
        would; a warning names it (once per value), since nothing is recorded.

        Args:
            event: A JSON-serialisable event; bytes and str are sent verbatim.
            trace_header: X-Ray header; the handler sees it as ``_X_AMZN_TRACE_ID``.

        Returns:
            The result; handler errors, timeouts and crashes are not raised.

        Raises:
            InitError: A (re)start was needed and init failed.
        """
        self._check_header(trace_header)
        with self._lock:
            self._await_extensions()
            self.start()
            proc = self._proc
            assert proc is not None
            if self._server.hold_restores and not self._restored:
                # SnapStart, invoked directly: this environment restores in place.
                self._restored = True
                self._server.release_restore()
                began = time.monotonic()
                self._await(
                    proc, lambda: self._server.wait_for_next_poll(_TICK_S), began, 0, "restore"
                )
            deadline_ms = int((time.time() + self.timeout_s) * 1000)
            inv = self._server.submit(
                event,
                trace_header=trace_header,
                deadline_ms=deadline_ms,
                function_arn=self.function_arn,
            )
            kill_at = time.monotonic() + self.timeout_s + _DEADLINE_GRACE_S
            while (result := inv.wait(_TICK_S)) is None:
                prefix = f"RequestId: {inv.request_id} Error:"
                if proc.poll() is not None:
                    reason = _exit_reason(proc.returncode)
                    message = f"{prefix} Runtime exited with error: {reason}"
                    failed = inv.resolve(False, None, _error("Runtime.ExitError", message))
                elif time.monotonic() >= kill_at:
                    message = f"{prefix} Task timed out after {self.timeout_s:.2f} seconds"
                    error = _error("Sandbox.Timedout", message)
                    failed = inv.resolve(False, None, error, timed_out=True)
                else:
                    continue
                if failed is not None:  # else the runtime answered just now: use that
                    logger.info("invoke %s failed: %s", inv.request_id, failed.error)
                    self._reap(graceful=False)
                    return failed
            self._last = (result, kill_at)
            return result

    @property
    def extensions(self) -> list[str]:
        """Names of the extensions the live runtime registered (Extensions API)."""
        return self._server.extensions

    def _await_extensions(self) -> None:
        """Wait until the last invocation's extensions called ``event/next``.

        Lambda hands the next event over only then. An extension still busy past
        the last invocation's deadline times that invocation out: the
        environment is reset (the next invocation is a cold start).
        """
        last, self._last = self._last, None
        proc = self._proc
        if last is None or proc is None:
            return
        result, kill_at = last
        while result.extensions_done_at(_TICK_S) is None:
            if proc.poll() is not None:
                return  # it died: the next invoke starts a new one
            if time.monotonic() >= kill_at:
                logger.info(
                    "invoke %s: an extension was still running at the deadline; "
                    "resetting the environment",
                    result.request_id,
                )
                self._reap(graceful=False)
                return

    def stop(self) -> None:
        """Terminate the runtime and its restored copies (SIGTERM, SIGKILL after 2 s).

        As Lambda never ends an environment in the middle of an invocation, the
        last invocation's extensions finish first (until its deadline at most).
        """
        with self._lock:
            self._await_extensions()
        self._reap(graceful=True)
        self._server.stop()
        copies, self._copies = self._copies, []
        for server in copies:
            server.stop()

    def __enter__(self) -> LocalLambda:
        """Start the runtime; see `start`."""
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Stop the runtime; see `stop`."""
        self.stop()
