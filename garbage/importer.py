"""Imports: the sorting dictionary (自治体標準オープンデータセット「ごみ分別」) and a 5374 calendar folder.

Both read UTF-8 (with or without BOM) or Shift_JIS, check every row first and change nothing when
any is wrong: the errors come back as (file, line, Japanese message).
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import delete
from sqlalchemy.orm import Session

from bot import csvsafe
from bot.text import multi_line, single_line
from garbage.calendar import RuleError, parse_date, parse_rule
from garbage.models import SOURCE_5374, SOURCE_ITEMS, GarbageArea, GarbageBreak, GarbageItem, GarbageKind

MAX_ROWS = 50_000
MAX_CELL = 2000

# Header spellings seen in cities' files, compared without spaces, 「_」 or brackets (NFKC).
ITEM_HEADERS = {
    "name": ("品目名", "品目", "ごみの品目", "品名", "品目名称", "ごみの名前", "名称"),
    "kana": ("品目名カナ", "品目カナ", "ごみの品目カナ", "品目名ふりがな", "品目よみがな", "ふりがな", "フリガナ", "よみがな",
             "ヨミガナ", "読み", "カナ"),
    "category": ("分別区分", "分別", "区分", "分類", "ごみの種類", "種類", "出し方区分"),
    "notes": ("注意点", "注意事項", "出し方のポイント", "出し方", "ポイント"),
    "remarks": ("備考",),
    "id": ("ID", "id", "番号", "No", "NO", "no"),
}


@dataclass
class ImportFailed(Exception):
    """The import changed nothing; `errors` are (file name, line, Japanese message)."""

    errors: list[tuple[str, int, str]] = field(default_factory=list)

    def __str__(self) -> str:
        return "\n".join(f"{name}:{line}: {message}" for name, line, message in self.errors)


@dataclass(frozen=True)
class ItemsReport:
    """What an items import did."""

    rows: int
    categories: tuple[str, ...]
    extra_columns: tuple[str, ...]

    def summary(self) -> str:
        """「品目 50 件（分別区分 9 種類）」."""
        extra = f"、そのまま保存した列：{'、'.join(self.extra_columns)}" if self.extra_columns else ""
        return f"品目 {self.rows} 件（分別区分 {len(self.categories)} 種類{extra}）"


@dataclass(frozen=True)
class CalendarReport:
    """What a calendar import did."""

    areas: int
    kinds: tuple[str, ...]
    breaks: int
    items: int

    def summary(self) -> str:
        """「地区 3、ごみの種類 6（可燃ごみ、…）、休止期間 1、品目 3」."""
        return (f"地区 {self.areas}、ごみの種類 {len(self.kinds)}（{'、'.join(self.kinds)}）、休止期間 {self.breaks}、"
                f"品目（target.csv）{self.items}")


def decode_csv(raw: bytes, name: str) -> str:
    """The text of a CSV file in UTF-8 (BOM or not) or Shift_JIS (cp932, as Excel saves it)."""
    text = csvsafe.decode_csv(raw)
    if text is not None:
        return text
    raise ImportFailed([(name, 1, "文字コードを読み取れません。UTF-8 か Shift_JIS で保存してください。")])


def csv_rows(content: str, name: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) of every non-blank record, the header included."""
    reader = csv.reader(io.StringIO(content, newline=""), strict=True)
    line = 1
    try:
        for cells in reader:
            if any(c.strip() for c in cells):
                yield line, cells
            line = reader.line_num + 1
    except csv.Error as exc:
        raise ImportFailed([(name, line, f"CSVとして読み取れません（{exc}）。")]) from None


def _header_key(header: str) -> str:
    return re.sub(r"[\s_（）()\[\]【】]", "", unicodedata.normalize("NFKC", header))


def item_columns(header: list[str]) -> dict[str, int]:
    """Which column holds each field (name and category required); KeyError-free."""
    keys = [_header_key(h) for h in header]
    found: dict[str, int] = {}
    for field_name, spellings in ITEM_HEADERS.items():
        wanted = [_header_key(s) for s in spellings]
        for spelling in wanted:  # the first spelling listed wins (品目名 before 名称)
            if spelling in keys and keys.index(spelling) not in found.values():
                found[field_name] = keys.index(spelling)
                break
    return found


