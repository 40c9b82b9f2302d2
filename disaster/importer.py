"""Importing the city's shelters from the national open-data CSV layouts, all or nothing.

Three layouts, told apart by their header:

- 国土地理院 指定緊急避難場所データ: 共通ID, 施設・場所名, 住所, one column per hazard (洪水, 崖崩れ、土石流及び
  地滑り, 高潮, 地震, 津波, 大規模な火事, 内水氾濫, 火山現象), 指定避難所との住所同一, 緯度, 経度 …
- 自治体標準オープンデータセット 指定緊急避難場所一覧: 全国地方公共団体コード, ID, 地方公共団体名, 名称, 名称_カナ,
  住所, 緯度, 経度, 高度, 災害種別_洪水 … 災害種別_火山現象, 指定避難所との重複, 電話番号, 備考 …
- 自治体標準オープンデータセット 指定避難所一覧: … ID, 名称, 住所, 緯度, 経度, 想定収容人数, 対象となる町会・自治会,
  災害種別_… (when the city gives them) …

UTF-8 (with or without BOM) or Shift_JIS as Excel writes it. Every row is checked before anything
is written (errors by line, like `flask faq import`); one error and nothing changes. A file replaces
the shelters of its kind: rows are matched by their ID (kept open if they were open), rows no longer
in the file are removed.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import csvsafe
from bot.db import utcnow
from disaster.hazards import HAZARDS
from disaster.models import EMERGENCY_SITE, KIND_LABELS, SHELTER, Shelter

MAX_ROWS = 50_000
MAX_ERRORS = 100
# Japan's extent with a margin (南鳥島 153.98°E, 沖ノ鳥島 20.4°N, 択捉島 45.6°N, 与那国島 122.9°E).
LAT_RANGE = (20.0, 46.0)
LON_RANGE = (122.0, 154.0)
YES = {"1", "○", "〇", "◯"}
NO = {"", "0"}

GSI, STANDARD_SITES, STANDARD_SHELTERS = "gsi", "standard_sites", "standard_shelters"
LAYOUT_LABELS = {
    GSI: "国土地理院 指定緊急避難場所データ",
    STANDARD_SITES: "自治体標準オープンデータセット 指定緊急避難場所一覧",
    STANDARD_SHELTERS: "自治体標準オープンデータセット 指定避難所一覧",
}


class ShelterImportError(ValueError):
    """The file cannot be imported; `errors` are (line, Japanese message)."""

    def __init__(self, errors: list[tuple[int, str]]) -> None:
        super().__init__(errors[0][1] if errors else "")
        self.errors = errors


@dataclass(frozen=True)
class Layout:
    """Where a detected layout keeps each field (column indexes; None when absent)."""

    name: str
    kind: str
    id: int
    title: int
    address: int
    latitude: int
    longitude: int
    hazards: dict[str, int] | None
    capacity: int | None
    phone: int | None


@dataclass(frozen=True)
class ShelterRow:
    """One checked row."""

    line: int
    source_id: str
    name: str
    address: str
    latitude: float
    longitude: float
    hazards: tuple[str, ...] | None
    capacity: int | None
    phone: str


@dataclass(frozen=True)
class ImportReport:
    """What an import did."""

    layout: str
    kind: str
    added: int
    updated: int
    removed: int

    def summary(self) -> str:
        """「国土地理院 指定緊急避難場所データ（指定緊急避難場所）: 追加 3 件、更新 0 件、削除 0 件」."""
        return (f"{LAYOUT_LABELS[self.layout]}（{KIND_LABELS[self.kind]}）: 追加 {self.added} 件、"
                f"更新 {self.updated} 件、削除 {self.removed} 件")


def decode(raw: bytes) -> str:
    """The file's text: UTF-8 (BOM or not), else Shift_JIS (cp932, as Excel writes it)."""
    text = csvsafe.decode_csv(raw)
    if text is None:
        raise ShelterImportError([(1, "文字コードを読み取れません。UTF-8 か Shift_JIS で保存してください。")])
    return text


def _norm(header: str) -> str:
    return unicodedata.normalize("NFKC", header).strip().replace(" ", "").replace("\u3000", "")


