"""Start a function the way the ADOT Lambda layer starts it, to test living beside it.

The layer (``aws-observability/aws-otel-python-instrumentation``, ``lambda-layer``)
is set as ``AWS_LAMBDA_EXEC_WRAPPER=/opt/otel-instrument``. That script only
sets environment variables, then runs the runtime under
``opentelemetry-instrument``, which loads the distro's configurator (its
``TracerProvider``, the OTLP/UDP exporter to ``AWS_XRAY_DAEMON_ADDRESS``, the
X-Ray propagator) and every instrumentation not disabled (so botocore's). The
handler is swapped for the layer's ``otel_wrapper.lambda_handler``, which
instruments ``aws-lambda`` and imports the function named by ``ORIG_HANDLER``.

`adot_layer_env` gives the variables the script sets (its full mode, the
default); ``LocalLambda(..., exec_wrapper=adot_exec_wrapper(venv))`` then starts
the real runtime the same way, from a venv where ``aws-opentelemetry-distro``
is installed (``make test`` makes ``.venv-adot`` from ``requirements/adot.txt``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ["ADOT_DISABLED_INSTRUMENTATIONS", "adot_exec_wrapper", "adot_layer_env"]

#: What the layer disables by default; it always adds ``aws-lambda`` (its wrapper
#: instruments the handler itself, after the runtime imported it).
ADOT_DISABLED_INSTRUMENTATIONS = (
    "aio-pika,aiohttp-client,aiohttp-server,aiopg,asgi,asyncio,asyncpg,boto,boto3,cassandra,"
    "celery,confluent_kafka,dbapi,django,elasticsearch,falcon,fastapi,flask,grpc_client,"
    "grpc_server,grpc_aio_client,grpc_aio_server,httpx,jinja2,kafka,logging,mysql,mysqlclient,"
    "pika,psycopg,psycopg2,pymemcache,pymongo,pymysql,pyramid,redis,remoulade,requests,sklearn,"
    "sqlalchemy,sqlite3,starlette,system_metrics,threading,tornado,tortoiseorm,wsgi,"
    "openai_agents,aws_openai_agents,aws_crewai,aws_langchain,aws_mcp,aws_llama-index"
)


def adot_layer_env(
    handler: str,
    *,
    function_name: str,
    region: str = "us-east-1",
    version: str = "$LATEST",
    environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The variables ADOT's ``otel-instrument`` sets, for a function's ``_HANDLER``.

    Args:
        handler: The function's own handler (``module.function``): it becomes
            ``ORIG_HANDLER``; the runtime is given ``otel_wrapper.lambda_handler``
            (returned as ``_HANDLER``, to pass as the runtime's handler).
        function_name: ``AWS_LAMBDA_FUNCTION_NAME``.
        region: ``AWS_REGION``.
        version: ``AWS_LAMBDA_FUNCTION_VERSION``.
        environ: The function's own variables: where the script keeps a value
            the user set (``OTEL_SERVICE_NAME``, ``OTEL_PROPAGATORS``, ...), so
            does this.
    """
    given = dict(environ or {})
    resource = (
        f"cloud.region={region},cloud.platform=aws_lambda,cloud.provider=aws,"
        f"faas.name={function_name},faas.version={version}"
    )
    env = {
        "OTEL_SERVICE_NAME": given.get("OTEL_SERVICE_NAME") or function_name,
        "OTEL_PROPAGATORS": given.get("OTEL_PROPAGATORS") or "baggage,xray,tracecontext",
        "OTEL_AWS_APPLICATION_SIGNALS_RUNTIME_ENABLED": "false",
        "OTEL_METRICS_EXPORTER": given.get("OTEL_METRICS_EXPORTER") or "none",
        "OTEL_LOGS_EXPORTER": given.get("OTEL_LOGS_EXPORTER") or "none",
        "AWS_LAMBDA_LITE_MODE": given.get("AWS_LAMBDA_LITE_MODE") or "false",
        "OTEL_AWS_APPLICATION_SIGNALS_ENABLED": (
            given.get("OTEL_AWS_APPLICATION_SIGNALS_ENABLED") or "true"
        ),
        "OTEL_RESOURCE_ATTRIBUTES": ",".join(
            part for part in (resource, given.get("OTEL_RESOURCE_ATTRIBUTES")) if part
        ),
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": (
            given.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS") or ADOT_DISABLED_INSTRUMENTATIONS
        )
        + ",aws-lambda",
        "ORIG_HANDLER": handler,
        "_HANDLER": "otel_wrapper.lambda_handler",
    }
    if env["OTEL_AWS_APPLICATION_SIGNALS_ENABLED"] == "true":
        env["OTEL_PYTHON_DISTRO"] = "aws_distro"
        env["OTEL_PYTHON_CONFIGURATOR"] = "aws_configurator"
    return env


def adot_exec_wrapper(venv: str | os.PathLike[str]) -> list[str]:
    """The command the layer's script ends with, from ``venv``: ``opentelemetry-instrument``."""
    python = os.path.join(venv, "bin", "python")
    return [python, os.path.join(venv, "bin", "opentelemetry-instrument")]
