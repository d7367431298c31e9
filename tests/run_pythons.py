"""``make test-pythons``: the core suites under every supported Python found here.

Lambda offers python3.10 to python3.14. For each of those versions this finds an
interpreter (``python3.X`` on ``PATH``, else pyenv's newest ``3.X.*`` under
``$PYENV_ROOT``, default ``~/.pyenv``), makes ``.venv-pythons/3.X`` with the dev
extra on first use (again when ``pyproject.toml`` changes), and runs the unit and
contract suites plus one test through the real awslambdaric runtime. Versions
with no interpreter on the machine are listed as skipped; they are not failures.

``make test`` itself stays on the default ``python3``.

Usage: ``python tests/run_pythons.py [3.12 ...]`` (default: every version).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENVS = ROOT / ".venv-pythons"
VERSIONS = ("3.10", "3.11", "3.12", "3.13", "3.14")
SUITES = (
    "tests/unit",
    "tests/contract",
    "tests/integration/test_lambda_runtime.py::test_cold_start_replays_init_work_into_the_first_trace",
)


def _version_of(python: str) -> str | None:
    try:
        out = subprocess.run(
            [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def find_interpreter(version: str) -> str | None:
    """An interpreter of ``version`` on this machine, or None."""
    candidates: list[str] = []
    on_path = shutil.which(f"python{version}")
    if on_path:
        candidates.append(on_path)
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    if pyenv.is_dir():
        found = sorted(
            pyenv.glob(f"{version}.*/bin/python{version}"),
            key=lambda p: [int(x) for x in p.parts[-3].split(".") if x.isdigit()],
            reverse=True,
        )
        candidates.extend(str(path) for path in found)
    for candidate in candidates:
        if _version_of(candidate) == version:
            return candidate
    return None


def ensure_venv(version: str, interpreter: str) -> Path:
    """``.venv-pythons/<version>`` with the project and its dev extra installed."""
    venv = VENVS / version
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    pyproject = ROOT / "pyproject.toml"
    if stamp.exists() and stamp.stat().st_mtime >= pyproject.stat().st_mtime:
        return python
    if not python.exists():
        subprocess.run([interpreter, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run(
        [*pip, "-e", ".[dev]", "--config-settings", "editable_mode=compat"],
        cwd=ROOT,
        check=True,
    )
    stamp.touch()
    return python


def main(argv: list[str]) -> int:
    versions = [v for v in VERSIONS if not argv or v in argv]
    results: list[tuple[str, str, str]] = []
    skipped: list[str] = []
    failed = False
    for version in versions:
        interpreter = find_interpreter(version)
        if interpreter is None:
            skipped.append(version)
            print(f"== Python {version}: no interpreter found, skipped", flush=True)
            continue
        print(f"== Python {version}: {interpreter}", flush=True)
        started = time.monotonic()
        try:
            python = ensure_venv(version, interpreter)
        except subprocess.CalledProcessError as exc:
            failed = True
            results.append((version, interpreter, f"INSTALL FAILED ({exc})"))
            continue
        done = subprocess.run(
            [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", *SUITES],
            cwd=ROOT,
            check=False,
        )
        seconds = time.monotonic() - started
        outcome = "passed" if done.returncode == 0 else f"FAILED (pytest exit {done.returncode})"
        failed |= done.returncode != 0
        results.append((version, interpreter, f"{outcome} in {seconds:.0f} s"))
    print("\nmake test-pythons:")
    for version, interpreter, outcome in results:
        print(f"  Python {version}: {outcome}  ({interpreter})")
    if skipped:
        print(f"  skipped, no interpreter on this machine: {', '.join(skipped)}")
    if not results:
        print("  no supported interpreter found")
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