def parse_items(raw: bytes, name: str = "items.csv") -> tuple[list[dict[str, object]], tuple[str, ...]]:
    """The rows of a ごみ分別 file as item values, and the names of the extra columns kept."""
    rows = csv_rows(decode_csv(raw, name), name)
    first = next(rows, None)
    if first is None:
        raise ImportFailed([(name, 1, "ファイルが空です。")])
    header = [h.strip() for h in first[1]]
    columns = item_columns(header)
    missing = [label for key, label in (("name", "品目名（または品目）"), ("category", "分別区分")) if key not in columns]
    if missing:
        raise ImportFailed([(name, first[0], f"見出しに{'と'.join(missing)}の列がありません（自治体標準オープンデータセット「ごみ分別」の"
                                             "見出し：全国地方公共団体コード, ID, 地方公共団体名, 品目名, 品目名_カナ, 分別区分, 注意点, 備考）。")])
    extra = tuple(h for i, h in enumerate(header) if i not in columns.values() and h)
    errors: list[tuple[str, int, str]] = []
    items: list[dict[str, object]] = []
    seen_ids: dict[str, int] = {}
    for line, cells in rows:
        if len(items) + len(errors) >= MAX_ROWS:
            errors.append((name, line, f"{MAX_ROWS} 行を超えています。ファイルを分けてください。"))
            break
        cell = lambda key: cells[columns[key]].strip() if key in columns and columns[key] < len(cells) else ""  # noqa: E731
        problems = []
        if not cell("name"):
            problems.append("品目名が空です")
        if not cell("category"):
            problems.append("分別区分が空です")
        too_long = [header[i] for i, c in enumerate(cells) if len(c) > MAX_CELL and i < len(header)]
        if too_long:
            problems.append(f"{'、'.join(too_long)}が{MAX_CELL}文字を超えています")
        if len(single_line(cell("name"))) > 200 or len(single_line(cell("category"))) > 100:
            problems.append("品目名は200文字、分別区分は100文字までです")
        source_id = cell("id")
        if source_id and source_id in seen_ids:
            problems.append(f"ID「{source_id}」が{seen_ids[source_id]}行目と重なっています")
        if problems:
            errors.append((name, line, "、".join(problems)))
            continue
        if source_id:
            seen_ids[source_id] = line
        items.append({
            "source_id": source_id[:64], "name": single_line(cell("name")), "kana": single_line(cell("kana"))[:200],
            "category": single_line(cell("category")), "notes": multi_line(cell("notes")),
            "remarks": multi_line(cell("remarks")),
            "extra": {h: cells[i].strip() for i, h in enumerate(header) if h in extra and i < len(cells) and cells[i].strip()},
        })
    if errors:
        raise ImportFailed(errors)
    if not items:
        raise ImportFailed([(name, first[0] + 1, "品目の行がありません。")])
    return items, extra


def import_items(session: Session, municipality: str, raw: bytes, name: str = "items.csv") -> ItemsReport:
    """Replace the city's dictionary (the rows of earlier item imports) with the file's rows."""
    items, extra = parse_items(raw, name)
    session.execute(delete(GarbageItem).where(GarbageItem.municipality == municipality, GarbageItem.source == SOURCE_ITEMS))
    session.add_all(GarbageItem(municipality=municipality, source=SOURCE_ITEMS, **values) for values in items)
    session.flush()
    return ItemsReport(len(items), tuple(dict.fromkeys(str(i["category"]) for i in items)), extra)


# --- the 5374 calendar ------------------------------------------------------------------------------


def _read(folder: Path, name: str, required: bool) -> list[tuple[int, list[str]]] | None:
    path = folder / name
    if not path.is_file():
        if required:
            raise ImportFailed([(name, 0, f"{folder} に {name} がありません（5374 の data フォルダを指定してください）。")])
        return None
    return list(csv_rows(decode_csv(path.read_bytes(), name), name))


def _is_center_header(value: str) -> bool:
    key = _header_key(value).lower()
    return not key or "センター" in key or "center" in key or "空白" in key


def parse_area_days(rows: list[tuple[int, list[str]]], name: str = "area_days.csv"
                    ) -> tuple[list[str], list[dict[str, object]], list[tuple[str, int, str]]]:
    """(kinds, areas, errors) of area_days.csv: 地名, センター (optional), then one column per kind."""
    if not rows:
        return [], [], [(name, 1, "ファイルが空です。")]
    header_line, header = rows[0]
    header = [h.strip() for h in header]
    has_center = len(header) > 1 and _is_center_header(header[1])
    first_kind = 2 if has_center else 1
    kinds = header[first_kind:]
    errors: list[tuple[str, int, str]] = []
    if not kinds:
        errors.append((name, header_line, "見出しにごみの種類の列がありません（地名,センター,燃やすごみ,… の形式です）。"))
    if any(not k for k in kinds):
        errors.append((name, header_line, "見出しに名前のないごみの種類の列があります。"))
    if len(set(kinds)) != len(kinds):
        errors.append((name, header_line, "見出しに同じ名前のごみの種類が2つあります。"))
    areas: list[dict[str, object]] = []
    seen: dict[str, int] = {}
    for line, cells in rows[1:]:
        area = single_line(cells[0]) if cells else ""
        problems = []
        if not area:
            problems.append("地名が空です")
        elif area in seen:
            problems.append(f"地名「{area}」が{seen[area]}行目と重なっています")
        elif len(area) > 200:
            problems.append("地名は200文字までです")
        rules: dict[str, str] = {}
        for offset, kind in enumerate(kinds):
            index = first_kind + offset
            value = cells[index].strip() if index < len(cells) else ""
            try:
                parse_rule(value)
            except RuleError as exc:
                problems.append(f"「{kind}」の列：{exc}")
            rules[kind] = value
        if problems:
            errors.append((name, line, "、".join(problems)))
            continue
        seen[area] = line
        center = single_line(cells[1]) if has_center and len(cells) > 1 else ""
        areas.append({"name": area, "center": center[:100], "rules": rules})
    if not areas and not errors:
        errors.append((name, header_line + 1, "地区の行がありません。"))
    return kinds, areas, errors


