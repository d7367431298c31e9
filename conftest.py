"""Collect the code blocks of README.md and docs/ as tests (see tests/docs/examples.py)."""

from tests.docs.examples import sybil

pytest_collect_file = sybil().pytest()
