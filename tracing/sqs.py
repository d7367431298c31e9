"""SQS trace propagation (producer inject, consumer, batch processing).

Arrives with the SQS issue; this module exists so the public name resolves.
"""

from __future__ import annotations

__all__: list[str] = []
