"""``tracing run``: a handler in the local Lambda runtime, with an embedded collector.

The function's environment is built in layers, each winning over the ones
before it (see `function_env`): Lambda's own variables, the caller's AWS,
tracing, OpenTelemetry and Powertools settings, local AWS (``--aws local``),
``--env-file`` files, ``--env`` values and ``--backend``; that is
`~tracing.local.runtime._function_env`, whose functions are re-exported here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tracing._header import new_id, new_trace_id
from tracing.local.runtime._function_env import (
    _NAME,
    PASSTHROUGH_PREFIXES,
    function_env,
    parse_env_option,
    passthrough_env,
    read_env_file,
)

__all__ = [
    "INSTALL_LOCAL",
    "PASSTHROUGH_PREFIXES",
    "function_env",
    "parse_env_option",
    "passthrough_env",
    "read_env_file",
    "run_handler",
    "wait_quiet",
]

#: What installs the local tools (the Lambda runtime client, moto, rich).
INSTALL_LOCAL = "pip install 'lambda-xray-tracing[local]'"


def _profile_region(env: Mapping[str, str]) -> str | None:
    """The region of the function's AWS profile, from its config file (no network)."""
    try:
        import botocore.session
    except ImportError:
        return None
    try:
        session = botocore.session.Session(profile=env.get("AWS_PROFILE"))
        if "AWS_CONFIG_FILE" in env:
            session.set_config_variable("config_file", env["AWS_CONFIG_FILE"])
        region = session.get_config_variable("region")
    except Exception:  # a broken profile is the function's to report, not ours
        return None
    return region if isinstance(region, str) and region else None


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


def _lines(log: str) -> str:
    """The log for a terminal.

    awslambdaric ends the lines of an error with ``\\r``, which keeps a traceback
    in one CloudWatch event; a terminal would draw each line over the last.
    """
    return log.replace("\r\n", "\n").replace("\r", "\n").rstrip()


def _fail(message: str, log: str = "", title: str = "function log") -> int:
    """Print ``log`` (if any) then the one line saying what failed; exit status 2."""
    if log.strip():
        print(f"--- {title} ---\n{_lines(log)}\n---", file=sys.stderr)
    print(f"tracing run: {message}", file=sys.stderr)
    return 2


def _init_hint(
    payload: Mapping[str, Any], env: Mapping[str, str], handler: str, code_dir: str
) -> str:
    """A hint for the usual init failures of a function run for the first time."""
    kind, message = payload.get("errorType", ""), str(payload.get("errorMessage", ""))
    name = message.strip("'\"")
    if kind == "KeyError" and _NAME.match(name) and name not in env:
        if name in os.environ:
            return (
                f" ({name} is set in your shell, but only AWS_*, TRACING_*, OTEL_* and "
                f"POWERTOOLS_* variables pass: add --env {name})"
            )
        return f" ({name} is not set for the function: --env {name}=VALUE or --env-file FILE)"
    if kind == "NoCredentialsError":
        return " (no AWS credentials: --aws local runs against local AWS; or set AWS_PROFILE)"
    module = handler.rsplit(".", 1)[0]
    if kind == "Runtime.ImportModuleError" and f"No module named '{module}'" in message:
        return f" (the code directory is {os.path.abspath(code_dir)}: --code-dir DIR)"
    return ""


