"""The one rule that keeps URL secrets out of documents: queries and credentials.

Query strings carry tokens (``?token=...``, presigned ``X-Amz-Signature``...)
and URLs can carry ``user:password@``. Both reach a trace in two ways: as the
URL of a call (``http.request.url``), and inside error text, where HTTP clients
write the URL they failed on (urllib3: ``Max retries exceeded with url:
/charge?token=abc``). aws-xray-sdk strips the query from the URLs it records
but writes exception messages as they are, and keeps credentials in URLs.

The rule, applied by every recorder (our HTTP calls, the invocation and
``tracing.span`` causes, AWS calls, SQS consumers, OpenTelemetry spans converted
to X-Ray, aws-xray-sdk subsegments):

* **Credentials** (``scheme://user:password@host``) are removed, always.
* **The query and fragment** of a URL are removed, in recorded URLs and in any
  text; ``http_query=True`` (``TRACING_HTTP_QUERY``) keeps queries, in both.

Text is scanned only when it contains ``?`` or ``@`` (callers check first, so
this module is imported only for such text: not at cold start). Nothing here
raises.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import re

__all__ = ["needs_scrub", "scrub_text", "scrub_url"]

# scheme://user:pass@ -> scheme://  (no slash, space or quote in the user part)
_CREDENTIALS = r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)[^\s/?#@'\"<>]*@"
# An absolute URL (scheme://authority[/path]) or a path (/...), then ?query[#fragment].
# The query ends at whitespace, a quote, or a closing bracket of the text around it.
_QUERY = (
    r"(?P<keep>(?:\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s/?#'\"<>]*)?/?[^\s?#'\"<>()\[\]]*)"
    r"\?[^\s#'\"<>)\]]+(?:#[^\s'\"<>)\]]*)?"
)
#: The compiled patterns, made on first use: compiling costs cold start.
_COMPILED: list[Any] = []


def _patterns() -> tuple[re.Pattern[str], re.Pattern[str]]:
    if not _COMPILED:
        import re

        _COMPILED.extend((re.compile(_CREDENTIALS), re.compile(_QUERY)))
    return _COMPILED[0], _COMPILED[1]


def needs_scrub(text: str) -> bool:
    """Whether ``text`` may hold a URL secret: callers import this module only then."""
    return "?" in text or "@" in text


def _keep_query() -> bool:
    from ._runtime import get_runtime

    runtime = get_runtime()
    return runtime is not None and runtime.settings.http_query


def scrub_text(text: str, keep_query: bool | None = None) -> str:
    """``text`` with credentials, and queries unless kept, cut from its URLs.

    Args:
        text: Any text: an error message, a URL.
        keep_query: Keep queries; ``None`` follows ``http_query``.
    """
    if "@" not in text and "?" not in text:
        return text
    if keep_query is None:
        keep_query = _keep_query()
    query = not keep_query and "?" in text
    if "@" not in text and not query:
        return text
    credentials, queries = _patterns()
    if "@" in text:
        text = credentials.sub(r"\g<scheme>", text)
    if query:
        text = queries.sub(_scrub_query, text)
    return text


def _scrub_query(match: re.Match[str]) -> str:
    keep = match.group("keep")
    # Only a URL's query: "/path?", "scheme://host?", "url: /x?": a '?' after a
    # word with no slash ("why?") is a question, left as it is.
    if "/" in keep:
        return keep
    return match.group(0)


def scrub_url(url: str, keep_query: bool | None = None) -> str:
    """A URL as recorded: no credentials, no fragment, no query unless kept.

    A URL that does not parse is scrubbed as text. ``keep_query=None`` follows
    ``http_query``.
    """
    from urllib.parse import urlsplit, urlunsplit

    if keep_query is None:
        keep_query = _keep_query()
    try:
        parts = urlsplit(url)
    except ValueError:
        return scrub_text(url, keep_query)
    netloc = parts.netloc.rpartition("@")[2]
    query = parts.query if keep_query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
