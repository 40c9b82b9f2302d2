"""The city's directory (連絡先): every answer ends with its section's お問い合わせ line, and admins
keep the phone numbers, hours and URLs up to date at /admin/directory."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update
from werkzeug.security import generate_password_hash

from bot import auth
from bot.db import get_db, utcnow
from bot.models import AuditLog
from faq import directory
from faq.directory import Contact, Directory, read_repo_directory
from faq.kb import MUNICIPALITIES, KBError, load_kb
from faq.models import DirectoryContact, FaqEntry
from faq.store import load_repo_kb
from tests.conftest import Chat
from tests.test_faq_workbench import csrf_token, staff

RESIDENT = "U" + "7" * 32
KOSEKI = "戸籍謄本をコンビニで取りたいのですが"  # konbini-koseki: {section_citizen}
JOSO_HOME = "https://www.city.joso.lg.jp/"
# Test values, not real numbers.
PHONE, HOURS, URL = "012-345-6789", "平日8:30〜17:15", "https://www.example.jp/shimin/"


@pytest.fixture(autouse=True)
def fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cheap password hashes keep the logins quick."""
    monkeypatch.setattr(auth, "hash_password", lambda password: generate_password_hash(password, "pbkdf2:sha256:1000"))


@pytest.fixture
def joso(make_app: Callable[..., Flask]) -> Flask:
    """常総市 with the shipped knowledge base and directory loaded."""
    app = make_app(MUNICIPALITY="joso")
    with get_db(app).session() as s:
        load_repo_kb(s, "joso")
    return app


def edit(client: FlaskClient, key: str, **fields: str) -> Any:
    """Submit the edit form of one section as a browser does: the shown values, some changed."""
    page = f"/admin/directory/{key}"
    html = client.get(page).get_data(as_text=True)
    shown = {f: re.search(rf'name="{f}" type="text" value="([^"]*)"', html) for f in directory.FIELDS}
    data = {f: m.group(1) if m else "" for f, m in shown.items()}
    return client.post(page, data={**data, **fields, "csrf_token": csrf_token(client, page)})


def ask(app: Flask, fake_line: Any, question: str, user: str = RESIDENT) -> str:
    """The resident asks; the text of the bot's answer."""
    answer, _helpful = Chat(app.test_client(), fake_line, user).says(question, expect=2)
    return str(answer["text"])


def contact_lines(text: str) -> list[str]:
    return [line for line in text.split("\n") if "お問い合わせ：" in line or "【お問い合わせ】" in line]


def row(app: Flask, key: str, city: str = "joso") -> DirectoryContact:
    with get_db(app).session() as s:
        found = s.scalar(select(DirectoryContact).where(DirectoryContact.municipality == city, DirectoryContact.key == key))
        assert found is not None
        s.expunge(found)
        return found


def audit_rows(app: Flask, action: str) -> list[AuditLog]:
    with get_db(app).session() as s:
        return list(s.scalars(select(AuditLog).where(AuditLog.action == action)))


# --- residents ----------------------------------------------------------------------------------------


def test_an_answer_ends_with_its_sections_line_and_never_the_old_contact(joso: Flask, fake_line: Any) -> None:
    text = ask(joso, fake_line, KOSEKI)
    # 市民課・暮らしの窓口課 has nothing set: its name and the city's homepage, never an empty line.
    assert text.split("\n")[-1] == f"お問い合わせ：市民課・暮らしの窓口課　{JOSO_HOME}"
    assert len(contact_lines(text)) == 1
    assert "各課の電話番号は市ホームページに掲載" not in text and "\n\n\n" not in text


def test_the_seeds_phone_number_reaches_residents(make_app: Callable[..., Flask], fake_line: Any) -> None:
    app = make_app(MUNICIPALITY="nasushiobara")
    with get_db(app).session() as s:
        load_repo_kb(s, "nasushiobara")
    text = ask(app, fake_line, "LINEの友だち登録の方法は？")
    # seed 002:1816-1818: 企画部 デジタル推進課 TEL : 0287-48-7852
    assert text.split("\n")[-1] == "お問い合わせ：企画部デジタル推進課　電話 0287-48-7852"


