"""Personal data is masked before a question is stored for staff (issue 14, item 6).

The cases are tests/data/masking-corpus.tsv (written by tests/data/make_masking_corpus.py):
phone numbers in every common writing, e-mail addresses of any domain, マイナンバー, postal codes
with addresses — and dates, times, fees, counts, 第2水曜日 and short numbers that must stay.
"""

from __future__ import annotations

import ast
import csv
import re
import subprocess
import sys
import time
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.db import get_db
from faq.masking import mask_personal_data
from faq.models import QuestionLog
from faq.store import load_repo_kb
from tests.conftest import Chat, wait_until
from tests.data import make_masking_corpus

ROOT = Path(__file__).resolve().parent.parent
CORPUS = make_masking_corpus.PATH


def corpus() -> list[dict[str, str]]:
    with CORPUS.open(encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


ROWS = corpus()


def test_the_corpus_on_disk_is_the_generated_one() -> None:
    done = subprocess.run([sys.executable, str(CORPUS.parent / "make_masking_corpus.py"), "--check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def test_the_corpus_covers_what_must_be_masked_and_what_must_stay() -> None:
    kinds = {r["kind"] for r in ROWS}
    assert {"phone", "email", "mynumber", "postal", "postal-address", "address", "mixed"} <= kinds
    assert {"keep-date", "keep-time", "keep-fee", "keep-count", "keep-ordinal", "keep-short"} <= kinds
    texts = {r["text"] for r in ROWS}
    for required in ("090-12-34-56-78", "〇九〇一二三四五六七八", "0 9 0 1 2 3 4 5 6 7 8", "taro@localhost",
                     "ｔａｒｏ＠ｅｘａｍｐｌｅ．ｃｏｍ", "+81 90 1234 5678", "123456789012", "〒321-0621", "123-4567",
                     "2026年12月4日", "300円", "第2水曜日"):
        assert any(required in t for t in texts), required
    for sep in ("-", "ー", "‐", "−", " ", "（", "０"):
        assert any(r["kind"] == "phone" and sep in r["text"] for r in ROWS), sep


@pytest.mark.parametrize("row", ROWS, ids=[f"{r['kind']}-{i}" for i, r in enumerate(ROWS)])
def test_masking_on_the_corpus(row: dict[str, str]) -> None:
    masked = mask_personal_data(row["text"])
    assert masked == row["expected"]
    # Masking what is stored finds nothing more (NFKC only turns the marks' ［］ into []).
    assert mask_personal_data(masked) == unicodedata.normalize("NFKC", masked)


def test_no_digits_of_a_phone_or_number_are_left() -> None:
    for row in ROWS:
        if row["kind"] in ("phone", "mynumber"):
            assert not re.search(r"[0-9〇○一二三四五六七八九]{2}", mask_personal_data(row["text"])), row["text"]


def test_what_must_stay_is_only_normalised() -> None:
    for row in ROWS:
        if row["kind"].startswith("keep-"):
            assert mask_personal_data(row["text"]) == unicodedata.normalize("NFKC", row["text"])


@pytest.mark.parametrize("text", ["a" * 5000, "1" * 5000, "1-" * 2500, "a." * 2500, "中1-" * 1600, "1 -" * 1600,
                                  "a@b." * 1200, "ー1" * 2500, "1〜" * 2500, "(" * 5000])
def test_long_messages_are_masked_quickly(text: str) -> None:
    started = time.perf_counter()
    mask_personal_data(text)
    assert time.perf_counter() - started < 0.5


@pytest.fixture
def kb_app(make_app: Any) -> Any:
    app = make_app(MUNICIPALITY="joso")
    with get_db(app).session() as s:
        load_repo_kb(s, "joso")
    return app


def test_questions_are_stored_masked(kb_app: Any, fake_line: Any) -> None:
    """Residents' messages through the webhook: the question log holds only the masked text."""
    prefix = "住民票の写しについて質問です。"
    picked = [r for r in ROWS if not r["kind"].startswith("keep-")][::9] + [r for r in ROWS if r["kind"] == "mixed"]
    chat = Chat(kb_app.test_client(), fake_line, "U" + "9" * 32)
    for n, row in enumerate(picked, start=1):
        chat.says(prefix + row["text"])
        wait_until(lambda n=n: len(stored(kb_app)) >= n, message="the question is logged")
    several_lines = prefix + "\n電話は\n090-1234-5678\nメールは taro@localhost"
    chat.says(several_lines)
    wait_until(lambda: len(stored(kb_app)) == len(picked) + 1, message="the question is logged")
    texts = stored(kb_app)
    assert texts[:-1] == [unicodedata.normalize("NFKC", prefix) + r["expected"] for r in picked]
    assert texts[-1] == prefix + "\n電話は\n［電話番号］\nメールは ［メール］"
    assert not [t for t in texts if re.search(r"@\s?[A-Za-z]|[0-9]{5,}", t)]


def stored(app: Any) -> list[str]:
    with get_db(app).session() as s:
        return list(s.scalars(select(QuestionLog.masked_text).order_by(QuestionLog.id)))


def test_the_question_log_is_written_in_one_place_and_always_masked() -> None:
    """Every write of faq_question_log's text in the product goes through mask_personal_data."""
    writes = []
    for package in ("bot", "handlers", "faq", "segments", "broadcast", "kpi"):
        for path in sorted((ROOT / package).rglob("*.py")):
            source = path.read_text(encoding="utf-8")
            for node in ast.walk(ast.parse(source)):
                value = None
                if isinstance(node, ast.Dict):
                    for key, v in zip(node.keys, node.values):
                        if isinstance(key, ast.Constant) and key.value == "masked_text":
                            value = v
                elif isinstance(node, ast.keyword) and node.arg == "masked_text":
                    value = node.value
                elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Attribute) and t.attr == "masked_text"
                                                          for t in node.targets):
                    value = node.value
                elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "QuestionLog":
                    writes.append((path.relative_to(ROOT).as_posix(), "QuestionLog(...)"))
                if value is not None:
                    writes.append((path.relative_to(ROOT).as_posix(), ast.get_source_segment(source, value)))
    assert writes == [("faq/service.py", "mask_personal_data(text)[:1000]")]
