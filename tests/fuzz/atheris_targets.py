"""Coverage-guided fuzz targets (atheris/libFuzzer) for the parsers of untrusted input.

Run one directly: ``python tests/fuzz/atheris_targets.py header -runs=100000``.
A target fails (non-zero exit, with the crashing input) on any exception or on a
broken invariant.
"""

from __future__ import annotations

import json
import sys

import atheris

with atheris.instrument_imports():
    from tracing import sqs
    from tracing._header import MAX_HEADER_LENGTH, parse
    from tracing.local.collector.daemon import parse_datagram
    from tracing.local.collector.traces import assemble


def header(data: bytes) -> None:
    text = atheris.FuzzedDataProvider(data).ConsumeUnicodeNoSurrogates(1024)
    result = parse(text)
    if result is not None:
        assert parse(result.to_string()) == result
        assert len(result.to_string()) <= MAX_HEADER_LENGTH


def record(data: bytes) -> None:
    provider = atheris.FuzzedDataProvider(data)
    value = provider.ConsumeUnicodeNoSurrogates(300)
    body = provider.ConsumeUnicodeNoSurrogates(300)
    message = {"messageId": "m", "body": body, "attributes": {"AWSTraceHeader": value}}
    found, _ = sqs.extract(message)
    if found is not None:
        assert found.root.startswith("1-")
        assert len(found.root) == 35


def datagram(data: bytes) -> None:
    parsed = parse_datagram(data)
    if parsed is not None:
        document, _raw = parsed
        assert isinstance(document["trace_id"], str)
        assert isinstance(document["id"], str)


def documents(data: bytes) -> None:
    try:
        value = json.loads(data.decode("utf-8", "replace"))
    except ValueError:
        return
    docs = value if isinstance(value, list) else [value]
    assemble(docs)


TARGETS = {"header": header, "record": record, "datagram": datagram, "documents": documents}

if __name__ == "__main__":
    target = TARGETS[sys.argv.pop(1)]
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()
