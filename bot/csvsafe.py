"""CSV files the product writes, safe to open in a spreadsheet (no CSV/formula injection), and the
encodings of the CSV files cities import.

A cell that starts with = + - @ (or their full-width forms, which Japanese Excel also reads as a
formula), a tab or a carriage return — after any leading spaces — is written with a `'` in front,
as OWASP's "CSV Injection" page recommends; plain numbers such as -2 or +3.5 stay numbers. Every
CSV writer of the product goes through `writer()` (tests/test_csv_safety.py checks that none calls
csv.writer directly).

The escape is reversible: `unescape_cell` gives back exactly the text that was escaped, so an import
can read the product's own export (a text that itself starts with `'` before such a sign gets a
second `'`, which is why escaping is done once, by the writer, never by the caller as well).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from typing import IO, Any

FORMULA_SIGNS = ("=", "+", "-", "@", "＝", "＋", "－", "＠")
CONTROL_STARTS = ("\t", "\r")
QUOTE = "'"
_NUMBER = re.compile(r"[+-]?(?:\d[\d,]*(?:\.\d+)?|\.\d+)")


def needs_escape(text: str) -> bool:
    """Whether a spreadsheet could take the cell for a formula (or it begins like an escaped one)."""
    if text.startswith(CONTROL_STARTS):
        return True
    if text.startswith(QUOTE):
        return needs_escape(text[1:])
    stripped = text.lstrip()
    return stripped.startswith(FORMULA_SIGNS) and not _NUMBER.fullmatch(stripped)


def escape_cell(value: Any) -> Any:
    """A text cell with `'` in front when it would start a formula; anything else as it is."""
    if isinstance(value, str) and needs_escape(value):
        return QUOTE + value
    return value


def unescape_cell(text: str) -> str:
    """The text escape_cell was given (for imports of the product's own CSV)."""
    if text.startswith(QUOTE) and needs_escape(text[1:]):
        return text[1:]
    return text


class SafeWriter:
    """csv.writer whose text cells are escaped (escape_cell)."""

    def __init__(self, out: IO[str], **kwargs: Any) -> None:
        self._writer = csv.writer(out, **kwargs)

    def writerow(self, row: Iterable[Any]) -> Any:
        """Write one row."""
        return self._writer.writerow([escape_cell(cell) for cell in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        """Write several rows."""
        for row in rows:
            self.writerow(row)


def writer(out: IO[str], **kwargs: Any) -> SafeWriter:
    """The CSV writer every export of the product uses (same arguments as csv.writer)."""
    return SafeWriter(out, **kwargs)


CSV_ENCODINGS = ("utf-8-sig", "cp932")  # UTF-8 (BOM or not), else Shift_JIS as Excel saves it


def decode_csv(raw: bytes) -> str | None:
    """The text of a CSV file the city imports in UTF-8 or Shift_JIS; None when it is neither."""
    for encoding in CSV_ENCODINGS:
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return None