def test_a_phone_set_by_an_admin_shows_in_the_next_answer(joso: Flask, fake_line: Any) -> None:
    ask(joso, fake_line, KOSEKI)  # the directory is cached in the process: the edit must still show at once
    admin = staff(joso, "kanri", "admin")
    page = admin.get("/admin/directory").get_data(as_text=True)
    assert "市民課・暮らしの窓口課" in page and "未設定" in page
    response = edit(admin, "citizen", phone="０１２－３４５－６７８９", hours=HOURS, url=URL)  # full width is fine
    assert response.status_code == 302
    assert "保存しました" in admin.get("/admin/directory").get_data(as_text=True)
    text = ask(joso, fake_line, KOSEKI)
    assert text.split("\n")[-1] == f"お問い合わせ：市民課・暮らしの窓口課　電話 {PHONE}（{HOURS}）　{URL}"
    assert len(contact_lines(text)) == 1
    (entry,) = audit_rows(joso, "directory_edit")
    assert entry.username == "kanri" and entry.target == "citizen"
    assert entry.detail["changes"]["phone"] == ["", PHONE]
    assert row(joso, "citizen").is_staff_edited


def test_the_main_number_stands_in_for_a_section_without_one(joso: Flask, fake_line: Any) -> None:
    admin = staff(joso, "kanri", "admin")
    assert edit(admin, "main", phone="0120-000-000", hours="平日9時〜17時").status_code == 302
    text = ask(joso, fake_line, KOSEKI)
    assert text.split("\n")[-1] == "お問い合わせ：市民課・暮らしの窓口課　電話 0120-000-000（代表・平日9時〜17時）"


def dont_know(resident: Chat, question: str) -> str:
    """The resident asks something the bot cannot answer (after 「もしかして」 they send 「どれでもない」)."""
    (reply,) = resident.says(question)
    if reply["text"].startswith("もしかして"):
        none_of_these = reply["quickReply"]["items"][-1]["action"]
        assert none_of_these["label"] == "どれでもない"
        (reply,) = resident.taps(none_of_these["data"])
    assert "お答えできません" in reply["text"], reply["text"]
    return str(reply["text"])


def test_dont_know_and_the_contact_command_give_the_citys_main_contact(joso: Flask, fake_line: Any) -> None:
    resident = Chat(joso.test_client(), fake_line, RESIDENT)
    assert f"お急ぎの場合のお問い合わせ先：常総市役所　{JOSO_HOME}" in dont_know(resident, "プロ野球の優勝チームの予想を教えて")
    edit(staff(joso, "kanri", "admin"), "main", phone="0120-000-000")
    assert f"常総市役所　電話 0120-000-000　{JOSO_HOME}" in dont_know(resident, "宇宙人に会いたい")
    (reply,) = resident.says("お問い合わせ")
    assert reply["text"].startswith(f"お問い合わせ先：常総市役所　電話 0120-000-000　{JOSO_HOME}")


def test_an_answer_stored_with_the_old_contact_text_loses_it(joso: Flask, fake_line: Any) -> None:
    old = "常総市役所（各課の電話番号は市ホームページに掲載されています）"
    with get_db(joso).session() as s:
        s.execute(update(FaqEntry).where(FaqEntry.municipality == "joso", FaqEntry.entry_id == "konbini-koseki")
                  .values(answer=f"コンビニで取れます。\nお問い合わせ：市民課・暮らしの窓口課\n{old}\n{JOSO_HOME}",
                          updated_at=utcnow()))
    text = ask(joso, fake_line, KOSEKI)
    assert text == f"コンビニで取れます。\nお問い合わせ：市民課・暮らしの窓口課　{JOSO_HOME}"


# --- staff ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["faq", "pr", "viewer"])
def test_only_admins_may_open_or_change_the_directory(joso: Flask, role: str) -> None:
    client = staff(joso, f"user-{role}", role)
    assert client.get("/admin/directory").status_code == 403
    assert client.get("/admin/directory/citizen").status_code == 403
    token = csrf_token(client, "/admin/password")
    response = client.post("/admin/directory/citizen", data={"name": "x", "phone": PHONE, "csrf_token": token})
    assert response.status_code == 403
    assert row(joso, "citizen").phone == "" and not audit_rows(joso, "directory_edit")
    assert "連絡先（課の一覧）" not in client.get("/admin/").get_data(as_text=True)


