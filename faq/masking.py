"""Masking personal data in questions before they are stored for staff."""

from __future__ import annotations

import re
import unicodedata

MASK_EMAIL = "［メール］"
MASK_PHONE = "［電話番号］"
MASK_NUMBER = "［番号］"  # 12 digits: マイナンバー (個人番号) and the like
MASK_POSTAL = "［郵便番号］"
MASK_ADDRESS = "［番地］"
MASK_DIGIT = "＊"  # any other run of 4+ digits, digit by digit

# After NFKC (full-width letters, digits, ＠, －, （）, ．, ／ and spaces are ASCII by then).
# The local part is ASCII only, so 「メールはtaro@…」 keeps its Japanese; the domain may be a bare
# host (taro@localhost) but has a letter (10@100 is a price, not an address).
_EMAIL = re.compile(r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]+\s?(?:@|\(at\)|\[at\])\s?(?=[A-Za-z0-9.\-]*[A-Za-z])[A-Za-z0-9\-]+(?:\s?\.\s?[A-Za-z0-9\-]+)*"
                    r"|@(?=[A-Za-z0-9.\-]*[A-Za-z])[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+", re.IGNORECASE)
# Digits as residents type them: ASCII (full-width is ASCII after NFKC) and kanji numerals
# (〇九〇一二三四五六七八; ○ is often typed for 〇).
_KANJI_DIGITS = str.maketrans("〇○一二三四五六七八九", "00123456789")
_DIGIT = "0-9〇○一二三四五六七八九"
# Between the parts of one number: spaces, hyphens and their look-alikes (‐ ‑ ‒ – — ― − ー), brackets,
# dots, slashes, ・ — up to three of them (「03 (1234) 5678」, 「090 - 1234 - 5678」).
_SEP = r"\s\-‐‑‒–—―−ー()\[\].・/"
_GROUP = re.compile(rf"(?P<lead>\+\s*|\(\s*)?[{_DIGIT}]+(?:[{_SEP}]{{1,3}}[{_DIGIT}]+)*")
_CHUNK = re.compile(rf"[{_DIGIT}]+")
_HYPHEN = re.compile(r"[\-‐‑‒–—―−ー]")
# A number followed by one of these is a quantity (300円, 1500人, 2026年, 3000件), not an identifier.
_UNIT = re.compile(
    r"\s?(?:円|万|千|億|人|名|件|個|枚|回|歳|才|年|か月|ヶ月|ヵ月|カ月|箇月|月|日|週|時|分|秒|倍|%|割|部|冊|本|台"
    r"|世帯|戸|軒|点|位|階|匹|頭|羽|通|票|文字|字|行|ページ|頁|種類|校|社|店|度|℃|歩|キロ|メートル|グラム"
    r"|(?:mm|cm|km|m|kg|mg|g|ml|l|cc|kb|mb|gb|kw|kwh|w)(?![a-z]))", re.IGNORECASE)
# …and so is one before a range to such a number (1000〜2000円, 2025〜2026年).
_RANGE_TO_UNIT = re.compile(rf"\s?[〜~]\s?[\d,.]+{_UNIT.pattern}", re.IGNORECASE)
_CURRENCY = ("¥", "$", "€")
_SHORT_DIAL = "#"  # #8000 (子ども医療電話相談), #7119: public numbers, not a resident's
_HOUSE_NUMBER = re.compile(r"番地|丁目|番\d|号室")
# House numbers after a place name: 1丁目2番3号 keeps 「1丁目」, 85番地の1, 田野倉85-1, 2-3-4, 405号室.
_PLACE_CHAR = r"[一-龥ぁ-んァ-ヶ々]"
_NOT_PLACE = "第前後約毎各計全曜日月年週時分秒回"
_ADDRESS = re.compile(
    r"(?<!\d)(?:\d+番地(?:の?\d+(?:[-‐−ー]\d+)*号?)?"
    r"|\d+番\d+号(?:室)?"
    r"|(?<=丁目)\s?\d+(?:[-‐−ー]\d+)*号?"
    rf"|(?<={_PLACE_CHAR})(?<![{_NOT_PLACE}])\d+(?:[-‐−ー]\d+){{1,3}}(?:号室|号)?(?![\d\-‐−ー])(?!{_UNIT.pattern})"
    r"|\d+号室)", re.IGNORECASE)


