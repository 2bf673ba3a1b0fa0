"""UTC timestamps as Bastion stores them: one text format, so stored times sort as text.

    >>> from datetime import UTC, datetime
    >>> utc_stamp(datetime(2026, 12, 3, 9, 30, tzinfo=UTC))
    '2026-12-03T09:30:00.000000Z'
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

__all__ = ["STAMP_FORMAT", "utc_stamp"]

STAMP_FORMAT: Final = "%Y-%m-%dT%H:%M:%S.%fZ"


def utc_stamp(moment: datetime | None = None) -> str:
    """``moment`` (default now) in UTC as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``."""
    return (moment or datetime.now(UTC)).astimezone(UTC).strftime(STAMP_FORMAT)
