"""The sampling-rules file shown in docs/configuration.md, as a user would use it.

Sybil runs python and sh blocks only: this reads the page's ``json`` block and
puts it through the same parser and matching as ``configure(sampling_rules=...)``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from tracing._sampling import Sampler

PAGE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def _rules_block() -> object:
    blocks = re.findall(r"```json\n(.*?)```", PAGE.read_text(encoding="utf-8"), flags=re.S)
    [block] = [b for b in blocks if '"rules"' in b]
    return json.loads("\n".join(line.strip() for line in block.splitlines()))


def test_the_pages_rules_file_is_valid_and_picks_as_the_page_says() -> None:
    sampler = Sampler.from_document(_rules_block())
    assert len(sampler.rules) == 2
    api = sampler.match("orders-api", "api.example.com", "POST", "/orders/42")
    worker = sampler.match("orders-worker")
    other = sampler.match("billing", "api.example.com", "GET", "/orders/42")
    assert (api.name, api.reservoir.quota, api.rate) == ("orders API", 1, 0.5)
    assert (worker.name, worker.reservoir.quota, worker.rate) == ("workers", 0, 0.1)
    assert other is sampler.default
    assert (other.reservoir.quota, other.rate) == (1, 0.05)
