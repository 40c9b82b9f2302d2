"""Import/export of a city's FAQ (both CSV formats), the load command, and the eval CLI."""

from __future__ import annotations

import csv
import io
import json

import pytest
from sqlalchemy import func, select

from bot.db import get_db
from faq.models import FaqEntry
from faq.store import ImportError_, export_csv, import_csv, parse_csv
from tests.conftest import SHARED

PROJECT_HEADER = "id,category,title,question,alternates,keywords,answer,source,reviewed_at\n"


def count(app) -> int:
    with get_db(app).session() as s:
        return s.scalar(select(func.count()).select_from(FaqEntry)) or 0


def test_load_is_idempotent(app, runner) -> None:
    first = runner.invoke(args=["faq", "load"])
    assert first.exit_code == 0, first.output
    assert "追加 62 件" in first.output  # 65 topics less 3 that belong to other cities (faq/kb/FORMAT.md)
    assert "外国語の質問の索引を準備しました（項目 62 件、市で扱わない事柄 9 件）" in first.output
    second = runner.invoke(args=["faq", "load"])
    assert "追加 0 件" in second.output and "変更なし 62 件" in second.output
    assert count(app) == 62


def test_load_unpublishes_what_the_repo_no_longer_ships_for_the_city(app, runner) -> None:
    """A database loaded from an older knowledge base (where 那須塩原市's own topic sat in the base)
    stops offering that topic here; a staff-edited entry stays the staff's."""
    runner.invoke(args=["faq", "load"])
    with get_db(app).session() as s:
        for entry_id, edited in (("tourism-passport", False), ("staff-own-topic", True)):
            s.add(FaqEntry(municipality="nasukarasuyama", entry_id=entry_id, origin="repo", category="tourism",
                           title="古い項目", question="なすしおばら観光パスポートはどこでもらえますか",
                           alternates=[], keywords=[], answer="古い回答", source="test", is_staff_edited=edited))
    result = runner.invoke(args=["faq", "load"])
    assert result.exit_code == 0, result.output
    assert "公開を停止 1 件" in result.output
    with get_db(app).session() as s:
        published = dict(s.execute(select(FaqEntry.entry_id, FaqEntry.is_published)
                                   .where(FaqEntry.municipality == "nasukarasuyama")).all())
    assert published["tourism-passport"] is False and published["staff-own-topic"] is True
    asked = runner.invoke(args=["faq", "ask", "--json", "なすしおばら観光パスポートはどこでもらえますか"])
    assert "tourism-passport" not in asked.output


def test_bad_rows_are_reported_by_line_and_nothing_changes(app, runner, tmp_path) -> None:
    runner.invoke(args=["faq", "load"])
    bad = tmp_path / "bad.csv"
    bad.write_text(
        PROJECT_HEADER
        + "ok-1,garbage,ごみ,ごみの日は？,ゴミの日|収集日,ごみ,収集日は地区ごとです。,test,2026-01-01\n"
        + ",garbage,タイトル,質問,,,回答,test,2026-01-01\n"  # line 3: no id
        + "ok-2,garbage,とても長いタイトルでボタンに入りきらないものです,質問,,,回答,test,2026-01-01\n"  # line 4
        + "ok-3,garbage,タイトル,質問,,,回答,test,2026/01/01\n"  # line 5: bad date
        + "ok-1,garbage,重複,質問,,,回答,test,2026-01-01\n",  # line 6: duplicate id
        encoding="utf-8",
    )
    result = runner.invoke(args=["faq", "import", str(bad)])
    assert result.exit_code != 0
    for line in ("bad.csv:3:", "bad.csv:4:", "bad.csv:5:", "bad.csv:6:"):
        assert line in result.output
    assert "データは変更していません" in result.output
    assert count(app) == 62
    with get_db(app).session() as s:
        assert s.scalar(select(FaqEntry).where(FaqEntry.entry_id == "ok-1")) is None


def test_wrong_header_is_refused() -> None:
    with pytest.raises(ImportError_) as err:
        parse_csv("質問,回答\na,b\n", "joso")
    assert err.value.errors[0][0] == 1


def test_surplus_cells_are_an_error_with_the_line() -> None:
    with pytest.raises(ImportError_) as err:
        parse_csv("ID,問い合わせ文,応答文,カテゴリ\n1,q,a,c\n2,q,a,c,extra\n", "joso")
    assert err.value.errors == [(3, "列の数が見出し行より多くなっています")]


def test_kosodate_sample_imports_and_answers(app, runner) -> None:
    sample = SHARED / "samples" / "kosodate-faq.csv"
    result = runner.invoke(args=["faq", "import", str(sample)])
    assert result.exit_code == 0, result.output
    assert "追加 661 件" in result.output
    rows = list(csv.DictReader(sample.open(encoding="utf-8-sig")))
    asked = runner.invoke(args=["faq", "ask", "--json", rows[0]["問い合わせ文"]])
    decision = json.loads(asked.output.strip().splitlines()[-1])
    assert decision["topic"] == rows[0]["ID"] and decision["decision"] == "answer"
    with get_db(app).session() as s:
        entry = s.scalar(select(FaqEntry).where(FaqEntry.entry_id == rows[0]["ID"]))
        assert entry.answer == rows[0]["応答文"] and entry.category == rows[0]["カテゴリ"]
        assert len(entry.title) <= 20


