"""Example functions and the local demo (``make demo``)."""
