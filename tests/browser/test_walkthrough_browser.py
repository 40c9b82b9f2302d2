"""Walkthroughs of staff tasks in headless Chromium, step by step as docs/staff-guide.md and the
guides it links describe them; each step is saved as .ci/artifacts/<task>-<n>-<step>.png.

Tasks here: login and two-factor setup (docs/staff-guide-login.md), the review of unanswered
questions in the FAQ workbench, users and roles, and a resident's conversation in the simulator.
(The FAQ edit, KPI and notice screens have walkthroughs of their own.)"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pyotp
import pytest
from flask import Flask
from sqlalchemy import select

from bot import auth
from bot.db import get_db
from bot.sandbox.fake_line import FakeLinePlatform
from faq.models import FaqEntry
from faq.store import load_repo_kb
from tests.browser.conftest import HAVE_BROWSER, MISSING_BROWSER, page_wait, screenshot
from tests.conftest import Chat, webhook_served

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not HAVE_BROWSER, reason=MISSING_BROWSER)]

pytest.importorskip("selenium", reason="selenium is not installed")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

WAIT = 30.0  # seconds; CI machines are shared, and a city's first question builds its FAQ index
PASSWORD = "walkthrough-password-1234"
CITY = "joso"


def _wait(browser: Any) -> WebDriverWait:
    return page_wait(browser, WAIT)


def _h1(browser: Any, text: str) -> None:
    _wait(browser).until(EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), text))


def _flash(browser: Any, text: str) -> None:
    _wait(browser).until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, ".flash"), text))


def _type_login(browser: Any, username: str, password: str) -> None:
    _wait(browser).until(EC.visibility_of_element_located((By.ID, "username")))
    browser.find_element(By.ID, "username").send_keys(username)
    browser.find_element(By.ID, "password").send_keys(password)


def _log_out(browser: Any) -> None:
    browser.find_element(By.ID, "logout").click()
    _flash(browser, "ログアウトしました。")


@pytest.fixture
def site(make_app: Callable[..., Flask], fake_line_server: Any, fake_line: FakeLinePlatform) -> Iterator[tuple[Flask, str]]:
    """A development app of 常総市 (simulator on, its knowledge base loaded) over HTTP; the fake
    platform posts the simulator's webhooks to it."""
    _fake, served = fake_line_server
    app = make_app(APP_ENV="development", SIMULATOR_ENABLED=True, FAKE_LINE_URL=served.url, MUNICIPALITY=CITY,
                   FAQ_WHATIF_RECENT=50)
    with get_db(app).session() as session:
        load_repo_kb(session, CITY)
    with webhook_served(app, fake_line) as url:
        yield app, url


def _add_user(app: Flask, username: str, role: str) -> None:
    with get_db(app).session() as session:
        auth.create_user(session, username, PASSWORD, role)


# --- ログインと二段階認証の設定 (docs/staff-guide-login.md 1-3) -------------------------------------


def test_login_and_two_factor_setup(site: tuple[Flask, str], browser: Any) -> None:
    """A member of FAQ staff logs in, turns on two-factor login from the header link, keeps the
    recovery codes, logs out and in again with a code from the app."""
    app, base = site
    _add_user(app, "sato", "faq")

    browser.get(base + "/admin/")
    _type_login(browser, "sato", PASSWORD)
    screenshot(browser, "login-1-form")
    browser.find_element(By.ID, "login-submit").click()
    _h1(browser, "ダッシュボード")
    assert "ようこそ、sato さん" in browser.find_element(By.TAG_NAME, "body").text
    screenshot(browser, "login-2-dashboard")

    browser.find_element(By.LINK_TEXT, "二段階認証").click()
    _wait(browser).until(EC.text_to_be_present_in_element((By.ID, "two-factor-state"), "未設定"))
    screenshot(browser, "login-3-two-factor-off")
    browser.find_element(By.ID, "start-setup").click()
    _h1(browser, "二段階認証の設定")
    assert browser.find_element(By.CSS_SELECTOR, ".qr svg").size["width"] >= 150
    totp = pyotp.TOTP(browser.find_element(By.ID, "totp-secret").text.replace(" ", ""))
    browser.find_element(By.ID, "code").send_keys(totp.now())
    screenshot(browser, "login-4-qr-code")
    browser.find_element(By.ID, "setup-submit").click()
    _h1(browser, "復旧コード")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#recovery-codes li")) == 10
    screenshot(browser, "login-5-recovery-codes")
    browser.find_element(By.ID, "codes-done").click()
    _h1(browser, "ダッシュボード")

    _log_out(browser)
    _type_login(browser, "sato", PASSWORD)
    browser.find_element(By.ID, "login-submit").click()
    _h1(browser, "確認コードの入力")
    # The next 30-second step's code: a code is accepted once, and one step of drift is allowed.
    browser.find_element(By.ID, "code").send_keys(totp.at(time.time() + 30))
    screenshot(browser, "login-6-code")
    browser.find_element(By.ID, "code-submit").click()
    _h1(browser, "ダッシュボード")
    browser.find_element(By.LINK_TEXT, "二段階認証").click()
    _wait(browser).until(EC.text_to_be_present_in_element((By.ID, "two-factor-state"), "有効"))
    assert browser.find_element(By.ID, "codes-left").text == "10"
    screenshot(browser, "login-7-two-factor-on")


