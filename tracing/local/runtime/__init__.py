"""The local Lambda runtime: what ``tracing run`` and ``tracing demo`` are made of.

The Runtime and Extensions APIs with the real ``awslambdaric`` client
(:mod:`~tracing.local.runtime.local_lambda`), SnapStart's restore hooks, the
event sources that deliver to a function (SQS, Kinesis, DynamoDB Streams, SNS,
EventBridge), and :class:`~tracing.local.runtime.aws.LocalAWS`.

``from tracing.local.runtime import LocalLambda`` is the documented import. It is
resolved lazily, so that the function processes, which import
``tracing.local.runtime._snapstart_boot``, do not pay for the runner's imports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tracing.local.runtime.local_lambda import (
        InitError,
        InvokeResult,
        LocalLambda,
        PendingInvocation,
        RestoredCopy,
        RuntimeAPIServer,
    )

__all__ = [
    "InitError",
    "InvokeResult",
    "LocalLambda",
    "PendingInvocation",
    "RestoredCopy",
    "RuntimeAPIServer",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from tracing.local.runtime import local_lambda

        return getattr(local_lambda, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
