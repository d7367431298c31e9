"""Local stand-ins for AWS services: moto's real HTTP server on 127.0.0.1.

Used by the demo, the CLI and the tests. Functions reach it through
``AWS_ENDPOINT_URL`` (honoured by boto3 since 1.28), so the same function code
runs unchanged against real AWS.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

__all__ = ["DUMMY_CREDENTIALS", "LocalAWS"]

#: Credentials moto accepts; never real ones.
DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


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

            from moto.server import ThreadedMotoServer

            # werkzeug logs every request at INFO to stderr; keep the demo readable.
            logging.getLogger("werkzeug").setLevel(logging.WARNING)

            server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
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
