"""Every code block of README.md and docs/ runs in the test suite (Sybil).

The root ``conftest.py`` hands Sybil these parsers; each block becomes a pytest
item (``README.md::line:42,column:1``), run in order within its page, one
namespace per page:

* ```` ```python ```` blocks run in process, in a clean environment of their
  own: not configured, outside Lambda, a real UDP listener as the daemon
  (``daemon``), moto's HTTP server as AWS (``aws``, with the SSM parameters the
  pages read), dummy credentials. ``<!-- invisible-code-block: python -->``
  blocks check what a visible block did (its documents, its output).
* ```` ```sh ```` blocks run with ``bash -euo pipefail`` in the page's own
  temporary directory, ``.venv/bin`` first on ``PATH``, the same listener and
  local AWS, ``TRACING_DB`` in that directory. A block that is not meant to run
  here (``make test`` itself, ``sam deploy``, a server that never returns) is
  preceded by ``<!-- skip: next "why" -->``; a skip without a reason fails.
* ```` ```text ````, ```` ```diff ````, ```` ```yaml ```` and other blocks are
  shown output or file excerpts: not run.

Helpers in every page's namespace: ``write_file(name, text)`` writes into the
page's directory, ``previous_block()`` is the source of the last Python block
run, ``tmp`` is that directory, ``daemon``/``aws`` as above, ``documents()``
syncs the listener and returns what it received, ``FakeContext`` and
``testing`` from ``tracing.testing``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from sybil import Example, Sybil
from sybil.evaluators.python import PythonEvaluator
from sybil.parsers.markdown import ClearNamespaceParser, CodeBlockParser, SkipParser

__all__ = ["sybil"]

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
#: SSM parameters the pages' examples read.
PARAMETERS = {"/orders/config": '{"currency": "EUR"}', "/app/currency": "EUR"}
#: Environment the pages' examples may set or read: cleared for each page.
_PREFIXES = ("TRACING_", "AWS_LAMBDA_", "_X_AMZN_", "AWS_XRAY_", "OTEL_", "POWERTOOLS_")
_SHARED: dict[str, Any] = {}


class _PythonBlocks(CodeBlockParser):
    """```python blocks, recorded (``previous_block()``) as they run."""

    language = "python"

    def __init__(self) -> None:
        super().__init__()
        self._run = PythonEvaluator()

    def evaluate(self, example: Example) -> None:
        __tracebackhide__ = True
        self._run(example)
        example.namespace["_blocks"].append(str(example.parsed))


class _ShellBlocks(CodeBlockParser):
    """```sh blocks: run with bash in the page's directory; a failure shows the output."""

    language = "sh"

    def evaluate(self, example: Example) -> None:
        __tracebackhide__ = True
        namespace = example.namespace
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", str(example.parsed)],
            cwd=namespace["tmp"],
            env=_shell_env(namespace),
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        namespace["shell_output"] = result.stdout
        if result.returncode != 0:
            raise AssertionError(
                f"exit status {result.returncode}\n--- stdout\n{result.stdout}\n"
                f"--- stderr\n{result.stderr}"
            )


class _ReasonedSkips(SkipParser):
    """Sybil's skip directive, refusing a skip that does not say why."""

    def __call__(self, document: Any) -> Any:
        for region in super().__call__(document):
            action, reason = region.parsed
            if action in ("next", "start") and not reason:
                raise ValueError(
                    f"{document.path}, line {document.line_column(region.start)}: "
                    f"'skip: {action}' must say why the block cannot run here"
                )
            yield region


def _shell_env(namespace: dict[str, Any]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_PREFIXES)}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["TRACING_DB"] = str(Path(namespace["tmp"]) / "traces.sqlite3")
    env["AWS_XRAY_DAEMON_ADDRESS"] = namespace["_page_daemon"].address
    return env


def _aws() -> Any:
    """moto's HTTP server for the whole run, with the pages' SSM parameters."""
    local = _SHARED.get("aws")
    if local is None:
        from tracing.local.runtime.aws import LocalAWS

        local = LocalAWS().__enter__()
        ssm = local.client("ssm")
        for name, value in PARAMETERS.items():
            ssm.put_parameter(Name=name, Value=value, Type="String", Overwrite=True)
        _SHARED["aws"] = local
    return local


def _setup(namespace: dict[str, Any]) -> None:
    from tracing import testing

    namespace["_environ"] = dict(os.environ)
    for name in list(os.environ):
        if name.startswith(_PREFIXES) or name in ("LAMBDA_TASK_ROOT", "_HANDLER"):
            del os.environ[name]
    aws = _aws()
    os.environ.update(aws.env)  # AWS_ENDPOINT_URL, dummy credentials, a region
    os.environ["AWS_DEFAULT_REGION"] = os.environ.get("AWS_REGION", "us-east-1")
    testing.reset()
    daemon = testing.DaemonListener().__enter__()
    os.environ["AWS_XRAY_DAEMON_ADDRESS"] = daemon.address
    tmp = tempfile.mkdtemp(prefix="tracing-docs-")
    namespace.update(
        aws=aws,
        daemon=daemon,
        _page_daemon=daemon,  # an example may name its own listener "daemon"
        _page_tmp=tmp,
        tmp=tmp,
        testing=testing,
        FakeContext=testing.FakeContext,
        _blocks=[],
        previous_block=lambda: namespace["_blocks"][-1],
        write_file=lambda name, text: Path(tmp, name).write_text(text, encoding="utf-8"),
        documents=daemon.sync,
    )


def _teardown(namespace: dict[str, Any]) -> None:
    from tracing import testing

    testing.reset()
    namespace["_page_daemon"].__exit__(None, None, None)
    shutil.rmtree(namespace["_page_tmp"], ignore_errors=True)
    os.environ.clear()
    os.environ.update(namespace["_environ"])
    for name in [n for n in sys.modules if n in ("app",)]:
        del sys.modules[name]  # a page's own module, imported by name


def sybil() -> Sybil:
    """The Sybil instance the root ``conftest.py`` collects README.md and docs/ with."""
    return Sybil(
        parsers=[_PythonBlocks(), _ShellBlocks(), _ReasonedSkips(), ClearNamespaceParser()],
        patterns=["README.md", "docs/*.md"],
        path=str(ROOT),
        setup=_setup,
        teardown=_teardown,
    )
