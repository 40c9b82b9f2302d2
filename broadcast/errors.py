"""The one exception staff-facing edges catch from the notice services."""

from __future__ import annotations


class NoticeError(ValueError):
    """A notice cannot be created or changed as asked; the message is Japanese, for staff."""
