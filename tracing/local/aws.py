"""Local stand-ins for AWS services: moto's real HTTP server on 127.0.0.1.

Used by the demo, the CLI and the tests. Functions reach it through
``AWS_ENDPOINT_URL`` (honoured by boto3 since 1.28), so the same function code
runs unchanged against real AWS.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

__all__ = ["DUMMY_CREDENTIALS", "LocalAWS", "sqs_trace_header_middleware"]

#: Credentials moto accepts; never real ones.
DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


def sqs_trace_header_middleware(app: Any) -> Any:
    """WSGI middleware giving moto's SQS the trace-header behaviour of the real one.

    Real SQS stores the ``X-Amzn-Trace-Id`` header of a ``SendMessage`` request as
    the message's ``AWSTraceHeader`` system attribute when the request sets none
    itself. That is how the ``Lineage`` botocore copies from ``_X_AMZN_TRACE_ID``
    reaches the next function, and how Lambda counts a loop's hops even with no
    tracer at all. moto ignores the header; this puts it where SQS would (JSON
    protocol, which boto3 uses for SQS).
    """
    import io
    import json
    from urllib.parse import unquote

    def wrapped(environ: dict[str, Any], start_response: Any) -> Any:
        header = environ.get("HTTP_X_AMZN_TRACE_ID")
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if header and target == "AmazonSQS.SendMessage":
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
                body = json.loads(environ["wsgi.input"].read(length) or b"{}")
                system = body.setdefault("MessageSystemAttributes", {})
                system.setdefault(
                    "AWSTraceHeader", {"DataType": "String", "StringValue": unquote(header)}
                )
                data = json.dumps(body).encode()
                environ["wsgi.input"] = io.BytesIO(data)
                environ["CONTENT_LENGTH"] = str(len(data))
            except (ValueError, AttributeError, TypeError):
                pass  # not what SQS would accept either: let moto answer
        return app(environ, start_response)

    return wrapped


def _server_class() -> Any:
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    class TracedMotoServer(ThreadedMotoServer):
        def _server_entry(self) -> None:
            app = sqs_trace_header_middleware(DomainDispatcherApplication(create_backend_app))
            self._server = make_server(
                self._ip_address, self._port, app, True, request_handler=MotoRequestHandler
            )
            self._server_ready_event.set()
            self._server.serve_forever()

    return TracedMotoServer


def _TracedMotoServer(**kwargs: Any) -> Any:  # noqa: N802 - a class, built on first use
    return _server_class()(**kwargs)


class LocalAWS:
    """moto's ``ThreadedMotoServer`` on a free loopback port.

    Args:
        region: Region the clients use.

    Example::

        with LocalAWS() as aws:
            sqs = aws.client("sqs")
            env = aws.env  # pass to a function process
    """

    def __init__(self, region: str = "us-east-1") -> None:
        self.region = region
        self._server: Any = None
        self.endpoint = ""

    def start(self) -> LocalAWS:
        """Start the server; idempotent."""
        if self._server is None:
            import logging

            # werkzeug logs every request at INFO to stderr; keep the demo readable.
            logging.getLogger("werkzeug").setLevel(logging.WARNING)

            server = _TracedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            server.start()
            host, port = server.get_host_and_port()
            self._server = server
            self.endpoint = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        """Stop the server."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    @property
    def env(self) -> dict[str, str]:
        """Environment for a process whose boto3 clients should use this server."""
        return {
            **DUMMY_CREDENTIALS,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
        }

    def client(self, service: str) -> Any:
        """A boto3 client for ``service`` pointed at this server."""
        import boto3

        return boto3.client(
            service,  # type: ignore[call-overload]  # any service name, checked by boto3
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=DUMMY_CREDENTIALS["AWS_SESSION_TOKEN"],
        )

    def __enter__(self) -> LocalAWS:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
