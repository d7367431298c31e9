"""Pieces shared by our self-contained HTML pages: the Content-Security-Policy,
JSON for an inline ``<script type="application/json">`` block, and escaping.

Every page forbids every load; its one inline script runs because the policy
names that script's hash (:func:`page_csp`). Trace data reaches the script only
as an escaped JSON block (:func:`_script_json`) read with ``textContent``.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from typing import Any

__all__ = ["page_csp"]


def _script_json(data: Any) -> str:
    """JSON safe inside ``<script type="application/json">`` (no ``</script>``)."""
    text = json.dumps(data, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    # NOTE: ensure_ascii already escapes U+2028/U+2029; the replacements below keep
    # "</script>" and "<!--" from closing or confusing the block. These characters
    # only occur inside JSON strings, where \uXXXX means the same character.
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def page_csp(script: str) -> str:
    """The Content-Security-Policy of our pages: no load at all, only ``script`` runs."""
    script_hash = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    return (
        "default-src 'none'; style-src 'unsafe-inline'; "
        f"script-src 'sha256-{script_hash}'; img-src 'none'; base-uri 'none'; form-action 'none'"
    )


def _esc(text: str) -> str:
    return html.escape(text, quote=True)
