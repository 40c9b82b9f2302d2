"""Masking personal data in questions before they are stored for staff."""

from __future__ import annotations

import re
import unicodedata

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# Phone numbers written with separators (090-1234-5678, 0287(23)1234, +81 90 1234 5678).
_PHONE = re.compile(r"(?:\+?\d{1,4}[\s\-‐－ー()（）]*)?\d{2,5}[\s\-‐－ー()（）]+\d{1,4}[\s\-‐－ー()（）]+\d{3,4}")
_DIGITS = re.compile(r"\d{4,}")
MASK_EMAIL = "［メール］"
MASK_PHONE = "［電話番号］"


def mask_personal_data(text: str) -> str:
    """Replace e-mail addresses, phone numbers and runs of 4+ digits (after NFKC) with marks."""
    text = unicodedata.normalize("NFKC", text)
    text = _EMAIL.sub(MASK_EMAIL, text)
    text = _PHONE.sub(MASK_PHONE, text)
    return _DIGITS.sub(lambda m: "＊" * len(m.group()), text)
