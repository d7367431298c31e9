"""Coverage-guided fuzzing of the untrusted-input parsers with atheris (libFuzzer).

Each target runs in its own process for a fixed number of inputs; the README's
"Reliability" section states the counts.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    find_spec("atheris") is None,
    reason=(
        f"atheris is not installed for Python {platform.python_version()} on "
        f"{sys.platform}/{platform.machine()}: it has wheels for Linux x86_64 only, and its "
        f"source build needs clang and libFuzzer (the dev extra leaves it out elsewhere)"
    ),
)

TARGETS = Path(__file__).with_name("atheris_targets.py")
#: ``make fuzz`` multiplies the counts (TRACING_FUZZ_SCALE).
SCALE = int(os.environ.get("TRACING_FUZZ_SCALE", "1"))
RUNS = {
    name: runs * SCALE
    for name, runs in {
        "header": 50_000,
        "record": 30_000,
        "datagram": 50_000,
        "documents": 20_000,
    }.items()
}


@pytest.mark.parametrize("target", sorted(RUNS))
def test_atheris_target_survives(target: str) -> None:
    done = subprocess.run(
        [sys.executable, str(TARGETS), target, f"-runs={RUNS[target]}", "-max_len=2048"],
        capture_output=True,
        text=True,
        timeout=300 * SCALE,
        check=False,
        cwd=TARGETS.parents[2],
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"Done {RUNS[target]} runs" in done.stderr