def _hazard_columns(headers: list[str], prefix: str) -> dict[str, int]:
    """hazard code -> column, for columns named as the layouts name them (「崖崩れ…」 also when worded a
    little differently, 「火山」 for 火山現象)."""
    found: dict[str, int] = {}
    for index, header in enumerate(headers):
        if not header.startswith(prefix):
            continue
        word = header[len(prefix):]
        for code, (_label, column) in HAZARDS.items():
            if word == _norm(column) or (code == "landslide" and word.startswith("崖崩れ")) or (code == "volcano" and word == "火山"):
                found.setdefault(code, index)
    return found


def detect_layout(header_row: list[str]) -> Layout:
    """The layout of a header row; ShelterImportError (line 1) naming what is missing."""
    headers = [_norm(h) for h in header_row]
    where = {h: i for i, h in reversed(list(enumerate(headers)))}

    def need(names: tuple[str, ...], layout: str) -> None:
        missing = [n for n in names if n not in where]
        if missing:
            raise ShelterImportError([(1, f"{LAYOUT_LABELS[layout]}の列がありません: {'、'.join(missing)}")])

    if "共通ID" in where or "施設・場所名" in where:
        need(("共通ID", "施設・場所名", "住所", "緯度", "経度"), GSI)
        hazards = _hazard_columns(headers, "")
        missing = [HAZARDS[c][1] for c in HAZARDS if c not in hazards]
        if missing:
            raise ShelterImportError([(1, f"{LAYOUT_LABELS[GSI]}の列がありません: {'、'.join(missing)}")])
        return Layout(GSI, EMERGENCY_SITE, where["共通ID"], where["施設・場所名"], where["住所"], where["緯度"],
                      where["経度"], hazards, None, None)
    if "名称" in where and "ID" in where:
        hazards = _hazard_columns(headers, "災害種別_")
        if "指定避難所との重複" in where:
            layout = STANDARD_SITES
        elif "想定収容人数" in where or "対象となる町会・自治会" in where:
            layout = STANDARD_SHELTERS
        elif hazards:
            layout = STANDARD_SITES
        else:
            raise ShelterImportError([(1, "指定緊急避難場所一覧か指定避難所一覧か判別できません"
                                          "（「指定避難所との重複」「想定収容人数」「災害種別_…」のどれかの列が必要です）。")])
        need(("ID", "名称", "住所", "緯度", "経度"), layout)
        if layout == STANDARD_SITES or hazards:
            missing = [f"災害種別_{HAZARDS[c][1]}" for c in HAZARDS if c not in hazards]
            if missing:
                raise ShelterImportError([(1, f"{LAYOUT_LABELS[layout]}の列がありません: {'、'.join(missing)}")])
        return Layout(layout, EMERGENCY_SITE if layout == STANDARD_SITES else SHELTER, where["ID"], where["名称"],
                      where["住所"], where["緯度"], where["経度"], hazards or None, where.get("想定収容人数"), where.get("電話番号"))
    raise ShelterImportError([(1, "避難所のファイルの形式ではありません。国土地理院の指定緊急避難場所データ（共通ID、施設・場所名…）か、"
                                  "自治体標準オープンデータセットの指定緊急避難場所一覧・指定避難所一覧（ID、名称…）の見出しが必要です。")])


