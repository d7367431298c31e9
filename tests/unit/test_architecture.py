"""The dependency direction: core <- backends <- local tools, never the reverse.

The core imports no backend and holds no aws-xray-sdk or OpenTelemetry shape;
it reaches a backend only through the Protocols of ``tracing/backends/_seam.py``.
``_configure`` is the one place that picks a backend (lazily, by name).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import tracing

PACKAGE = Path(tracing.__file__).parent
CORE = sorted(
    path
    for path in PACKAGE.glob("*.py")
    if path.name not in {"cli.py", "__main__.py"}  # command-line tools, above the core
)
# The core may import the seam (tracing.backends) and the UDP emitter
# (tracing.exporters.xray_udp): neither is a backend. Other exporters are picked
# by _configure only (what they share with the core, such as SigV4, is core).
FOREIGN = ("aws_xray_sdk", "opentelemetry", "tracing.local")
#: aws-xray-sdk and OTel shapes that must stay in the backends.
SHAPES = ("parent_segment", "xray_recorder", "get_span_context", "SpanView", "is_recording")


def _imports(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(["tracing", *([base] if base else [])])
                if node.level > 1:
                    base = base.replace("tracing.", "tracing.", 1)
            names = [f"{base}.{alias.name}" for alias in node.names]
            found.extend((name, node.lineno) for name in [base, *names])
    return found


@pytest.mark.parametrize("path", CORE, ids=lambda p: p.name)
def test_the_core_imports_no_backend_and_no_tracing_library(path: Path) -> None:
    for name, line in _imports(path):
        backend = name == "tracing.backends.xray" or name.startswith(
            ("tracing.backends.xray.", "tracing.backends.otel")
        )
        exporter = name.startswith("tracing.exporters.") and not name.startswith(
            "tracing.exporters.xray_udp"
        )
        if path.name != "_configure.py":  # (the composition root picks both by name)
            assert not backend, f"{path.name}:{line} imports {name}"
            assert not exporter, f"{path.name}:{line} imports {name}"
        assert not name.startswith(FOREIGN), f"{path.name}:{line} imports {name}"


@pytest.mark.parametrize("path", CORE, ids=lambda p: p.name)
def test_the_core_holds_no_library_shapes(path: Path) -> None:
    """No code (docstrings and comments aside) names an SDK or OTel attribute."""
    used: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Name):
            used.add(node.id)
        elif isinstance(node, ast.Attribute):
            used.add(node.attr)
        elif (
            isinstance(node, ast.Constant) and isinstance(node.value, str) and " " not in node.value
        ):
            used.add(node.value)  # getattr(x, "parent_segment") counts too
    assert not used & set(SHAPES), f"{path.name} uses {sorted(used & set(SHAPES))}"


def test_importing_tracing_imports_no_backend_or_library() -> None:
    code = (
        "import sys, tracing, tracing.sqs\n"
        "bad = [m for m in sys.modules if m.startswith(('aws_xray_sdk', 'opentelemetry',"
        " 'tracing.backends.otel', 'boto3', 'botocore')) or m == 'tracing.backends.xray']\n"
        "print(bad)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
