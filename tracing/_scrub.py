"""The one rule that keeps URL secrets out of documents: queries and credentials.

Query strings carry tokens (``?token=...``, presigned ``X-Amz-Signature``...),
fragments carry OAuth tokens (``#access_token=...``), and URLs can carry
``user:password@``. They reach a trace in two ways: as the URL of a call
(``http.request.url``), and inside error text, where HTTP clients write the URL
they failed on (urllib3: ``Max retries exceeded with url: /charge?token=abc``).
aws-xray-sdk strips the query from the URLs it records but writes exception
messages as they are, and keeps credentials in URLs.

The rule, applied by every recorder (our HTTP calls, the invocation and
``tracing.span`` causes, AWS calls, SQS consumers, OpenTelemetry spans converted
to X-Ray or written as OTLP, aws-xray-sdk subsegments):

* **Credentials** (``scheme://user:password@host``, ``scheme://token@host``)
  are removed, always, even when the password holds ``@``, ``/``, ``?`` or ``#``.
* **The fragment** of a URL is removed, always.
* **The query** of a URL is removed unless ``http_query=True``
  (``TRACING_HTTP_QUERY``), in recorded URLs and in any text.

In text, a URL is an absolute one (``scheme://...``) or a path (``/...``) inside
a word (a run of characters without spaces, quotes or ``<>``); closing brackets
and punctuation that end the word belong to the text around it. ``why?`` (no
slash) is a question, left alone; so is ``bob@example.com`` (no scheme). Not
covered: scheme-less connection strings (``user:pass@host:5432``), ``mailto:``,
a bare host with a query (``api.example.com?token=``), and a password holding
``@`` and then ``/``, ``?`` or ``#`` unencoded, which RFC 3986 itself reads as a
host and a path or query.

Linear in the text's length (one pass over its words, a character class with
nothing to backtrack over, then plain string operations on words holding
``?``, ``@`` or ``#``), and run only on text containing
``?``, ``@`` or ``#`` (callers check first, so this module is imported only for
such text: not at cold start). Nothing here raises.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import re

__all__ = ["needs_scrub", "scrub_text", "scrub_url"]

#: The word pattern, compiled on first use (compiling costs cold start).
_WORDS: list[re.Pattern[str]] = []
#: Trailing characters of a word that belong to the sentence, not to its URL.
_TRAILING = ".,;:!"
_CLOSERS = {")": "(", "]": "["}
#: Characters of a URL scheme after its first letter.
_SCHEME = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-")


def needs_scrub(text: str) -> bool:
    """Whether ``text`` may hold a URL secret: callers import this module only then."""
    return "?" in text or "@" in text or "#" in text


def _keep_query() -> bool:
    from ._runtime import get_runtime

    runtime = get_runtime()
    return runtime is not None and runtime.settings.http_query


def scrub_text(text: str, keep_query: bool | None = None) -> str:
    """``text`` with credentials, fragments and (unless kept) queries cut from its URLs.

    Args:
        text: Any text: an error message, a URL.
        keep_query: Keep queries; ``None`` follows ``http_query``.
    """
    if "?" not in text and "@" not in text and "#" not in text:
        return text
    if keep_query is None:
        keep_query = _keep_query()
    out: list[str] = []
    start = 0
    for match in _words().finditer(text):
        word = match.group()
        if "?" in word or "@" in word or "#" in word:
            scrubbed = _scrub_word(word, keep_query)
            if scrubbed is not word:
                out.append(text[start : match.start()])
                out.append(scrubbed)
                start = match.end()
    if not out:
        return text
    out.append(text[start:])
    return "".join(out)


def _words() -> re.Pattern[str]:
    """Runs of characters that can be part of a URL: one character class, no
    alternation or nesting, so matching is linear (no backtracking to exploit)."""
    if not _WORDS:
        import re

        _WORDS.append(re.compile(r"[^\s'\"<>`]+"))
    return _WORDS[0]


def _scrub_word(word: str, keep_query: bool) -> str:
    """One word of text, its URL (if any) scrubbed; the same object when unchanged."""
    url_start = _url_start(word)
    if url_start < 0:
        return word
    body, tail = _split_tail(word[url_start:])
    scrubbed = _scrub(body, keep_query)
    if scrubbed == body:
        return word
    return word[:url_start] + scrubbed + tail


def _url_start(word: str) -> int:
    """Where the URL in ``word`` starts: its scheme, else its first ``/``; -1: none."""
    marker = word.find("://")
    if marker > 0:
        start = marker
        while start > 0 and word[start - 1] in _SCHEME:
            start -= 1
        while start < marker and not word[start].isalpha():
            start += 1  # a scheme starts with a letter
        if start < marker:
            return start
    slash = word.find("/")
    question = word.find("?")
    hash_ = word.find("#")
    first = min(i for i in (question, hash_, len(word)) if i >= 0)
    return slash if 0 <= slash < first else -1


def _split_tail(url: str) -> tuple[str, str]:
    """``url`` and the punctuation after it that belongs to the sentence."""
    opened = {closer: url.count(opener) for closer, opener in _CLOSERS.items()}
    closed = {closer: url.count(closer) for closer in _CLOSERS}
    end = len(url)
    while end > 0:
        char = url[end - 1]
        if char in _TRAILING:
            end -= 1
        elif char in _CLOSERS and opened[char] < closed[char]:
            closed[char] -= 1  # an unbalanced closer: the text's bracket around the URL
            end -= 1
        else:
            break
    return url[:end], url[end:]


def _scrub(url: str, keep_query: bool) -> str:
    """One URL: credentials removed; its fragment, and its query unless kept, cut."""
    marker = url.find("://")
    if marker > 0:
        rest_at = marker + 3
        url = url[:rest_at] + _without_credentials(url[rest_at:])
        path_at = rest_at
    else:
        path_at = 0
    hash_ = url.find("#", path_at)
    if hash_ >= 0:
        url = url[:hash_]
    question = url.find("?", path_at)
    if 0 <= question < len(url) - 1 and not keep_query:
        url = url[:question]  # (a bare trailing '?' is punctuation: "is it /tmp/x?")
    return url


_HOST = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:[]%")


def _without_credentials(rest: str) -> str:
    """``user:password@host/...`` without its userinfo (``rest`` follows ``://``).

    A password may hold ``@``, ``/``, ``?`` or ``#`` unencoded, so the userinfo
    ends at an ``@`` followed by something that reads as a host (up to the next
    ``/``, ``?``, ``#``): the last such one before the first ``?`` or ``#``,
    else the first such one after (a later one is in the query). Text before it
    that holds a ``/``, ``?`` or ``#`` must read as ``user:password``
    (``host:443/users/@me`` is a port and a path: kept).
    """
    if "@" not in rest:
        return rest
    first = len(rest)
    for char in "?#":
        found = rest.find(char)
        if 0 <= found < first:
            first = found
    early = late = -1
    at = rest.find("@")
    while at >= 0:
        if _credentials_end(rest, at):
            if at < first:
                early = at
            elif late < 0:
                late = at
                break
        at = rest.find("@", at + 1)
    end = early if early >= 0 else late
    return rest[end + 1 :] if end >= 0 else rest


def _credentials_end(rest: str, at: int) -> bool:
    """Whether ``rest[at]`` can end a userinfo: a host follows, and before it is
    ``user[:password]`` (with ``/?#`` only after a ``:`` that starts no port)."""
    end = at + 1
    while end < len(rest) and rest[end] not in "/?#":
        if rest[end] not in _HOST:
            return False
        end += 1
    if end == at + 1:
        return False  # nothing after the '@': not a host
    userinfo = rest[:at]
    stop = len(userinfo)
    for char in "/?#":
        found = userinfo.find(char)
        if 0 <= found < stop:
            stop = found
    if stop == len(userinfo):
        return True  # user@ or user:password@
    colon = userinfo.find(":", 0, stop)
    return colon >= 0 and not userinfo[colon + 1 : stop].isdigit()


def scrub_url(url: str, keep_query: bool | None = None) -> str:
    """A URL as recorded: no credentials, no fragment, no query unless kept.

    ``keep_query=None`` follows ``http_query``.
    """
    if keep_query is None:
        keep_query = _keep_query()
    return _scrub(url, keep_query)
