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

__all__ = ["PAGE_HEAD", "page_csp"]

#: The start of every page, to ``<body>``: ``str.format`` fields ``csp``,
#: ``title`` (escaped) and ``style``.
PAGE_HEAD = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="referrer" content="no-referrer">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
"""


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


def page_csp(script: str | None, form_action: str = "'none'") -> str:
    """The Content-Security-Policy of our pages: no load at all; only ``script``
    runs (``None``: no script at all), and forms go to ``form_action`` only."""
    if script is None:
        scripts = "'none'"
    else:
        scripts = (
            "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"
        )
    return (
        "default-src 'none'; style-src 'unsafe-inline'; "
        f"script-src {scripts}; img-src 'none'; base-uri 'none'; form-action {form_action}"
    )


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)
