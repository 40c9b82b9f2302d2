"""Shelters from the national open-data layouts: `flask shelters import` (layouts detected, UTF-8 and
Shift_JIS, errors by line, all or nothing), opening and closing (CLI and /admin/shelters, audited),
and the nearest-open lookup."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from bot.db import get_db
from bot.models import AuditLog
from disaster.hazards import UNKNOWN
from disaster.importer import ShelterImportError, detect_layout, parse
from disaster.models import EMERGENCY_SITE, SHELTER, Shelter
from disaster.shelters import ShelterIndex, ShelterView, nearest_open
from tests.test_admin import PASSWORD, csrf_token, login, make_user

DATA = Path(__file__).resolve().parent / "data"
GSI = DATA / "shelters-gsi.csv"
SITES = DATA / "shelters-standard-sites.csv"
SHELTERS = DATA / "shelters-standard-shelters.csv"
ERRORS = DATA / "shelters-errors.csv"


def shelters_of(app) -> list[Shelter]:
    with get_db(app).read_session() as s:
        rows = list(s.scalars(select(Shelter).order_by(Shelter.id)))
        s.expunge_all()
    return rows


def run(app, *args: str):
    return app.test_cli_runner().invoke(args=["shelters", *args])


def test_the_shipped_test_files_are_marked_generated() -> None:
    for path in (GSI, SITES, SHELTERS, ERRORS):
        raw = path.read_bytes()
        text = raw.decode("cp932") if path == GSI else raw.decode("utf-8-sig")
        rows = text.splitlines()[1:]
        assert rows and all("生成したテストデータ" in row and "テスト" in row.split(",")[3] + row.split(",")[2] for row in rows if row)


@pytest.mark.parametrize(("path", "layout", "kind", "count"), [
    (GSI, "国土地理院 指定緊急避難場所データ", EMERGENCY_SITE, 4),
    (SITES, "自治体標準オープンデータセット 指定緊急避難場所一覧", EMERGENCY_SITE, 5),
    (SHELTERS, "自治体標準オープンデータセット 指定避難所一覧", SHELTER, 3),
])
def test_each_layout_is_detected_from_its_header_and_imported(app, path: Path, layout: str, kind: str, count: int) -> None:
    result = run(app, "import", str(path))
    assert result.exit_code == 0, result.output
    assert layout in result.output and f"追加 {count} 件" in result.output
    rows = shelters_of(app)
    assert len(rows) == count and {r.kind for r in rows} == {kind}
    assert all(r.name.startswith("テスト") and not r.is_open for r in rows)
    assert all(36.6 <= r.latitude <= 36.71 and 140.13 <= r.longitude <= 140.21 for r in rows)


def test_hazards_capacity_and_shift_jis_are_read() -> None:
    layout, rows = parse(GSI.read_bytes())  # Shift_JIS
    assert layout.name == "gsi"
    first = rows[0]
    assert (first.source_id, first.name) == ("G001", "テスト第一避難場所")
    assert first.hazards == ("flood", "earthquake", "fire")
    assert rows[3].hazards is not None and len(rows[3].hazards) == 8
    _layout, sites = parse(SITES.read_bytes())  # UTF-8 with BOM, ○ marks
    assert sites[0].hazards == ("flood", "earthquake")
    _layout, shelters = parse(SHELTERS.read_bytes())
    assert [s.capacity for s in shelters] == [200, 1500, None]


def test_errors_are_reported_by_line_and_nothing_is_written(app) -> None:
    run(app, "import", str(SITES))
    before = [(r.id, r.name) for r in shelters_of(app)]
    result = run(app, "import", str(ERRORS))
    assert result.exit_code == 1
    out = result.output
    assert f"{ERRORS}:3: 緯度 3.65 が日本の範囲" in out
    assert f"{ERRORS}:4: 名称が空です" in out
    assert f"{ERRORS}:5: 洪水の値「×」は 1・○・空欄 のどれかにしてください" in out
    assert f"{ERRORS}:6: ID「101」が 2 行目と重複しています" in out
    assert f"{ERRORS}:7: 経度「東経140」が数値ではありません" in out
    assert f"{ERRORS}:2:" not in out
    assert "取り込みを中止しました（5 件の誤り）。データは変更していません。" in out
    assert [(r.id, r.name) for r in shelters_of(app)] == before


@pytest.mark.parametrize(("header", "message"), [
    ("名前,場所\n", "避難所のファイルの形式ではありません"),
    ("共通ID,施設・場所名,住所,緯度,経度,洪水\n", "国土地理院 指定緊急避難場所データの列がありません: 崖崩れ、土石流及び地滑り"),
    ("ID,名称,住所,緯度,経度\n", "判別できません"),
])
def test_a_file_of_another_shape_is_refused_at_line_1(app, tmp_path: Path, header: str, message: str) -> None:
    path = tmp_path / "x.csv"
    path.write_text(header + "1,2,3,4,5\n", encoding="utf-8")
    result = run(app, "import", str(path))
    assert result.exit_code == 1 and f"{path}:1: " in result.output and message in result.output


def test_broken_encoding_and_broken_csv_are_errors_not_crashes(tmp_path: Path) -> None:
    with pytest.raises(ShelterImportError) as info:
        parse(b"\xff\xfe\xfa\x00broken")
    assert info.value.errors[0][0] == 1 and "文字コード" in info.value.errors[0][1]
    with pytest.raises(ShelterImportError) as info:
        detect_layout(["foo"])
    assert info.value.errors[0][0] == 1


def test_reimport_keeps_open_shelters_open_and_removes_those_gone(app, tmp_path: Path) -> None:
    run(app, "import", str(SITES))
    assert run(app, "open", "1", "2").exit_code == 0
    lines = SITES.read_text(encoding="utf-8-sig").splitlines()
    smaller = tmp_path / "sites.csv"
    smaller.write_text("\n".join(lines[:2] + lines[3:5]) + "\n", encoding="utf-8")  # 002 and 005 gone
    result = run(app, "import", str(smaller))
    assert result.exit_code == 0 and "削除 2 件" in result.output
    rows = {r.source_id: r for r in shelters_of(app)}
    assert set(rows) == {"001", "003", "004"} and rows["001"].is_open and not rows["003"].is_open


def test_open_and_close_from_the_cli_are_audited_and_unknown_numbers_refused(app) -> None:
    run(app, "import", str(SITES))
    result = run(app, "open", "1", "3")
    assert result.exit_code == 0 and "開設しました: 1 テスト第一避難所" in result.output
    assert "変更はありません" in run(app, "open", "1").output
    refused = run(app, "close", "1", "99")
    assert refused.exit_code == 1 and "番号 99 の避難所はありません" in refused.output
    assert [r.id for r in shelters_of(app) if r.is_open] == [1, 3]  # nothing closed by the refused command
    assert run(app, "close", "--all").exit_code == 0
    assert not any(r.is_open for r in shelters_of(app))
    listed = run(app, "list")
    assert "1\t閉鎖\t指定緊急避難場所\tテスト第一避難所" in listed.output
    with get_db(app).read_session() as s:
        actions = [(a.action, a.username) for a in s.scalars(select(AuditLog).order_by(AuditLog.id))]
    assert ("shelters_import", "(CLI)") in actions and ("shelter_open", "(CLI)") in actions
    assert ("shelter_close", "(CLI)") in actions


def test_staff_open_and_close_in_the_admin(app) -> None:
    run(app, "import", str(SITES))
    client = app.test_client()
    make_user(app, "kouhou", "pr")
    assert login(client, "kouhou", PASSWORD).status_code == 302
    page = client.get("/admin/shelters").get_data(as_text=True)
    assert "テスト第一避難所" in page and "開設中：0 か所" in page
    token = csrf_token(client, "/admin/shelters")
    assert client.post("/admin/shelters/2/open", data={"csrf_token": token}).status_code == 302
    page = client.get("/admin/shelters").get_data(as_text=True)
    assert "テスト第二避難所 を開設しました" in page and "開設中：1 か所" in page
    assert client.post("/admin/shelters/2/close", data={"csrf_token": token}).status_code == 302
    assert not any(r.is_open for r in shelters_of(app))
    with get_db(app).read_session() as s:
        audited = [(a.action, a.username, a.target) for a in s.scalars(select(AuditLog).where(AuditLog.action.like("shelter_%")))]
    assert ("shelter_open", "kouhou", "2 テスト第二避難所") in audited and ("shelter_close", "kouhou", "2 テスト第二避難所") in audited
    other = app.test_client()
    make_user(app, "faq-tantou", "faq")
    login(other, "faq-tantou", PASSWORD)
    assert other.get("/admin/shelters").status_code == 403


def _view(n: int, lat: float, lon: float, hazards: tuple[str, ...] | None) -> ShelterView:
    return ShelterView(n, EMERGENCY_SITE, f"テスト{n}", "テスト県", lat, lon, hazards)


def test_the_lookup_is_nearest_first_and_filters_by_hazard() -> None:
    index = ShelterIndex([
        _view(1, 36.70, 140.20, ("flood",)),
        _view(2, 36.651, 140.151, ("earthquake",)),
        _view(3, 36.66, 140.16, ("flood", "earthquake")),
        _view(4, 36.65, 140.15, None),  # no hazard columns in its file: only for 「わからない」
        _view(5, 36.62, 140.12, ("flood",)),
    ])
    flood = index.nearest(36.65, 140.15, "flood")
    assert [n.shelter.id for n in flood] == [3, 5, 1]
    # 36.65,140.15 -> 36.66,140.16: about 1.4 km
    assert flood[0].distance_km == pytest.approx(1.42, abs=0.02)
    assert [n.shelter.id for n in index.nearest(36.65, 140.15, UNKNOWN)] == [4, 2, 3]
    assert [n.shelter.id for n in index.nearest(36.65, 140.15, "tsunami")] == []
    assert ShelterIndex([]).nearest(36.65, 140.15) == []


def test_only_open_shelters_are_found_and_a_change_is_seen_at_once(app) -> None:
    run(app, "import", str(SITES))
    with get_db(app).read_session() as s:
        assert nearest_open(s, app.config["MUNICIPALITY"], 36.65, 140.15).open_count == 0
    run(app, "open", "--all")
    run(app, "close", "1")
    with get_db(app).read_session() as s:
        result = nearest_open(s, app.config["MUNICIPALITY"], 36.65, 140.15, "flood")
    assert result.open_count == 4 and [n.shelter.name for n in result.found] == ["テスト第三避難所", "テスト第四避難所", "テスト第五避難所"]