def _records(text: str) -> Iterator[tuple[int, list[str]]]:
    """(line where the record starts, fields) for every record after the header."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    start = 1
    try:
        for fields in reader:
            yield start, fields
            start = reader.line_num + 1
    except csv.Error as exc:
        raise ShelterImportError([(start, f"CSVとして読み取れません（{exc}）。")]) from None


def _coordinate(value: str, what: str, bounds: tuple[float, float]) -> tuple[float | None, str | None]:
    try:
        number = float(unicodedata.normalize("NFKC", value).strip())
    except ValueError:
        return None, f"{what}「{value}」が数値ではありません"
    if not bounds[0] <= number <= bounds[1]:
        return None, f"{what} {number} が日本の範囲（{bounds[0]:g}〜{bounds[1]:g}）にありません"
    return number, None


def check_row(layout: Layout, line: int, fields: list[str]) -> tuple[ShelterRow | None, list[str]]:
    """A row checked against its layout: the row, or the Japanese reasons it is wrong."""
    def cell(index: int | None) -> str:
        return fields[index].strip() if index is not None and index < len(fields) else ""

    problems: list[str] = []
    source_id, name, address = cell(layout.id), cell(layout.title), cell(layout.address)
    id_label = "共通ID" if layout.name == GSI else "ID"
    name_label = "施設・場所名" if layout.name == GSI else "名称"
    for value, label, limit in ((source_id, id_label, 64), (name, name_label, 200), (address, "住所", 300)):
        if not value:
            problems.append(f"{label}が空です")
        elif len(value) > limit:
            problems.append(f"{label}が長すぎます（{limit}文字まで）")
    latitude, error = _coordinate(cell(layout.latitude), "緯度", LAT_RANGE)
    problems += [error] if error else []
    longitude, error = _coordinate(cell(layout.longitude), "経度", LON_RANGE)
    problems += [error] if error else []
    hazards: list[str] | None = None
    if layout.hazards is not None:
        hazards = []
        for code, index in layout.hazards.items():
            value = unicodedata.normalize("NFKC", cell(index)).strip()
            if cell(index) in YES or value in YES:
                hazards.append(code)
            elif value not in NO:
                problems.append(f"{HAZARDS[code][1]}の値「{cell(index)}」は 1・○・空欄 のどれかにしてください")
    capacity: int | None = None
    raw_capacity = unicodedata.normalize("NFKC", cell(layout.capacity)).replace(",", "").strip()
    if raw_capacity:
        if raw_capacity.isdigit():
            capacity = int(raw_capacity)
        else:
            problems.append(f"想定収容人数「{cell(layout.capacity)}」が整数ではありません")
    if problems or latitude is None or longitude is None:
        return None, problems
    ordered = tuple(c for c in HAZARDS if c in (hazards or ()))
    return ShelterRow(line, source_id, name, address, latitude, longitude,
                      ordered if hazards is not None else None, capacity, cell(layout.phone)[:40]), []


def parse(raw: bytes) -> tuple[Layout, list[ShelterRow]]:
    """Decode, detect the layout and check every row; ShelterImportError with every error by line."""
    records = _records(decode(raw))
    first = next(records, None)
    if first is None:
        raise ShelterImportError([(1, "ファイルが空です。")])
    layout = detect_layout(first[1])
    rows: list[ShelterRow] = []
    errors: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    for line, fields in records:
        if not any(f.strip() for f in fields):
            continue  # a blank line (Excel leaves them at the end)
        if len(rows) + len(errors) >= MAX_ROWS:
            errors.append((line, f"行が多すぎます（{MAX_ROWS:,} 行まで）。"))
            break
        row, problems = check_row(layout, line, fields)
        if row is not None and row.source_id in seen:
            problems = [f"ID「{row.source_id}」が {seen[row.source_id]} 行目と重複しています"]
            row = None
        if row is None:
            errors.append((line, "、".join(problems) + "。"))
            if len(errors) >= MAX_ERRORS:
                break
            continue
        seen[row.source_id] = line
        rows.append(row)
    if errors:
        raise ShelterImportError(errors)
    if not rows:
        raise ShelterImportError([(1, "避難所の行がありません。")])
    return layout, rows


def import_shelters(session: Session, municipality: str, raw: bytes) -> ImportReport:
    """Check the whole file, then replace the city's shelters of its kind (flushed, not committed)."""
    layout, rows = parse(raw)
    existing = {s.source_id: s for s in session.scalars(
        select(Shelter).where(Shelter.municipality == municipality, Shelter.kind == layout.kind))}
    now = utcnow()
    added = updated = 0
    for row in rows:
        values = {"name": row.name, "address": row.address, "latitude": row.latitude, "longitude": row.longitude,
                  "hazards": list(row.hazards) if row.hazards is not None else None, "capacity": row.capacity,
                  "phone": row.phone}
        shelter = existing.pop(row.source_id, None)
        if shelter is None:
            session.add(Shelter(municipality=municipality, kind=layout.kind, source_id=row.source_id,
                                imported_at=now, updated_at=now, **values))
            added += 1
            continue
        changed = any(getattr(shelter, key) != value for key, value in values.items())
        for key, value in values.items():
            setattr(shelter, key, value)
        shelter.imported_at = now
        updated += 1 if changed else 0
        if changed:
            shelter.updated_at = now
    for gone in existing.values():
        session.delete(gone)
    session.flush()
    return ImportReport(layout.name, layout.kind, added, updated, len(existing))
