"""The environment of a function run by ``tracing run``, in layers.

`function_env` builds it (each layer wins over the ones before): the caller's
settings that pass by default (`passthrough_env`), local AWS, ``--env-file``
dotenv files (`read_env_file`), ``--env`` values (`parse_env_option`) and
``--backend``. `tracing.local.runtime.run` re-exports these.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "PASSTHROUGH_PREFIXES",
    "function_env",
    "parse_env_option",
    "passthrough_env",
    "read_env_file",
]

#: Prefixes of the caller's variables that reach the function by default.
PASSTHROUGH_PREFIXES = ("AWS_", "TRACING_", "OTEL_", "POWERTOOLS_")
# Lambda sets these itself (LocalLambda does); a value left in the caller's shell
# must not pose as the function's configuration.
_LAMBDA_OWN = ("AWS_LAMBDA_", "AWS_EXECUTION_ENV")
# Always the run's own: its runtime API and its collector.
_RESERVED = frozenset({"AWS_LAMBDA_RUNTIME_API", "AWS_XRAY_DAEMON_ADDRESS"})
# With --aws local a profile names credentials in files the function cannot see.
_PROFILES = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE")

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}


def _caller_value(name: str, where: str, environ: Mapping[str, str]) -> str:
    if name not in environ:
        raise ValueError(f"{where}: {name} is not set in your environment")
    return environ[name]


def parse_env_option(text: str, environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """One ``--env`` value: ``KEY=VALUE``, or ``KEY`` alone for the caller's own value.

    Raises:
        ValueError: Not a variable name, or ``KEY`` alone and not set.
    """
    name, sep, value = text.partition("=")
    if not _NAME.match(name):
        raise ValueError(f"--env {text!r}: expected KEY=VALUE (KEY: letters, digits and _)")
    if not sep:
        value = _caller_value(name, f"--env {name}", os.environ if environ is None else environ)
    return name, value


def _quoted(text: str, start: int, quote: str, where: str) -> tuple[str, int]:
    """The value of a quoted string opening at ``start``, and the index after it."""
    chars: list[str] = []
    i = start + 1
    while i < len(text):
        char = text[i]
        if char == quote:
            return "".join(chars), i + 1
        if char == "\\" and quote == '"' and i + 1 < len(text) and text[i + 1] in _ESCAPES:
            chars.append(_ESCAPES[text[i + 1]])
            i += 2
            continue
        chars.append(char)
        i += 1
    raise ValueError(f"{where}: the closing {quote} is missing")


def read_env_file(
    path: str | os.PathLike[str], environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Read a dotenv file: the variables it sets, in order.

    One ``KEY=VALUE`` per line, as Docker's ``--env-file`` and python-dotenv
    read them: blank lines and ``#`` comments are skipped, an ``export ``
    prefix is allowed, spaces around ``=`` and around an unquoted value are
    dropped, and `` #`` after an unquoted value starts a comment. In
    ``'single quotes'`` a value is literal; in ``"double quotes"`` ``\\n``,
    ``\\t``, ``\\r``, ``\\"`` and ``\\\\`` are escapes; quoted values may span
    lines. ``KEY`` alone takes the caller's own value. Nothing is expanded:
    ``$HOME`` stays ``$HOME``.

    Args:
        path: The file.
        environ: Where ``KEY`` alone is looked up (default: ``os.environ``).

    Raises:
        ValueError: The file cannot be read, or a line is malformed; the message
            names the file and the line number (never the line's value).
    """
    environ = os.environ if environ is None else environ
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read the env file {os.fspath(path)}: {exc}") from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    result: dict[str, str] = {}
    i, line = 0, 1
    while i < len(text):
        end = text.find("\n", i)
        end = len(text) if end < 0 else end
        where = f"{os.fspath(path)} line {line}"
        stripped = text[i:end].strip()
        if not stripped or stripped.startswith("#"):
            i, line = end + 1, line + 1
            continue
        if stripped.startswith(("export ", "export\t")):
            stripped = stripped[7:].lstrip()
        name, sep, _ = stripped.partition("=")
        name = name.strip()
        if not _NAME.match(name):
            raise ValueError(f"{where}: expected KEY=VALUE (KEY: letters, digits and _)")
        if not sep:
            result[name] = _caller_value(name, where, environ)
            i, line = end + 1, line + 1
            continue
        # The value starts after the first "=" of the line, spaces skipped.
        j = text.index("=", i) + 1
        while j < end and text[j] in " \t":
            j += 1
        if j < end and text[j] in "\"'":
            value, after = _quoted(text, j, text[j], f"{where}: {name}")
            line += text.count("\n", j, after)
            end = text.find("\n", after)
            end = len(text) if end < 0 else end
            rest = text[after:end].strip()
            if rest and not rest.startswith("#"):
                raise ValueError(f"{where}: {name}: unexpected text after the closing quote")
        else:
            value = text[j:end]
            for mark in (" #", "\t#"):
                value = value.split(mark, 1)[0]
            value = value.strip()
        result[name] = value
        i, line = end + 1, line + 1
    return result