def test_the_form_needs_its_csrf_token(joso: Flask) -> None:
    admin = staff(joso, "kanri", "admin")
    response = admin.post("/admin/directory/citizen", data={"name": "市民課", "phone": PHONE})
    assert response.status_code == 400
    assert row(joso, "citizen").phone == ""


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"phone": "0297-AB-1234"}, "電話番号は半角数字とハイフンで入力してください"),
        ({"phone": "内線123"}, "電話番号は半角数字とハイフンで入力してください"),
        ({"phone": "0297-12"}, "電話番号は市外局番から10桁または11桁で入力してください"),
        ({"url": "www.city.joso.lg.jp"}, "URLは http:// または https:// で始まる形で入力してください"),
        ({"url": "javascript:alert(1)"}, "URLは http:// または https:// で始まる形で入力してください"),
        ({"hours": "あ" * 101}, "受付時間は100文字以内で入力してください"),
        ({"name": ""}, "名称を入力してください"),
    ],
)
def test_bad_input_shows_the_japanese_error_and_changes_nothing(joso: Flask, fields: dict[str, str], message: str) -> None:
    admin = staff(joso, "kanri", "admin")
    before = row(joso, "citizen")
    response = edit(admin, "citizen", **{"hours": HOURS, **fields})
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert message in html and "保存していません" in html
    after = row(joso, "citizen")
    assert (after.name, after.phone, after.hours, after.url, after.is_staff_edited) == \
        (before.name, before.phone, before.hours, before.url, False)
    assert not audit_rows(joso, "directory_edit")


def test_faq_load_keeps_an_admins_edit_and_refreshes_the_rest(joso: Flask) -> None:
    edit(staff(joso, "kanri", "admin"), "citizen", phone=PHONE)
    with get_db(joso).session() as s:  # an unedited row drifted from city.yaml: load puts it back
        s.execute(update(DirectoryContact).where(DirectoryContact.municipality == "joso",
                                                 DirectoryContact.key == "tax").values(name="古い名前"))
    result = joso.test_cli_runner().invoke(args=["faq", "load"])
    assert result.exit_code == 0, result.output
    assert "連絡先" in result.output and "職員の編集を保持 1 件" in result.output
    assert row(joso, "citizen").phone == PHONE
    assert row(joso, "tax").name == "市税の担当課"


def test_back_to_the_shipped_data(joso: Flask, fake_line: Any) -> None:
    admin = staff(joso, "kanri", "admin")
    edit(admin, "citizen", phone=PHONE)
    page = "/admin/directory/citizen"
    response = admin.post(f"{page}/reset", data={"csrf_token": csrf_token(admin, page)})
    assert response.status_code == 302
    assert (row(joso, "citizen").phone, row(joso, "citizen").is_staff_edited) == ("", False)
    assert audit_rows(joso, "directory_reset")
    assert ask(joso, fake_line, KOSEKI).split("\n")[-1] == f"お問い合わせ：市民課・暮らしの窓口課　{JOSO_HOME}"


def test_unknown_sections_are_404(joso: Flask) -> None:
    assert staff(joso, "kanri", "admin").get("/admin/directory/nowhere").status_code == 404


# --- the line and the shipped data ------------------------------------------------------------------------

CITY = Directory(city_name="常総市", homepage=JOSO_HOME, main=Contact("main", "常総市役所"),
                 sections={"citizen": Contact("citizen", "市民課")})


@pytest.mark.parametrize(
    ("section", "main", "expected"),
    [
        (Contact("citizen", "市民課"), Contact("main", "常総市役所"), f"市民課　{JOSO_HOME}"),
        (Contact("citizen", "市民課", PHONE, HOURS, URL), Contact("main", "常総市役所"), f"市民課　電話 {PHONE}（{HOURS}）　{URL}"),
        (Contact("citizen", "市民課", PHONE), Contact("main", "常総市役所"), f"市民課　電話 {PHONE}"),
        (Contact("citizen", "市民課", url=URL), Contact("main", "常総市役所"), f"市民課　{URL}"),
        (Contact("citizen", "市民課", hours=HOURS), Contact("main", "常総市役所"), f"市民課　受付時間 {HOURS}　{JOSO_HOME}"),
        (Contact("citizen", "市民課"), Contact("main", "常総市役所", "0120-000-000"), "市民課　電話 0120-000-000（代表）"),
        (None, Contact("main", "常総市役所", "0120-000-000", HOURS, URL), f"常総市役所　電話 0120-000-000（{HOURS}）　{URL}"),
        (None, Contact("main", "常総市役所"), f"常総市役所　{JOSO_HOME}"),
    ],
)
def test_the_line_shows_only_what_is_set(section: Contact | None, main: Contact, expected: str) -> None:
    assert Directory("常総市", JOSO_HOME, main, {}).contact_text(section) == expected