def _is_date(chunks: list[str], seps: list[str]) -> bool:
    """2026/12/4, 2026-12-04, 2026.12.4, 2026/12 — a year of this era and a real month (and day)."""
    if len(chunks) not in (2, 3) or len(chunks[0]) != 4 or any(s.strip() not in ("/", "-", ".") for s in seps):
        return False
    year, month, day = int(chunks[0]), int(chunks[1]), int(chunks[2]) if len(chunks) == 3 else 1
    return 1900 <= year <= 2100 and 1 <= month <= 12 and 1 <= day <= 31 and all(len(c) <= 2 for c in chunks[1:])


def _identifier(digits: str, chunks: list[str], seps: list[str], lead: str, before: str) -> str | None:
    """The mark for a number that identifies a person (phone, 12-digit number, postal code), or None."""
    if lead.startswith("+") and 8 <= len(digits) <= 15:  # +81 90 1234 5678, +81(0)3-…, other countries
        return MASK_PHONE
    if digits.startswith("0") and len(digits) in (10, 11):
        return MASK_PHONE
    if len(digits) == 12:
        return MASK_NUMBER
    if before.rstrip().endswith("〒") and len(digits) == 7:
        return MASK_POSTAL
    if [len(c) for c in chunks] == [3, 4] and _HYPHEN.fullmatch(seps[0].strip() or " "):
        return MASK_POSTAL
    return None


def _mask_number(match: re.Match[str]) -> str:
    text, start, end = match.string, match.start(), match.end()
    lead = match.group("lead") or ""
    body_start = start + len(lead)
    spans = [m.span() for m in _CHUNK.finditer(text, body_start, end)]
    chunks = [text[a:b].translate(_KANJI_DIGITS) for a, b in spans]
    seps = [text[spans[i][1] : spans[i + 1][0]] for i in range(len(spans) - 1)]
    mark = _identifier("".join(chunks), chunks, seps, lead, text[:start])
    if mark is not None:
        # 「(0287)23-1234」 loses its bracket with the number; 「（090-1234-5678）」 keeps the opening one.
        inside = lead + "".join(seps)
        return (lead if inside.count("(") > inside.count(")") else "") + mark
    # Not one identifier: numbers only spaces apart (「2026/12/4 9:00」, 「1234 5678」) are judged one by one.
    out, first = [lead], 0
    for i in range(1, len(spans) + 1):
        if i == len(spans) or not seps[i - 1].strip():
            out.append(_mask_part(text, spans[first][0], spans[i - 1][1], chunks[first:i], seps[first : i - 1],
                                  is_last=i == len(spans)))
            if i < len(spans):
                out.append(seps[i - 1])
                first = i
    return "".join(out)


def _mask_part(text: str, start: int, end: int, chunks: list[str], seps: list[str], is_last: bool) -> str:
    part = text[start:end]
    digits = "".join(chunks)
    mark = _identifier(digits, chunks, seps, "", text[:start])
    if mark is not None:
        return mark
    if _is_date(chunks, seps):
        return part
    if is_last and _HOUSE_NUMBER.match(text, end):
        return part  # 3222番地3, 1丁目: the address pass masks the house number
    if (is_last and (_UNIT.match(text, end) or _RANGE_TO_UNIT.match(text, end))) or text[:start].rstrip().endswith(_CURRENCY):
        return part  # a quantity: 300円, 1500人, 2026年, ¥5000
    if text[:start].endswith(_SHORT_DIAL) and len(digits) == 4:
        return part
    if not any("0" <= ch <= "9" for ch in part):
        return part  # kanji numerals alone: only phone/12-digit/postal shapes are masked (七五三, 二〇二六年)
    if max(len(c) for c in chunks) >= 4 or (len(chunks) > 1 and len(digits) >= 7):
        return _CHUNK.sub(lambda m: MASK_DIGIT * len(m.group()), part)
    return part


def mask_personal_data(text: str) -> str:
    """Text with personal data replaced by marks (after NFKC): e-mail addresses, phone numbers in any
    common writing (separators, full-width or kanji digits, spaced digits, +81), 12-digit numbers,
    postal codes, house numbers, and other runs of 4+ digits. Dates, times, amounts, counts and
    short numbers stay. The corpus it is built from: tests/data/masking-corpus.tsv."""
    text = unicodedata.normalize("NFKC", text)
    text = _EMAIL.sub(MASK_EMAIL, text)
    text = _GROUP.sub(_mask_number, text)
    return _ADDRESS.sub(MASK_ADDRESS, text)
