"""Start ``awslambdaric`` as a SnapStart environment: restored in place, or as N copies.

Run by `tracing.local.runtime.local_lambda.LocalLambda` for ``init_type="snap-start"`` as
``python -m tracing.local.runtime._snapstart_boot module.handler``. awslambdaric runs the
module's init and the before-snapshot hooks, then calls
``GET /runtime/restore/next``: the snapshot point. Our Runtime API answers it
when the test asks for a restore, with a JSON body naming the Runtime API
address of each copy to restore (an extension of the local API only; the real
one sends no body). For each address the process forks; the child puts back the
PRNG states it had at the snapshot, ``random``'s and the library's id generator's
(a microVM snapshot keeps them, while ``fork`` reseeds both in the child), points
awslambdaric at its own Runtime API and goes on as a restored environment:
after-restore hooks, then invocations. The snapshot process itself waits for its
copies. With no address, it restores in place.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import sys
from typing import Any

_RESTORE = "/2018-06-01/runtime/restore/next"


def _copies(address: str) -> list[str]:
    connection = http.client.HTTPConnection(address)
    connection.request("GET", _RESTORE)
    response = connection.getresponse()
    body = response.read()
    connection.close()
    if response.status != 200:
        raise RuntimeError(f"restore/next answered {response.status}")
    try:
        copies = json.loads(body).get("copies") if body else None
    except ValueError:
        copies = None
    return [str(a) for a in copies] if isinstance(copies, list) else []


class _HTTPRuntimeClient:
    """The calls awslambdaric makes on its native ``runtime_client``, over http.client."""

    def __init__(self, address: str) -> None:
        self._address = address

    def _call(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[bytes, dict[str, str]]:
        connection = http.client.HTTPConnection(self._address)
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        data = response.read()
        received = dict(response.getheaders())
        connection.close()
        return data, received

    def next(self) -> tuple[bytes, dict[str, str]]:
        return self._call("GET", "/2018-06-01/runtime/invocation/next")

    def post_invocation_result(
        self, invoke_id: str, data: bytes, content_type: str, invocation_id: Any = None
    ) -> None:
        path = f"/2018-06-01/runtime/invocation/{invoke_id}/response"
        self._call("POST", path, data, {"Content-Type": content_type})

    def post_error(
        self, invoke_id: str, error: str, xray_fault: str, invocation_id: Any = None
    ) -> None:
        try:
            error_type = json.loads(error).get("errorType", "Runtime.Unknown")
        except ValueError:
            error_type = "Runtime.Unknown"
        headers = {
            "Lambda-Runtime-Function-Error-Type": str(error_type),
            "Lambda-Runtime-Function-XRay-Error-Cause": xray_fault,
        }
        path = f"/2018-06-01/runtime/invocation/{invoke_id}/error"
        self._call("POST", path, error.encode(), headers)


def main(argv: list[str]) -> None:
    from awslambdaric import lambda_runtime_client as client_module
    from awslambdaric.__main__ import main as awslambdaric_main

    from tracing._header import ID_RANDOM

    original = client_module.BaseLambdaRuntimeClient.restore_next

    def restore_next(self: Any) -> None:
        addresses = _copies(self.lambda_runtime_address)
        if not addresses:
            return  # restored in place
        snapshot_state = random.getstate()
        ids_state = ID_RANDOM.getstate()
        children = []
        for address in addresses:
            pid = os.fork()
            if pid == 0:  # a restored copy
                random.setstate(snapshot_state)
                ID_RANDOM.setstate(ids_state)
                os.environ["AWS_LAMBDA_RUNTIME_API"] = address
                self.lambda_runtime_address = address
                # The native client keeps the address it was created with: the copy
                # talks to its own Runtime API through a small stdlib client.
                client_module.runtime_client = _HTTPRuntimeClient(address)
                original(self)  # the copy's own restore/next: answered at once
                return
            children.append(pid)
        for pid in children:
            os.waitpid(pid, 0)
        os._exit(0)

    client_module.BaseLambdaRuntimeClient.restore_next = restore_next
    awslambdaric_main(argv)


if __name__ == "__main__":
    main(sys.argv)
