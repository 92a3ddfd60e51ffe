"""Reading values out of a page's query string, where anything may arrive."""

from __future__ import annotations

BIGINT_MAX = 2**63 - 1


def query_id(raw: object) -> int | None:
    """``raw`` as a database id (ASCII digits, at most a bigint), else None. ``str.isdigit``
    alone is not enough: it accepts "²" and other digits ``int`` refuses."""
    if not isinstance(raw, str) or not raw.isascii() or not raw.isdigit():
        return None
    value = int(raw)
    return value if value <= BIGINT_MAX else None