# --- 未回答の質問の確認（ワークベンチ） -------------------------------------------------------------

OFF_TOPIC = ("駅前でおすすめのラーメン屋さんを教えてください", "おいしいラーメン屋さんはどこにありますか")
NEW_TOPIC = ("ドローンを飛ばす許可は必要ですか", "ドローンの飛行許可について教えて")
NEW_ANSWER = "公園や河川敷でドローンを飛ばすときは、その施設の管理者への届出が必要です。"


def _texts(messages: list[dict[str, Any]]) -> str:
    return "\n".join(m.get("text", "") for m in messages)


def _ask_unanswered(chat: Chat, text: str) -> None:
    """A resident asks; after 「もしかして」 they tap 「どれでもない」: either way the question is kept."""
    messages = chat.says(text)
    offered = [i["action"] for m in messages for i in m.get("quickReply", {}).get("items", [])
               if i["action"]["label"] == "どれでもない"]
    if offered:
        action = offered[0]
        messages = chat.taps(action["data"]) if action["type"] == "postback" else chat.says(action["text"])
    assert "お答えできません" in _texts(messages), _texts(messages)


def _cluster_card(browser: Any, question: str) -> Any:
    (card,) = [c for c in browser.find_elements(By.CSS_SELECTOR, "#cluster-list .cluster") if question in c.text]
    return card


def test_unanswered_questions_review(site: tuple[Flask, str], browser: Any, fake_line: FakeLinePlatform) -> None:
    """Residents' questions the bot could not answer appear grouped; FAQ staff mark one group out
    of scope with a reason, and write a new entry from the other; a resident then gets its answer."""
    app, base = site
    _add_user(app, "yamada", "faq")
    resident = Chat(app.test_client(), fake_line, "U" + "5" * 32)
    for question in OFF_TOPIC + NEW_TOPIC:
        _ask_unanswered(resident, question)

    browser.get(base + "/admin/faq/review")
    _type_login(browser, "yamada", PASSWORD)
    browser.find_element(By.ID, "login-submit").click()
    _h1(browser, "未回答の確認")
    assert "未対応の質問 4 件 → 2 のまとまり" in browser.find_element(By.ID, "review-summary").text
    screenshot(browser, "review-1-clusters")

    # Out of scope, with the reason.
    _cluster_card(browser, "ラーメン").find_element(By.LINK_TEXT, "対応する").click()
    _h1(browser, "未回答のまとまり")
    browser.find_element(By.ID, "reason").send_keys("市の業務ではないため（飲食店の案内）")
    screenshot(browser, "review-2-cluster")
    browser.find_element(By.ID, "out-of-scope-submit").click()
    _flash(browser, "対象外にしました")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#cluster-list .cluster")) == 1
    browser.find_element(By.LINK_TEXT, "対応の記録").click()
    _h1(browser, "対応の記録")
    assert "市の業務ではないため" in browser.find_element(By.ID, "decision-table").text
    screenshot(browser, "review-3-decisions")

    # A new entry from the other group: the form comes prefilled with its questions.
    browser.find_element(By.LINK_TEXT, "未回答の確認").click()
    _cluster_card(browser, "ドローン").find_element(By.LINK_TEXT, "対応する").click()
    _h1(browser, "未回答のまとまり")
    browser.find_element(By.ID, "create-from-cluster").click()
    _wait(browser).until(EC.presence_of_element_located((By.ID, "entry-form")))
    prefilled = browser.find_element(By.ID, "question").get_attribute("value") + browser.find_element(By.ID, "alternates").get_attribute("value")
    assert all(q in prefilled for q in NEW_TOPIC), prefilled
    title = browser.find_element(By.ID, "title")
    title.clear()
    title.send_keys("ドローンの飛行")
    browser.find_element(By.ID, "answer").send_keys(NEW_ANSWER)
    screenshot(browser, "review-4-new-entry")
    browser.find_element(By.ID, "save-button").click()
    _flash(browser, "新しい項目「ドローンの飛行」を作成しました。")
    screenshot(browser, "review-5-created")
    with get_db(app).session() as session:
        created = session.scalar(select(FaqEntry).where(FaqEntry.municipality == CITY, FaqEntry.title == "ドローンの飛行"))
        assert created is not None and created.is_published
    browser.get(base + "/admin/faq/review")
    _wait(browser).until(EC.presence_of_element_located((By.ID, "review-empty")))

    assert NEW_ANSWER in _texts(resident.says(NEW_TOPIC[0]))


# --- ユーザーと権限の管理 ---------------------------------------------------------------------------


