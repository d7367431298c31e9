"""Performance benchmarks against the anchors of DESIGN.md ("Performance targets").

Run the whole suite with ``make bench`` (``python -m benchmarks.run``). Each
``bench_*.py`` module exposes ``run() -> list[dict]``; see ``_harness.py`` for the
row format and the helpers (UDP listener, Lambda-like environment, child runner).
"""
