"""`flask broadcast ...`: create prints the id, list, show --json (status and counts), cancel, pause, resume, run-scheduler --once."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from bot.db import get_db, utcnow
from bot.models import AuditLog
from bot.sandbox.fake_line import FakeLinePlatform
from broadcast.schedule import JST
from segments.rules import SegmentRule, save_segment
from tests.test_broadcast import FAST, add_residents, deliveries_per_user


@pytest.fixture
def capp(make_app: Any, tmp_path: Path) -> Flask:
    return make_app(**FAST, BROADCAST_LOCK_FILE=str(tmp_path / "dispatcher.lock"))


def cli(app: Flask, *args: str, ok: bool = True, stdin: str | None = None) -> Any:
    result = app.test_cli_runner().invoke(args=["broadcast", *args], input=stdin)
    if ok:
        assert result.exit_code == 0, result.output
    else:
        assert result.exit_code != 0, result.output
    return result


def show(app: Flask, notice_id: int) -> dict[str, Any]:
    return json.loads(cli(app, "show", str(notice_id), "--json").stdout)


def test_create_prints_the_id_and_show_json_has_status_and_counts(capp: Flask, fake_line: FakeLinePlatform) -> None:
    residents = add_residents(capp, 8)
    created = cli(capp, "create", "--text", "年末年始の窓口案内", "--at", "now")
    notice_id = int(created.stdout.strip())  # stdout is the id alone: ID=$(flask broadcast create ...)
    assert "予約しました" in created.stderr and "対象 8 人" in created.stderr
    shown = show(capp, notice_id)
    assert shown["status"] == "scheduled" and shown["counts"]["delivered"] == 0

    ran = cli(capp, "run-scheduler", "--once")
    assert "開始 1 件、完了 1 件" in ran.stdout
    shown = show(capp, notice_id)
    assert shown["status"] == "sent"
    assert shown["counts"]["recipients"] == 8 and shown["counts"]["delivered"] == 8 and shown["counts"]["failed"] == 0
    assert len(shown["runs"]) == 1 and shown["runs"][0]["counts"]["delivered"] == 8
    assert set(deliveries_per_user(fake_line)) == set(residents)
    listing = cli(capp, "list").stdout
    assert f"{notice_id}\t配信済み\t—\t8/8\t年末年始の窓口案内" in listing


def test_create_with_attributes_a_schedule_and_an_end_date(capp: Flask) -> None:
    add_residents(capp, 12, age_band="30代", interests_mask=2)
    created = cli(
        capp, "create", "--text", "子育て支援のお知らせ", "--age", "20代,30代", "--interest", "子育て",
        "--at", "2030-01-06T09:00", "--every", "weekly:mon,thu", "--until", "2030-03-31", "--except", "2030-02-10,2030-02-13",
    )
    shown = show(capp, int(created.stdout))
    assert shown["target"]["rule"] == {"age_bands": {"include": ["20代", "30代"], "exclude": []}, "interests": {"include": ["子育て"], "exclude": []}}
    assert shown["schedule"]["kind"] == "weekly" and shown["schedule"]["weekdays"] == ["mon", "thu"]
    assert shown["schedule"]["until"] == "2030-03-31" and shown["schedule"]["excluded"] == ["2030-02-10", "2030-02-13"]
    assert shown["next_run_at"] == dt.datetime(2030, 1, 7, 9, 0, tzinfo=JST).isoformat()  # the 6th is a Sunday
    assert "毎週 月・木 09:00" in shown["schedule"]["description"]


def test_create_for_a_saved_segment_and_monthly_last(capp: Flask) -> None:
    add_residents(capp, 15, interests_mask=1)
    with get_db(capp).session() as session:
        save_segment(session, "防災関心", SegmentRule.from_dict({"interests": {"include": ["防災"]}}), capp.config["MUNICIPALITY"])
    created = cli(capp, "create", "--text", "防災無線の試験放送", "--segment", "防災関心", "--at", "2030-01-01T10:00", "--every", "monthly:last")
    shown = show(capp, int(created.stdout))
    assert shown["target"]["segment"] == "防災関心" and "防災関心" in shown["target"]["description"]
    assert shown["next_run_at"] == dt.datetime(2030, 1, 31, 10, 0, tzinfo=JST).isoformat()


def test_emergency_and_card_from_the_cli(capp: Flask) -> None:
    add_residents(capp, 2, consented_at=None)
    created = cli(
        capp, "create", "--text", "避難所を開設しました", "--emergency", "--card-title", "【緊急】避難所開設",
        "--button-label", "避難所の一覧", "--button-url", "https://www.city.example.jp/hinan",
    )
    shown = show(capp, int(created.stdout))
    assert shown["is_emergency"] is True and shown["content"]["kind"] == "card"
    assert "対象 2 人" in created.stderr  # followers without consent too


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--every", "hourly"], "繰り返し「hourly」が分かりません"),
        (["--until", "2030-01-01"], "--every と一緒に"),
        (["--segment", "ない"], "セグメント「ない」はありません"),
        (["--segment", "x", "--age", "20代"], "どちらか一方"),
        (["--emergency", "--age", "20代"], "緊急配信"),
        (["--age", "二十代"], "年代に選べない値"),
        (["--at", "2001-01-01T09:00"], "過去です"),
        (["--at", "そのうち"], "読み取れません"),
        (["--button-url", "https://x.example.jp"], "ボタンの文言"),
    ],
)
def test_create_refuses_mistakes_in_japanese(capp: Flask, args: list[str], message: str) -> None:
    result = cli(capp, "create", "--text", "お知らせ", *args, ok=False)
    assert message in result.output


def test_privacy_floor_and_its_audited_override(capp: Flask) -> None:
    add_residents(capp, 3, age_band="80代以上")
    add_residents(capp, 20, start=100)
    refused = cli(capp, "create", "--text", "少人数", "--age", "80代以上", ok=False)
    assert "10人未満" in refused.output
    created = cli(capp, "create", "--text", "少人数", "--age", "80代以上", "--allow-small-segment")
    notice_id = int(created.stdout)
    with get_db(capp).session() as session:
        actions = [(a.action, a.username) for a in session.scalars(select(AuditLog).order_by(AuditLog.id))]
    assert actions == [("segment_privacy_override", "(CLI)"), ("notice_create", "(CLI)")]
    assert show(capp, notice_id)["status"] == "scheduled"


def test_text_from_stdin(capp: Flask) -> None:
    add_residents(capp, 1)
    long_text = "1行目\n2行目\n" + "あ" * 3000
    created = cli(capp, "create", "--text", "-", stdin=long_text)
    assert show(capp, int(created.stdout))["content"]["text"] == long_text.strip()


def test_cancel_pause_and_resume(capp: Flask, fake_line: FakeLinePlatform) -> None:
    add_residents(capp, 3)
    later = (utcnow() + dt.timedelta(hours=3)).astimezone(JST).strftime("%Y-%m-%dT%H:%M")
    notice_id = int(cli(capp, "create", "--text", "説明会のお知らせ", "--at", later).stdout)
    assert "一時停止しました" in cli(capp, "pause", str(notice_id)).stdout
    assert show(capp, notice_id)["status"] == "paused"
    assert "再開しました" in cli(capp, "resume", str(notice_id)).stdout
    assert "取り消しました" in cli(capp, "cancel", str(notice_id)).stdout
    assert show(capp, notice_id)["status"] == "cancelled"
    assert "取り消せません" in cli(capp, "cancel", str(notice_id), ok=False).output
    assert "はありません" in cli(capp, "show", "424242", ok=False).output
    listing = cli(capp, "list", "--status", "cancelled").stdout
    assert f"{notice_id}\t取り消し" in listing
    assert cli(capp, "list", "--status", "sent").stdout.strip() == "お知らせはまだありません。"
    with get_db(capp).session() as session:
        actions = [a.action for a in session.scalars(select(AuditLog).order_by(AuditLog.id))]
    assert actions == ["notice_create", "notice_pause", "notice_resume", "notice_cancel"]
    cli(capp, "run-scheduler", "--once")
    assert fake_line.deliveries == []


def test_list_json_is_one_object_per_line(capp: Flask) -> None:
    add_residents(capp, 1)
    first = int(cli(capp, "create", "--text", "一つ目").stdout)
    second = int(cli(capp, "create", "--text", "二つ目").stdout)
    lines = [json.loads(line) for line in cli(capp, "list", "--json").stdout.splitlines()]
    assert [line["id"] for line in lines] == [second, first]


def test_purge_runs_the_retention_job(capp: Flask) -> None:
    assert "ブロック数を確定した配信回: 0 回、削除した配信記録: 0 件" in cli(capp, "purge").stdout
