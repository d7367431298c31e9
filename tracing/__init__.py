"""Distributed tracing for Python on AWS Lambda, viewed in AWS X-Ray.

Importing this package has no side effects: it opens no socket, starts no
thread and imports no tracing backend. ``configure()`` does the set-up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._api import annotate, current_span, flush, in_current_trace, metadata, span
from ._configure import configure
from ._lambda import handler
from ._span import Span

if TYPE_CHECKING:
    from . import dynamodb as dynamodb
    from . import kinesis as kinesis
    from . import sqs as sqs

__all__ = [
    "Span",
    "annotate",
    "configure",
    "current_span",
    "dynamodb",
    "flush",
    "handler",
    "in_current_trace",
    "kinesis",
    "metadata",
    "span",
    "sqs",
]


def __getattr__(name: str) -> Any:
    # The carriers are imported on first use so that ``import tracing`` stays cheap.
    if name in ("sqs", "kinesis", "dynamodb"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
