"""aws-xray-sdk is optional, and connected whenever the application imports it.

Each case runs in a fresh interpreter: whether the SDK was imported before or
after ``configure()`` is a property of the process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tracing import testing

PROGRAM = """
import json, os, sys
{before}
import tracing
from tracing import testing
from tracing._header import new_id, new_trace_id

with testing.DaemonListener() as daemon:
    os.environ["AWS_XRAY_DAEMON_ADDRESS"] = daemon.address
    tracing.configure(service="svc")
    loaded_at_configure = any(m.startswith("aws_xray_sdk") for m in sys.modules)
    {after}
    from aws_xray_sdk.core import xray_recorder

    with xray_recorder.in_subsegment("sdk at import") as sub:
        sub.put_annotation("phase", "init")

    @tracing.handler
    def handler(event, context):
        with tracing.span("ours"):
            with xray_recorder.in_subsegment("sdk in handler"):
                tracing.annotate("inside", True)
        return "ok"

    os.environ["_X_AMZN_TRACE_ID"] = f"Root={{new_trace_id()}};Parent={{new_id()}};Sampled=1"
    assert handler({{}}, testing.FakeContext()) == "ok"
    print(json.dumps({{"loaded_at_configure": loaded_at_configure, "documents": daemon.sync()}}))
"""


def _run(tmp_path: Path, before: str, after: str) -> dict[str, Any]:
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(PROGRAM.format(before=before, after=after)))
    env = {**os.environ, "LAMBDA_TASK_ROOT": str(tmp_path), "AWS_LAMBDA_FUNCTION_NAME": "svc"}
    done = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def _tree(entity: dict[str, Any]) -> list[Any]:
    return [entity["name"], [_tree(c) for c in entity.get("subsegments", [])]]


@pytest.mark.parametrize(
    ("before", "after", "loaded"),
    [
        ("import aws_xray_sdk.core", "", True),
        ("", "import aws_xray_sdk.core", False),
        ("", "", False),  # imported first by the application's own `from ... import`
    ],
    ids=["imported-before-configure", "imported-after-configure", "imported-by-use"],
)
def test_sdk_subsegments_land_in_our_documents_whenever_it_is_imported(
    tmp_path: Path, before: str, after: str, loaded: bool
) -> None:
    out = _run(tmp_path, before, after)
    assert out["loaded_at_configure"] is loaded  # configure() never imports it itself
    init, invocation = out["documents"]
    for document in (init, invocation):
        assert testing.check_document(document) == []
    assert _tree(init) == ["Init", [["sdk at import", []]]]
    assert init["subsegments"][0]["annotations"] == {"phase": "init"}
    assert _tree(invocation) == ["## handler", [["ours", [["sdk in handler", []]]]]]
    [ours] = invocation["subsegments"]
    assert ours["subsegments"][0]["annotations"] == {"inside": True}
