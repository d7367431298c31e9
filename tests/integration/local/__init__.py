"""Integration tests of the local collector and its SQLite store, over real UDP."""