def parse_center(rows: list[tuple[int, list[str]]], name: str = "center.csv"
                 ) -> tuple[list[dict[str, object]], list[tuple[str, int, str]]]:
    """(breaks, errors) of center.csv: 名称, 休止開始日, 休止終了日 (or name, startdate, enddate)."""
    breaks: list[dict[str, object]] = []
    errors: list[tuple[str, int, str]] = []
    body = rows[1:] if rows and not re.match(r"^\d", unicodedata.normalize("NFKC", (rows[0][1] + ["", ""])[1]).strip()) else rows
    for line, cells in body:
        cells = [*cells, "", "", ""]
        try:
            start, end = parse_date(cells[1]), parse_date(cells[2])
        except RuleError as exc:
            errors.append((name, line, str(exc)))
            continue
        if end < start:
            errors.append((name, line, "休止終了日が休止開始日より前です"))
            continue
        breaks.append({"center": single_line(cells[0])[:100], "start_date": start, "end_date": end})
    return breaks, errors


def parse_description(rows: list[tuple[int, list[str]]]) -> dict[str, tuple[str, str]]:
    """label -> (sublabel, description) of description.csv (styles and bgcolor are for 5374's web page)."""
    found = {}
    for _line, cells in rows[1:]:
        cells = [*cells, "", "", ""]
        if cells[0].strip():
            found[single_line(cells[0])] = (single_line(cells[1])[:200], multi_line(cells[2]))
    return found


def parse_target(rows: list[tuple[int, list[str]]], name: str = "target.csv"
                 ) -> tuple[list[dict[str, object]], list[tuple[str, int, str]]]:
    """(items, errors) of target.csv: type, name, notice, furigana (the furigana of 5374 is the
    index letter of its list, 「あ」, not a reading: kept only when longer)."""
    items: list[dict[str, object]] = []
    errors: list[tuple[str, int, str]] = []
    for line, cells in rows[1:]:
        cells = [*cells, "", "", "", ""]
        kind, item, notice, furigana = (single_line(c) for c in cells[:4])
        if not kind or not item:
            errors.append((name, line, "type（ごみの種類）と name（品目）が必要です"))
            continue
        items.append({"source_id": "", "name": item[:200], "kana": furigana[:200] if len(furigana) > 1 else "",
                      "category": kind[:100], "notes": multi_line(cells[2]), "remarks": "", "extra": {}})
    return items, errors


def import_calendar(session: Session, municipality: str, folder: Path) -> CalendarReport:
    """Replace the city's calendar (and target.csv's items) with the folder's files, all or nothing."""
    area_rows = _read(folder, "area_days.csv", required=True)
    assert area_rows is not None
    kinds, areas, errors = parse_area_days(area_rows)
    center_rows = _read(folder, "center.csv", required=False)
    breaks, more = parse_center(center_rows) if center_rows else ([], [])
    errors += more
    description_rows = _read(folder, "description.csv", required=False)
    described = parse_description(description_rows) if description_rows else {}
    target_rows = _read(folder, "target.csv", required=False)
    items, more = parse_target(target_rows) if target_rows else ([], [])
    errors += more
    if errors:
        raise ImportFailed(errors)
    for model in (GarbageArea, GarbageKind, GarbageBreak):
        session.execute(delete(model).where(model.municipality == municipality))
    session.execute(delete(GarbageItem).where(GarbageItem.municipality == municipality, GarbageItem.source == SOURCE_5374))
    for position, kind in enumerate(kinds):
        sublabel, description = described.get(kind, ("", ""))
        session.add(GarbageKind(municipality=municipality, position=position, label=kind[:100], sublabel=sublabel,
                                description=description))
    for position, area in enumerate(areas):
        session.add(GarbageArea(municipality=municipality, position=position, **area))
    session.add_all(GarbageBreak(municipality=municipality, **row) for row in breaks)
    session.add_all(GarbageItem(municipality=municipality, source=SOURCE_5374, **values) for values in items)
    session.flush()
    return CalendarReport(len(areas), tuple(kinds), len(breaks), len(items))