def test_export_round_trips_in_both_formats(app, runner, tmp_path) -> None:
    runner.invoke(args=["faq", "load"])
    with get_db(app).session() as s:
        project = export_csv(s, "nasukarasuyama")
        kosodate = export_csv(s, "nasukarasuyama", "kosodate")
    again = parse_csv(project, "nasukarasuyama")
    assert len(again) == 62 and all(len(e.alternates) >= 8 for e in again)
    assert [r["ID"] for r in csv.DictReader(io.StringIO(kosodate))] == sorted(e.id for e in again)
    out = tmp_path / "out.csv"
    assert runner.invoke(args=["faq", "export", str(out)]).exit_code == 0
    with get_db(app).session() as s:
        report = import_csv(s, "nasukarasuyama", out.read_text(encoding="utf-8"))
    assert len(report.unchanged) == 62


def test_eval_cli_prints_the_figures_of_a_small_fixture(app, runner, tmp_path) -> None:
    kb = tmp_path / "kb.csv"
    kb.write_text(
        PROJECT_HEADER
        + "dog,animals,犬の登録,犬の登録はどうすればいいですか,犬を飼い始めた|いぬ 登録|犬の鑑札,犬|登録,保健所へ。,t,2026-01-01\n"
        + "bus,transport,バスの時刻,バスの時刻表を知りたい,バス 時刻|バスは何時に来る|時刻表,バス|時刻表,駅で。,t,2026-01-01\n"
        + "tax,tax,税金の納付,市税の納め方を教えて,税金 払い方|住民税 納付|固定資産税を払う,税金|納付,窓口で。,t,2026-01-01\n",
        encoding="utf-8",
    )
    with get_db(app).session() as s:
        import_csv(s, "nasukarasuyama", kb.read_text(encoding="utf-8"))
    cases = tmp_path / "eval.tsv"
    cases.write_text(
        "question\texpected\n"
        "犬の登録はどうすればいいですか\tdog\n"  # right
        "バスの時刻表を知りたい\tbus|tax\n"  # right (either is fine)
        "市税の納め方を教えて\tdog\n"  # wrong on purpose: a top-1 miss answered wrongly
        "xyzzy plugh\t-\n",  # off-topic, should not be answered
        encoding="utf-8",
    )
    result = runner.invoke(args=["faq", "eval", str(cases), "--misses"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "questions: 3 in scope, 1 off-topic" in out
    assert "top-1: 66.7%" in out
    assert "top-3: 100.0%" in out  # three entries: every one is in the top 3
    assert "answer rate: 100.0%" in out
    assert "precision of direct answers: 66.7%" in out and "wrong-answer rate: 33.3%" in out
    assert "off-topic answered: 0/1 (0.0%)" in out
    assert "miss\t市税の納め方を教えて\texpected=dog\tgot=tax" in out


def test_ask_reads_stdin_one_question_per_line(app, runner) -> None:
    runner.invoke(args=["faq", "load"])
    result = runner.invoke(args=["faq", "ask", "--json"], input="マイナンバーカードの暗証番号を忘れた\n\nこんにちは\n")
    lines = [json.loads(line) for line in result.output.strip().splitlines()]
    assert [line["question"] for line in lines] == ["マイナンバーカードの暗証番号を忘れた", "こんにちは"]
    assert set(lines[0]) == {"question", "decision", "topic", "score", "candidates"}
    assert lines[0]["topic"] == "mynumber-pin" and lines[0]["decision"] == "answer"
    assert lines[1]["decision"] == "unknown"


def test_ask_and_eval_load_the_citys_knowledge_base_when_the_database_has_none(make_app, tmp_path) -> None:
    # A database set up for one city, asked about another: the repo's entries of that city are loaded once.
    nasu = make_app(MUNICIPALITY="nasushiobara")
    assert nasu.test_cli_runner().invoke(args=["faq", "load"]).exit_code == 0
    joso = make_app(empty=False, MUNICIPALITY="joso")
    runner = joso.test_cli_runner()
    first = runner.invoke(args=["faq", "ask", "--json", "マイナンバーカードの暗証番号を忘れた"])
    assert first.exit_code == 0, first.output
    assert "joso: データベースにこの市の知識ベースがなかったため" in first.stderr
    answer = json.loads(first.stdout)
    assert answer["decision"] == "answer" and answer["topic"] == "mynumber-pin"
    with get_db(joso).session() as s:
        by_city = dict(s.execute(select(FaqEntry.municipality, func.count()).group_by(FaqEntry.municipality)).all())
    assert by_city == {"nasushiobara": 64, "joso": 63}
    cases = tmp_path / "cases.tsv"
    cases.write_text("question\texpected\nマイナンバーカードの暗証番号を忘れた\tmynumber-pin\n", encoding="utf-8")
    again = runner.invoke(args=["faq", "eval", str(cases)])
    assert again.exit_code == 0 and "top-1: 100.0%" in again.stdout
    assert again.stderr == ""  # loaded once, not again
