"""Functions started the way ADOT's Lambda layer starts them, through awslambdaric."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tracing import testing
from tracing.local.runtime import LocalLambda
from tracing.local.runtime.aws import LocalAWS
from tracing.testing._adot import adot_exec_wrapper, adot_layer_env

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "integration" / "fixtures"
ADOT_VENV = ROOT / ".venv-adot"

AdotLaunch = Callable[..., LocalLambda]


@pytest.fixture(scope="session")
def adot_venv() -> Path:
    """The ADOT venv (``make test`` makes it; made here when pytest runs alone)."""
    if not (ADOT_VENV / ".installed").exists():
        subprocess.run(["make", ".venv-adot/.installed"], cwd=ROOT, check=True, timeout=900)
    return ADOT_VENV


@pytest.fixture
def adot_launch(
    aws: LocalAWS, daemon: testing.DaemonListener, adot_venv: Path
) -> Iterator[AdotLaunch]:
    """Start ``handler`` under the ADOT layer's start-up, traced to ``daemon``."""
    started: list[LocalLambda] = []

    def _launch(handler: str, *, timeout_s: float = 3.0, **env: str) -> LocalLambda:
        layer = adot_layer_env(handler, function_name="adot-app", environ=env)
        function = LocalLambda(
            layer["_HANDLER"],
            code_dir=FIXTURES,
            function_name="adot-app",
            timeout_s=timeout_s,
            env={
                **aws.env,
                **env,
                **layer,
                # The layer's /opt/python, then our package.
                "PYTHONPATH": f"{FIXTURES / 'adot_layer'}:{ROOT}",
            },
            xray_daemon_address=daemon.address,
            python=str(adot_venv / "bin" / "python"),
            exec_wrapper=adot_exec_wrapper(adot_venv),
            init_timeout_s=60.0,
        )
        started.append(function)
        function.start()
        return function

    yield _launch
    for function in started:
        function.stop()
