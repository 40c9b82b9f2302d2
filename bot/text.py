"""Text staff type or upload, in the one form it is stored in.

Browsers send a textarea's line breaks as CRLF (the HTML form rules), CSV files from Excel may hold
CRLF or CR inside quoted cells, and a single-line `<input>` drops line breaks altogether. Every place
that takes staff text (the admin forms, CSV imports, the CLI) passes it through these functions, so
an untouched form or a re-imported export compares equal to what is stored.
"""

from __future__ import annotations

import re

_LINE_BREAK = re.compile(r"\r\n?")


def multi_line(text: str | None) -> str:
    """Multi-line text with LF line breaks only (CRLF and lone CR become LF), trimmed."""
    return _LINE_BREAK.sub("\n", text or "").strip()


def single_line(text: str | None) -> str:
    """Text for a one-line field: its lines joined by one space, trimmed (what an `<input>` can hold)."""
    return " ".join(part.strip() for part in (text or "").splitlines() if part.strip())