def test_users_and_roles(site: tuple[Flask, str], browser: Any) -> None:
    """An admin creates a member of FAQ staff, changes their role, deactivates them (they can no
    longer log in) and sees every step in the audit log."""
    app, base = site
    _add_user(app, "boss", "admin")
    wait = _wait(browser)

    browser.get(base + "/admin/")
    _type_login(browser, "boss", PASSWORD)
    browser.find_element(By.ID, "login-submit").click()
    _h1(browser, "ダッシュボード")
    browser.find_element(By.LINK_TEXT, "ユーザー管理").click()
    wait.until(EC.visibility_of_element_located((By.ID, "create-user")))
    browser.find_element(By.ID, "new-username").send_keys("suzuki")
    browser.find_element(By.ID, "new-password").send_keys(PASSWORD)
    browser.find_element(By.ID, "new-password-confirm").send_keys(PASSWORD)
    Select(browser.find_element(By.ID, "new-role")).select_by_value("faq")
    screenshot(browser, "users-1-create")
    browser.find_element(By.ID, "create-user-submit").click()
    _flash(browser, "ユーザー「suzuki」を作成しました（権限: FAQ担当）")
    screenshot(browser, "users-2-created")

    row = browser.find_element(By.CSS_SELECTOR, "tr[data-username='suzuki']")
    Select(row.find_element(By.NAME, "role")).select_by_value("pr")
    row.find_element(By.XPATH, ".//button[normalize-space()='権限を変更']").click()
    _flash(browser, "ユーザー「suzuki」の権限を「広報（お知らせ配信）」にしました。")
    row = browser.find_element(By.CSS_SELECTOR, "tr[data-username='suzuki']")
    row.find_element(By.XPATH, ".//button[normalize-space()='無効化']").click()
    _flash(browser, "ユーザー「suzuki」を無効にしました。")
    assert "無効" in browser.find_element(By.CSS_SELECTOR, "tr[data-username='suzuki']").text
    screenshot(browser, "users-3-role-changed-and-deactivated")

    browser.find_element(By.LINK_TEXT, "監査ログ").click()
    _h1(browser, "監査ログ")
    log = browser.find_element(By.ID, "audit-table").text
    for action in ("ユーザー無効化", "権限変更"):
        assert action in log, log
    screenshot(browser, "users-4-audit-log")

    _log_out(browser)
    _type_login(browser, "suzuki", PASSWORD)
    browser.find_element(By.ID, "login-submit").click()
    _flash(browser, "ユーザー名またはパスワードが正しくありません。")
    screenshot(browser, "users-5-deactivated-cannot-log-in")


# --- 住民の会話（シミュレーター） --------------------------------------------------------------------


def _bot_texts(browser: Any) -> list[str]:
    return browser.execute_script(
        "return Array.from(document.querySelectorAll('#transcript .row.bot')).map(function (r) { return r.innerText; });"
    )


def _until_bot_says(browser: Any, before: int, text: str) -> str:
    """Wait for a bot bubble after the first `before` ones that contains `text`; return it."""
    def found(d: Any) -> str | None:
        return next((t for t in _bot_texts(d)[before:] if text in t), None)
    result: str = _wait(browser).until(found)
    return result


def _tap(browser: Any, label: str, then: str) -> str:
    before = len(_bot_texts(browser))
    _wait(browser).until(lambda d: d.find_element(
        By.XPATH, f"//button[contains(@class,'quick-reply') and normalize-space()='{label}']").click() or True)
    return _until_bot_says(browser, before, then)


def _say(browser: Any, text: str, then: str) -> str:
    before = len(_bot_texts(browser))
    box = browser.find_element(By.ID, "message")
    box.send_keys(text)
    box.send_keys(Keys.ENTER)
    return _until_bot_says(browser, before, then)


def test_a_resident_conversation_in_the_simulator(site: tuple[Flask, str], browser: Any) -> None:
    """As a resident: add the account, consent and register, ask a question and rate the answer,
    pick from 「もしかして」 by number, open 「設定」."""
    _app, base = site
    browser.get(base + "/simulator")
    browser.execute_script("window.localStorage.clear()")
    browser.get(base + "/simulator")
    _wait(browser).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#resident-list .resident"))
    screenshot(browser, "simulator-1-start")

    browser.find_element(By.XPATH, "//button[normalize-space()='友だち追加']").click()
    _until_bot_says(browser, 0, "同意した日時")  # the privacy notice, with 「同意して登録する」
    screenshot(browser, "simulator-2-follow-and-privacy-notice")
    _tap(browser, "同意して登録する", "【1/4】年代")
    _tap(browser, "40代", "【2/4】性別")
    _tap(browser, "回答しない", "【3/4】地域")
    _tap(browser, "石下地区", "【4/4】関心のある分野")
    _tap(browser, "子育て", "選択中：子育て")
    _tap(browser, "決定", "登録が完了しました")
    screenshot(browser, "simulator-3-registered")

    _say(browser, "住民票をコンビニで取りたい", "この回答は役に立ちましたか？")
    screenshot(browser, "simulator-4-answer")
    _tap(browser, "はい", "")
    assert "もしかして" in _say(browser, "手続き", "")  # one vague word: three numbered choices
    _say(browser, "1", "この回答は役に立ちましたか？")
    screenshot(browser, "simulator-5-clarify-by-number")
    _say(browser, "設定", "現在の登録内容です")
    screenshot(browser, "simulator-6-settings")