def passthrough_env(
    backend: str | None = None,
    *,
    aws_local: bool = False,
    environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The caller's settings that reach a function process by default.

    Variables starting ``AWS_``, ``TRACING_``, ``OTEL_`` and ``POWERTOOLS_``
    (credentials, region, profile, ``AWS_ENDPOINT_URL``, the library's and
    Powertools' settings), except the ones Lambda sets itself (``AWS_LAMBDA_*``,
    ``AWS_EXECUTION_ENV``) and the run's own (``AWS_XRAY_DAEMON_ADDRESS``).
    Without ``aws_local`` the caller's AWS config and credentials files come
    too (``~/.aws/config`` and ``~/.aws/credentials`` unless
    ``AWS_CONFIG_FILE``/``AWS_SHARED_CREDENTIALS_FILE`` say otherwise), so a
    profile works as it does for ``python app.py``. With ``aws_local`` only
    ``AWS_REGION`` and ``AWS_DEFAULT_REGION`` of the ``AWS_*`` variables pass:
    nothing real reaches a function meant to use local AWS.
    """
    environ = os.environ if environ is None else environ
    env = {
        k: v
        for k, v in environ.items()
        if k.startswith(PASSTHROUGH_PREFIXES) and not k.startswith(_LAMBDA_OWN)
        if k not in _RESERVED
        if not aws_local or not k.startswith("AWS_") or k in ("AWS_REGION", "AWS_DEFAULT_REGION")
    }
    if not aws_local:
        env.setdefault("AWS_CONFIG_FILE", os.path.expanduser("~/.aws/config"))
        env.setdefault("AWS_SHARED_CREDENTIALS_FILE", os.path.expanduser("~/.aws/credentials"))
    if backend:
        env["TRACING_BACKEND"] = backend
    return env


def function_env(
    *,
    env_files: Iterable[str | os.PathLike[str]] = (),
    env: Iterable[str] = (),
    local_aws: Mapping[str, str] | None = None,
    backend: str | None = None,
    environ: Mapping[str, str] | None = None,
    warn: Any = None,
) -> dict[str, str]:
    """The function's environment, in layers; each wins over the ones before.

    1. `passthrough_env` (the caller's settings).
    2. ``local_aws``: local AWS's endpoint, dummy credentials and region.
    3. ``env_files``, in order (`read_env_file`).
    4. ``env``: ``KEY=VALUE`` or ``KEY`` texts, in order (`parse_env_option`).
    5. ``backend`` as ``TRACING_BACKEND``.

    ``AWS_LAMBDA_RUNTIME_API`` and ``AWS_XRAY_DAEMON_ADDRESS`` belong to the run
    and are ignored wherever they are given; with ``local_aws``, so are
    ``AWS_PROFILE`` and ``AWS_DEFAULT_PROFILE``. ``warn(message)`` is told.

    Raises:
        ValueError: An env file or ``--env`` value is malformed, or names a
            variable the caller has not set.
    """
    environ = os.environ if environ is None else environ
    result = passthrough_env(aws_local=local_aws is not None, environ=environ)
    explicit: list[tuple[str, str, str]] = []
    for path in env_files:
        explicit.extend(
            (name, value, os.fspath(path)) for name, value in read_env_file(path, environ).items()
        )
    explicit.extend((*parse_env_option(text, environ), "--env") for text in env)
    result.update(local_aws or {})
    ignored = _RESERVED | (frozenset(_PROFILES) if local_aws is not None else frozenset())
    for name, value, source in explicit:
        if name in ignored:
            if warn is not None:
                why = (
                    "with --aws local the function uses local AWS's dummy credentials"
                    if name in _PROFILES
                    else "tracing run sets it"
                )
                warn(f"ignoring {name} from {source}: {why}")
            continue
        result[name] = value
    if backend:
        result["TRACING_BACKEND"] = backend
    return result