def _run_setup(script: str, env: Mapping[str, str], code_dir: str) -> str | None:
    """Run the ``--aws-setup`` script; None when it succeeded, else the failure."""
    keep = ("PATH", "LANG", "LC_ALL", "TMPDIR", "HOME")
    setup_env = {k: v for k, v in os.environ.items() if k in keep}
    setup_env.update(env)
    # NOTE: the files stay out of reach, as in the function: nothing real.
    setup_env |= {"AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
    extra = env.get("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
    setup_env["PYTHONPATH"] = os.pathsep.join(p for p in (os.path.abspath(code_dir), extra) if p)
    if not Path(script).is_file():
        return f"--aws-setup {script}: no such file"
    done = subprocess.run(
        [sys.executable, script],
        env=setup_env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        errors="replace",
        check=False,
    )
    if done.returncode == 0:
        sys.stdout.write(done.stdout)
        sys.stderr.write(done.stderr)
        return None
    output = (done.stdout + done.stderr).rstrip()
    last = output.splitlines()[-1] if output else f"exit status {done.returncode}"
    _fail(f"--aws-setup {script} failed: {last}", output, "setup log")
    return last


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
    env: Sequence[str] = (),
    env_files: Sequence[str] = (),
    aws: str | None = None,
    aws_setup: str | None = None,
) -> int:
    """Invoke ``handler`` ``invocations`` times and print the resulting traces.

    With ``snapstart`` > 0 the function is a SnapStart function: initialised
    once, then restored as that many environments (copies of the snapshot), each
    invoked ``invocations`` times.

    Args:
        env: ``KEY=VALUE`` (or ``KEY``: the caller's value) for the function.
        env_files: Dotenv files for the function (`read_env_file`).
        aws: ``"local"``: start local AWS (moto's server) for the run and point
            the function at it, with dummy credentials.
        aws_setup: With ``aws="local"``: a Python script run against local AWS
            before the function starts, with the function's environment.

    Returns:
        0 when every invocation returned, 1 when one failed, 2 when the function
        could not start (or the arguments were wrong).

    Raises:
        ValueError: An env file or ``--env`` value is malformed.
        ModuleNotFoundError: A tool of the ``local`` extra is not installed.
    """
    import contextlib
    import importlib.util

    from tracing.local.collector.daemon import Collector
    from tracing.local.collector.store import TraceStore
    from tracing.local.runtime.local_lambda import InitError, LocalLambda
    from tracing.local.views.terminal import show_trace

    if aws not in (None, "local"):
        raise ValueError(f"--aws {aws!r}: the only choice is 'local'")
    if aws_setup and aws != "local":
        return _fail("--aws-setup runs against local AWS: add --aws local")
    try:
        event = json.loads(Path(event_file).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return _fail(f"cannot read the event from {event_file}: {exc}")
    if importlib.util.find_spec("awslambdaric") is None:
        return _fail(f"needs 'awslambdaric' (the Lambda runtime client): {INSTALL_LOCAL}")
    if not Path(code_dir).is_dir():
        return _fail(f"--code-dir {code_dir}: no such directory")

    def warn(message: str) -> None:
        print(f"tracing run: {message}", file=sys.stderr)

    with contextlib.ExitStack() as stack:
        local_aws: dict[str, str] | None = None
        if aws == "local":
            from tracing.local.runtime.aws import LocalAWS

            # The region is known before local AWS starts: yours, else us-east-1.
            draft = function_env(env_files=env_files, env=env, local_aws={})
            region = draft.get("AWS_REGION") or draft.get("AWS_DEFAULT_REGION") or "us-east-1"
            local = stack.enter_context(LocalAWS(region=region))
            local_aws = local.env
            print(f"local AWS: {local.endpoint} (moto), region {region}, dummy credentials")
        function_vars = function_env(
            env_files=env_files, env=env, local_aws=local_aws, backend=backend, warn=warn
        )
        region = (
            function_vars.get("AWS_REGION")
            or function_vars.get("AWS_DEFAULT_REGION")
            or (None if local_aws is not None else _profile_region(function_vars))
            or "us-east-1"
        )
        if aws_setup and _run_setup(aws_setup, function_vars, code_dir) is not None:
            return 2
        store = stack.enter_context(TraceStore(db))
        collector = stack.enter_context(Collector("127.0.0.1:0", store))
        function = LocalLambda(
            handler,
            code_dir=code_dir,
            function_name=handler.rsplit(".", 1)[0],
            timeout_s=timeout_s,
            region=region,
            env=function_vars,
            xray_daemon_address=collector.address,
            init_type="snap-start" if snapstart else "on-demand",
        )
        failed = False
        roots: list[str] = []
        try:
            try:
                function.start()
                targets: list[tuple[str, Any]] = (
                    [(f"copy {n + 1} ", c) for n, c in enumerate(function.restore(snapstart))]
                    if snapstart
                    else [("", function)]
                )
            except InitError as exc:
                hint = _init_hint(exc.payload, function_vars, handler, code_dir)
                return _fail(f"the function failed to initialise: {exc}{hint}", exc.logs)
            for label, target in targets:
                for index in range(invocations):
                    root = new_trace_id()
                    roots.append(root)
                    header = f"Root={root};Parent={new_id()};Sampled=1"
                    try:
                        result = target.invoke(event, trace_header=header)
                    except InitError as exc:  # it crashed or timed out, then init failed
                        hint = _init_hint(exc.payload, function_vars, handler, code_dir)
                        return _fail(f"the function failed to initialise: {exc}{hint}", exc.logs)
                    outcome = result.payload if result.ok else result.error
                    failed = failed or not result.ok
                    text = json.dumps(outcome, default=str)[:200]
                    print(f"{label}invocation {index + 1}: {text}", flush=True)
                    if getattr(target, "extensions", None):
                        # A network exporter exports after the response (an
                        # in-process extension): show what the caller did not wait for.
                        post = result.post_response_ms(timeout=5.0)
                        if post is not None:
                            print(
                                f"  responded after {result.duration_ms:.1f} ms; exported "
                                f"after the response in {post:.1f} ms "
                                "(PostRuntimeExtensionsDuration)",
                                flush=True,
                            )
            logs = function.logs
        finally:
            function.stop()
        wait_quiet(collector)
        if logs.strip():
            print("--- function log ---")
            print(_lines(logs))
        for root in roots:
            print()
            documents = store.documents(root)
            if documents:
                show_trace(documents)
            else:
                print(
                    f"trace {root}: nothing received (does the function call "
                    "tracing.configure() and use @tracing.handler?)"
                )
    return 1 if failed else 0
