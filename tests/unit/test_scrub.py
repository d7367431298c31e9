"""The URL-secret rule (``_scrub.py``): real client messages, and generated text."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tracing._scrub import scrub_text, scrub_url

#: What clients really write, with the secret in it (urllib3, requests, httpx, botocore).
MESSAGES = [
    (
        "HTTPSConnectionPool(host='api.example.com', port=443): Max retries exceeded with "
        "url: /charge?token=abc (Caused by NewConnectionError('refused'))",
        "HTTPSConnectionPool(host='api.example.com', port=443): Max retries exceeded with "
        "url: /charge (Caused by NewConnectionError('refused'))",
    ),
    (
        'Could not connect to the endpoint URL: "http://alice:hunter2@127.0.0.1:9/b?list-type=2"',
        'Could not connect to the endpoint URL: "http://127.0.0.1:9/b"',
    ),
    (
        "Client error '404 Not Found' for url 'https://x.io/a/b?sig=1&exp=2#part'",
        "Client error '404 Not Found' for url 'https://x.io/a/b'",
    ),
    ("(url=https://h/p?q=1)", "(url=https://h/p)"),
    ("GET https://h?x=1 failed", "GET https://h failed"),
    ("https://k:s@h/p and ftp://u@f/x", "https://h/p and ftp://f/x"),
]
#: Text that is not a URL secret is left exactly as it is.
UNCHANGED = [
    "why? because",
    "a?b=c",
    "Expected 'a/b?' got",
    "mail alice@example.com",
    "maximum recursion depth exceeded",
    "",
]


@pytest.mark.parametrize(("text", "expected"), MESSAGES)
def test_client_messages_lose_queries_and_credentials(text: str, expected: str) -> None:
    assert scrub_text(text) == expected


@pytest.mark.parametrize("text", UNCHANGED)
def test_other_text_is_left_alone(text: str) -> None:
    assert scrub_text(text) == text


def test_keep_query_keeps_queries_never_credentials() -> None:
    text = "at https://u:p@h/x?a=1 now"
    assert scrub_text(text, keep_query=True) == "at https://h/x?a=1 now"
    assert scrub_url("https://u:p@h/x?a=1#f", keep_query=True) == "https://h/x?a=1"
    assert scrub_url("https://u:p@h/x?a=1#f") == "https://h/x"


_word = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=1, max_size=12)
# Upper case only: never part of a generated host, path or key.
_secret = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=8, max_size=16)


@st.composite
def _urls(draw: st.DrawFn) -> tuple[str, str]:
    """A URL with a secret in its credentials and query, and the secret."""
    secret = draw(_secret)
    host = draw(_word)
    path = "/".join(draw(st.lists(_word, max_size=4)))
    user = f"{draw(_word)}:{secret}@" if draw(st.booleans()) else ""
    scheme = draw(st.sampled_from(["http", "https", "wss"]))
    absolute = draw(st.booleans()) or bool(user)
    prefix = f"{scheme}://{user}{host}" if absolute else ""
    return f"{prefix}/{path}?{draw(_word)}={secret}", secret


@settings(max_examples=300, deadline=None)
@given(
    before=st.text(max_size=40),
    url=_urls(),
    after=st.sampled_from(["", " ", ")", "'", '"', "]", " (Caused by X)", ".\n"]),
)
def test_no_secret_survives_in_any_surrounding_text(
    before: str, url: tuple[str, str], after: str
) -> None:
    link, secret = url
    assume(secret not in before)
    scrubbed = scrub_text(f"{before} {link}{after}")
    assert secret not in scrubbed
    assert scrub_text(scrubbed) == scrubbed  # idempotent


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_never_raises_and_is_idempotent(text: str) -> None:
    once = scrub_text(text)
    assert scrub_text(once) == once
    url = scrub_url(text)
    assert isinstance(url, str)


@settings(max_examples=200, deadline=None)
@given(url=_urls())
def test_a_recorded_url_keeps_scheme_host_and_path(url: tuple[str, str]) -> None:
    link, secret = url
    recorded = scrub_url(link)
    assert secret not in recorded
    parts = urlsplit(link)
    assert recorded.endswith(parts.path)
