"""X-Ray filter expressions, evaluated locally: the public names.

The implementation, its grammar and what is supported are in
:mod:`tracing.local.filters`; this module is the stable place to import from.
"""

from __future__ import annotations

from .filters import SUPPORTED, UNSUPPORTED, Filter, FilterError, matches_documents, parse

__all__ = ["SUPPORTED", "UNSUPPORTED", "Filter", "FilterError", "matches_documents", "parse"]