def test_an_answers_own_closing_lines_become_the_one_line() -> None:
    answer = "本文です。\n【お問い合わせ】お子さんの学校、または\n\n【市ホームページ】" + JOSO_HOME
    assert CITY.finish_answer(answer, "", "children") == f"本文です。\nお問い合わせ：お子さんの学校、または常総市役所　{JOSO_HOME}"
    answer = "本文です。\n【お問い合わせ】交通防犯課\n" + JOSO_HOME
    assert CITY.finish_answer(answer, "", "transport") == f"本文です。\nお問い合わせ：交通防犯課　{JOSO_HOME}"
    answer = "本文です。\n【お問い合わせ】市民課・税務課\nhttps://www.example.jp/page"
    assert CITY.finish_answer(answer, "citizen") == \
        f"本文です。\n担当：市民課・税務課\nhttps://www.example.jp/page\nお問い合わせ：市民課　{JOSO_HOME}"


@pytest.mark.parametrize("city", MUNICIPALITIES)
def test_every_shipped_answer_ends_with_one_contact_line(city: str) -> None:
    shipped = read_repo_directory(city)
    assert shipped.main.name.startswith(shipped.city_name)
    for entry in load_kb(city):
        text = shipped.finish_answer(entry.answer, entry.section, entry.category)
        last = text.split("\n")[-1]
        assert last.startswith("お問い合わせ：") and len(last) > len("お問い合わせ：") + 2, (entry.id, text)
        assert len(contact_lines(text)) == 1, (entry.id, text)
        assert "各課の電話番号" not in text and "\n\n\n" not in text, entry.id
        assert not entry.section or entry.section in shipped.sections, (entry.id, entry.section)


def test_only_the_seeds_phone_numbers_are_shipped() -> None:
    phones = {(c, s.key): s.phone for c in MUNICIPALITIES
              for s in [read_repo_directory(c).main, *read_repo_directory(c).sections.values()] if s.phone}
    # seed 002:1818 (那須塩原市 企画部デジタル推進課) and seed 004:1176 (大田原市 総合政策部情報政策課)
    assert phones == {("nasushiobara", "digital"): "0287-48-7852", ("ohtawara", "digital"): "0287-23-8766"}


def test_a_bad_phone_in_city_yaml_is_refused(tmp_path: Path) -> None:
    kb = tmp_path / "kb"
    (kb / "cities" / "joso").mkdir(parents=True)
    (kb / "cities" / "joso" / "city.yaml").write_text(
        "code: joso\nname: 常総市\nvars: {city_name: 常総市, contact: '', homepage: 'https://x.example/'}\n"
        "districts: [石下地区]\nsections:\n  citizen: {name: 市民課, phone: 'TEL 123', hours: '', url: ''}\n",
        encoding="utf-8",
    )
    with pytest.raises(KBError, match="電話番号"):
        read_repo_directory("joso", kb)


def test_none_of_these_gives_the_main_contact_staff_set(make_app: Callable[..., Flask], fake_line: Any) -> None:
    app = make_app(MUNICIPALITY="joso", FAQ_ANSWER_THRESHOLD=1.01)  # nothing is answered directly: 「もしかして」
    with get_db(app).session() as s:
        load_repo_kb(s, "joso")
    edit(staff(app, "kanri", "admin"), "main", phone="0120-000-000")
    resident = Chat(app.test_client(), fake_line, RESIDENT)
    (clarify,) = resident.says("マイナンバーカードのこと")
    assert clarify["text"].startswith("もしかして")
    (reply,) = resident.taps(clarify["quickReply"]["items"][-1]["action"]["data"])
    assert f"お急ぎの場合のお問い合わせ先：常総市役所　電話 0120-000-000　{JOSO_HOME}" in reply["text"]
