"""Trace context through DynamoDB (filled in by the hops work)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: botocore operation -> ``before-parameter-build`` handler (``_boto_hooks``).
HANDLERS: dict[str, Callable[..., Any]] = {}
