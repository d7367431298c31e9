"""``configure()`` imports only what the first invocation needs (cold start).

Each case runs in a fresh interpreter with a Lambda-like environment and lists
the modules that ``import tracing; tracing.configure(...)`` added. What is
deferred must still arrive when it is needed: botocore's wrapper when boto3 is
imported later, the AWS-call recorder and the SQS carriers at the first call,
OTel's propagators when ``opentelemetry.propagate`` is imported.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

#: Imported by every configuration: the core and the UDP emitter.
CORE = {
    "tracing",
    "tracing._api",
    "tracing._config",
    "tracing._configure",
    "tracing._encoding",
    "tracing._entity",
    "tracing._guard",
    "tracing._header",
    "tracing._hooks",
    "tracing._init_phase",
    "tracing._lambda",
    "tracing._runtime",
    "tracing._scope",
    "tracing._span",
    "tracing._values",
    "tracing.backends",
    "tracing.exporters",
    "tracing.exporters.xray_udp",
}
#: Deferred to their first use, never imported by ``configure()``.
DEFERRED = {
    "tracing.sqs",
    "tracing._aws_calls",
    "tracing._payload",
    "tracing._scrub",
    "tracing.backends.xray_sdk",
    "tracing.backends.otel_xray",
    "tracing.backends.otel_propagator",
    "tracing.backends.otel_otlp",
    "tracing.exporters.xray_otlp",
    "tracing._sigv4",
    "aws_xray_sdk",
    "opentelemetry.propagate",
    "opentelemetry.propagators.aws",
    "opentelemetry.sdk.extension.aws",
}


def _run(before: str, configure: str, after: str = "") -> dict[str, Any]:
    """Modules added by ``configure`` (on top of ``before``), and what ``after`` reports."""
    code = "\n".join(
        [
            "import json, sys",
            before,
            "seen = set(sys.modules)",
            "import tracing",
            configure,
            "added = sorted(set(sys.modules) - seen)",
            "report = {}",
            textwrap.dedent(after),
            'print(json.dumps({"added": added, "report": report}))',
        ]
    )
    # A UDP socket of ours as the daemon: the child sends nothing, and if it ever
    # did, the datagram would land here rather than in someone's service.
    daemon = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    daemon.bind(("127.0.0.1", 0))
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "LAMBDA_TASK_ROOT": str(ROOT),
        "AWS_LAMBDA_FUNCTION_NAME": "cold",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{daemon.getsockname()[1]}",
    }
    with daemon:
        out = subprocess.run(
            [sys.executable, "-W", "ignore", "-c", code],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
    result: dict[str, Any] = json.loads(out.stdout.splitlines()[-1])
    return result


def _ours(added: list[str]) -> set[str]:
    return {name for name in added if name.split(".")[0] in {"tracing", "aws_xray_sdk"}}


def test_native_configure_on_top_of_boto3_imports_the_core_and_its_hooks_only() -> None:
    result = _run("import boto3", "tracing.configure()")
    assert _ours(result["added"]) == CORE | {
        "tracing.backends.xray",
        "tracing._boto_hooks",
        "tracing._propagation",
        "tracing._http_calls",  # urllib3 came with botocore: patched at once
    }
    assert not DEFERRED & set(result["added"])


def test_http_clients_are_patched_when_imported_and_never_imported_by_us() -> None:
    result = _run(
        "",
        "tracing.configure()",
        after="""
        report["at_configure"] = sorted(
            m for m in ("urllib3", "httpx", "tracing._http_calls") if m in sys.modules
        )
        import httpx
        import urllib3
        report["patched"] = [
            getattr(urllib3.connectionpool.HTTPConnectionPool.urlopen, "_tracing_wrapped", False),
            getattr(httpx.HTTPTransport.handle_request, "_tracing_wrapped", False),
            getattr(httpx.AsyncHTTPTransport.handle_async_request, "_tracing_wrapped", False),
        ]
        """,
    )
    assert result["report"] == {"at_configure": [], "patched": [True, True, True]}


def test_without_boto3_configure_never_imports_botocore_and_hooks_it_when_imported() -> None:
    result = _run(
        "",
        "tracing.configure()",
        after="""
        report["botocore_at_configure"] = "botocore" in sys.modules
        from botocore.client import BaseClient
        report["hooked"] = getattr(BaseClient._make_api_call, "_tracing_hooked", False)
        """,
    )
    assert result["report"] == {"botocore_at_configure": False, "hooked": True}


def test_the_recorder_and_the_sqs_carriers_arrive_with_the_first_calls() -> None:
    result = _run(
        "import boto3\nfrom botocore.stub import Stubber",
        "tracing.configure()",
        after="""
        ssm = boto3.client("ssm")
        with Stubber(ssm) as stub:
            stub.add_response("get_parameter", {"Parameter": {"Name": "/x", "Value": "1"}})
            ssm.get_parameter(Name="/x")
        report["after_ssm"] = sorted(m for m in ("tracing._aws_calls", "tracing.sqs")
                                     if m in sys.modules)
        sqs = boto3.client("sqs")
        with Stubber(sqs) as stub:
            stub.add_response("send_message", {"MessageId": "m", "MD5OfMessageBody": "x"})
            sqs.send_message(QueueUrl="https://sqs.us-east-1.amazonaws.com/1/q",
                             MessageBody="b")
        report["after_sqs"] = "tracing.sqs" in sys.modules
        """,
    )
    assert result["report"] == {"after_ssm": ["tracing._aws_calls"], "after_sqs": True}


def test_otel_configure_defers_the_propagation_api_and_installs_it_on_import() -> None:
    result = _run(
        "import boto3\nimport opentelemetry.sdk.trace, opentelemetry.trace",
        'tracing.configure(backend="otel")',
        after="""
        from opentelemetry import propagate
        textmap = propagate.get_global_textmap()
        report["textmap"] = sorted(type(p).__name__ for p in textmap._propagators)
        """,
    )
    assert _ours(result["added"]) == CORE | {
        "tracing.backends.otel",
        "tracing.backends.otel_bridge",
        "tracing._boto_hooks",
        "tracing._propagation",
        "tracing._http_calls",  # urllib3 came with botocore: patched at once
    }
    assert not DEFERRED & set(result["added"])
    assert result["report"]["textmap"] == ["GatedPropagator", "XRayTracePropagator"]


def test_otel_propagation_imported_before_configure_is_set_at_once() -> None:
    result = _run(
        "import boto3\nfrom opentelemetry import propagate",
        'tracing.configure(backend="otel")',
        after="""
        textmap = propagate.get_global_textmap()
        report["textmap"] = sorted(type(p).__name__ for p in textmap._propagators)
        """,
    )
    assert result["report"]["textmap"] == ["GatedPropagator", "XRayTracePropagator"]
