"""The chat simulator in headless Chromium: a resident adds the bot, asks, and taps buttons."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask

from bot.db import get_db
from bot.sandbox.fake_line import FakeLinePlatform
from bot.sandbox.simulator import SIMULATED_RESIDENTS
from segments.service import get_resident
from tests.browser.conftest import page_wait
from tests.conftest import _empty_tables, webhook_served

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOT = Path(os.environ.get("SIMULATOR_SCREENSHOT", "/tmp/simulator.png"))
WAIT = 60  # seconds; CI machines are shared and the first answer builds the FAQ index

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
        reason="needs /usr/bin/chromium and /usr/bin/chromedriver (apt install chromium chromium-driver)",
    ),
]

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

# Images in test messages point nowhere reachable: the page must still lay out and work.
IMAGE_URL = "https://example.invalid/juminhyo.png"

GUIDE_FLEX = {
    "type": "flex",
    "altText": "手続きのご案内",
    "contents": {
        "type": "bubble",
        "hero": {"type": "image", "url": IMAGE_URL, "size": "full", "aspectRatio": "20:13", "aspectMode": "cover"},
        "body": {
            "type": "box",
            "layout": "vertical",
            "contents": [
                {"type": "text", "text": "住民票の写し", "weight": "bold", "size": "lg"},
                {"type": "separator", "margin": "md"},
                {"type": "text", "text": "マイナンバーカードがあれば\nコンビニで取れます。", "wrap": True, "size": "sm"},
            ],
        },
        "footer": {
            "type": "box",
            "layout": "vertical",
            "contents": [
                {
                    "type": "button",
                    "style": "primary",
                    "action": {"type": "message", "label": "手数料は？", "text": "手数料はいくら？"},
                },
                {
                    "type": "button",
                    "style": "link",
                    "action": {"type": "uri", "label": "市のサイト", "uri": "https://example.com/"},
                },
            ],
        },
    },
}

CHOICE_TEXT = {
    "type": "text",
    "text": "どちらについて知りたいですか？\n詳しくは https://example.com/juminhyo をご覧ください。",
    "quickReply": {
        "items": [
            {
                "type": "action",
                "action": {
                    "type": "postback",
                    "label": "住民票",
                    "data": json.dumps({"a": "pick", "t": "juminhyo"}),
                    "displayText": "住民票について",
                },
            },
            {"type": "action", "action": {"type": "message", "label": "戸籍", "text": "戸籍について"}},
        ]
    },
}


def _own_chrome() -> Any:
    """Headless Chromium driven by the system chromedriver."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,860", "--lang=ja"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = webdriver.ChromeService(executable_path=str(CHROMEDRIVER))
    return webdriver.Chrome(options=options, service=service)


@pytest.fixture
def chrome(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The shared `browser` fixture of tests/browser/conftest.py when there is one, else our own."""
    try:
        yield request.getfixturevalue("browser")
        return
    except pytest.FixtureLookupError:
        pass
    driver = _own_chrome()
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def simulator_app(make_app: Callable[..., Flask], fake_line_server: Any) -> Flask:
    """A development app with the simulator on, pointed at the fake platform."""
    _fake, served = fake_line_server
    app = make_app(APP_ENV="development", SIMULATOR_ENABLED=True, FAKE_LINE_URL=served.url)
    _empty_tables(app)
    return app


@pytest.fixture
def simulator_url(simulator_app: Flask, fake_line: FakeLinePlatform) -> Iterator[str]:
    """The simulator page over HTTP; the fake platform posts its webhooks to this app."""
    with webhook_served(simulator_app, fake_line) as url:
        yield url + "/simulator"


def _open(chrome: Any, url: str) -> WebDriverWait:
    """Open the page with nothing remembered from an earlier run."""
    chrome.get(url)
    chrome.execute_script("window.localStorage.clear()")
    chrome.get(url)
    wait = page_wait(chrome, WAIT)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#resident-list .resident"))
    return wait


def _rows(chrome: Any) -> list[tuple[str, str]]:
    """The transcript as (who, text) pairs, top to bottom (read in one go: rows get re-rendered)."""
    rows = chrome.execute_script(
        "return Array.from(document.querySelectorAll('#transcript .row')).map(function (row) {"
        "  var who = ['me', 'bot', 'system'].find(function (c) { return row.classList.contains(c); });"
        "  return [who, row.innerText];"
        "});"
    )
    return [(who, text) for who, text in rows]


def _click(wait: WebDriverWait, xpath: str) -> None:
    """Click an element that polling may re-render at any moment (stale references are retried)."""
    wait.until(lambda d: d.find_element(By.XPATH, xpath).click() or True)


def _bot_count(chrome: Any) -> int:
    return len(chrome.find_elements(By.CSS_SELECTOR, "#transcript .row.bot"))


def _say(chrome: Any, wait: WebDriverWait, text: str) -> None:
    """Type into the composer and press Enter; wait for the bot to answer."""
    before = _bot_count(chrome)
    box = chrome.find_element(By.ID, "message")
    box.send_keys(text)
    box.send_keys(Keys.ENTER)
    wait.until(lambda d: _bot_count(d) > before)


def _severe_console_errors(chrome: Any) -> list[str]:
    try:
        entries = chrome.get_log("browser")
    except Exception:  # noqa: BLE001 - a shared fixture may not enable logs
        return []
    return [e["message"] for e in entries if e["level"] == "SEVERE" and "favicon.ico" not in e["message"]]


def test_resident_follows_asks_and_is_answered(chrome: Any, simulator_url: str, fake_line: FakeLinePlatform) -> None:
    wait = _open(chrome, simulator_url)
    assert "LINE シミュレーター" in chrome.title
    resident = SIMULATED_RESIDENTS[0]
    assert chrome.find_element(By.ID, "user-id").text == resident["userId"]

    chrome.find_element(By.XPATH, "//button[normalize-space()='友だち追加']").click()
    wait.until(lambda d: "友だち追加ありがとうございます" in d.find_element(By.ID, "transcript").text)
    greeting = len(fake_line.delivered(resident["userId"]))
    wait.until(lambda d: _bot_count(d) == greeting)

    _say(chrome, wait, "住民票をコンビニで取りたい")
    wait.until(lambda d: _bot_count(d) == len(fake_line.delivered(resident["userId"])))
    rows = _rows(chrome)
    answers = len(fake_line.delivered(resident["userId"])) - greeting
    assert answers >= 1
    assert [who for who, _ in rows] == ["system"] + ["bot"] * greeting + ["me"] + ["bot"] * answers
    assert "住民票をコンビニで取りたい" in rows[1 + greeting][1]
    assert rows[-1][1].strip(), "the bot's answer is empty"
    assert fake_line.delivered(resident["userId"])[-1]["text"] in rows[-1][1]

    # Resident bubbles sit on the right, the bot's on the left.
    me = chrome.find_element(By.CSS_SELECTOR, "#transcript .row.me .bubble").rect
    bot = chrome.find_element(By.CSS_SELECTOR, "#transcript .row.bot .bubble").rect
    assert me["x"] > bot["x"] + 100

    # If the bot offered quick replies, tapping one goes through the webhook and gets an answer.
    quick = chrome.find_elements(By.CSS_SELECTOR, "#quick-replies .quick-reply")
    if quick:
        before = len(fake_line.requests)
        quick[0].click()
        wait.until(lambda d: len(fake_line.requests) > before)

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    chrome.save_screenshot(str(SCREENSHOT))
    assert not _severe_console_errors(chrome)


def test_quick_replies_and_flex_buttons_work(
    chrome: Any, simulator_url: str, fake_line_server: Any, fake_line: FakeLinePlatform
) -> None:
    _fake, served = fake_line_server
    user = SIMULATED_RESIDENTS[1]["userId"]
    wait = _open(chrome, simulator_url)
    chrome.find_element(By.XPATH, f"//button[@data-user='{user}']").click()
    wait.until(lambda d: d.find_element(By.ID, "user-id").text == user)

    # The bot pushes a flex bubble and a text with quick replies (as a future FAQ answer would).
    pushed = requests.post(
        served.url + "/v2/bot/message/push",
        json={"to": user, "messages": [GUIDE_FLEX, CHOICE_TEXT]},
        headers={"Authorization": "Bearer test-access-token"},
        timeout=10,
    )
    assert pushed.status_code == 200, pushed.text

    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#quick-replies .quick-reply"))
    transcript = chrome.find_element(By.ID, "transcript")
    assert "住民票の写し" in transcript.text
    assert chrome.find_element(By.CSS_SELECTOR, "#transcript .flex-hero img").get_attribute("src") == IMAGE_URL
    assert "マイナンバーカードがあれば\nコンビニで取れます。" in transcript.text
    link = chrome.find_element(By.CSS_SELECTOR, "#transcript a[href='https://example.com/juminhyo']")
    assert link.get_attribute("target") == "_blank"
    labels = [b.text for b in chrome.find_elements(By.CSS_SELECTOR, "#quick-replies .quick-reply")]
    assert labels == ["住民票", "戸籍"]
    chrome.save_screenshot(str(SCREENSHOT.with_name(SCREENSHOT.stem + "-quick-reply.png")))

    # Tapping the postback quick reply shows its displayText as the resident's bubble and
    # posts a postback event through the real webhook.
    chrome.find_element(By.XPATH, "//button[contains(@class,'quick-reply') and normalize-space()='住民票']").click()
    # (The bot may already have answered the postback, so the bubble need not be the last row.)
    wait.until(lambda d: any(who == "me" and "住民票について" in text for who, text in _rows(d)))
    wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, "#quick-replies .quick-reply"))
    wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, "#transcript .pending"))
    assert not chrome.find_elements(By.CSS_SELECTOR, "#transcript .failed")
    assert not chrome.find_element(By.ID, "status").is_displayed(), chrome.find_element(By.ID, "status").text

    # A message-action button in the flex bubble sends its text as the resident; the bot answers.
    _click(wait, "//button[contains(@class,'flex-button') and normalize-space()='手数料は？']")

    def answered(d: Any) -> bool:
        rows = _rows(d)
        mine = [i for i, (who, text) in enumerate(rows) if who == "me" and "手数料はいくら？" in text]
        return bool(mine) and rows[-1][0] == "bot" and mine[-1] < len(rows) - 1

    wait.until(answered)
    rows = _rows(chrome)
    last_me = max(i for i, (who, _) in enumerate(rows) if who == "me")
    assert "手数料はいくら？" in rows[last_me][1]
    assert rows[-1][0] == "bot" and last_me < len(rows) - 1

    # Switching residents shows each one's own conversation.
    _click(wait, f"//button[@data-user='{SIMULATED_RESIDENTS[0]['userId']}']")
    wait.until(lambda d: "手数料はいくら？" not in d.find_element(By.ID, "transcript").text)
    _click(wait, f"//button[@data-user='{user}']")
    wait.until(lambda d: "手数料はいくら？" in d.find_element(By.ID, "transcript").text)
    assert "住民票について" in chrome.find_element(By.ID, "transcript").text

    chrome.save_screenshot(str(SCREENSHOT.with_name(SCREENSHOT.stem + "-flex.png")))


def test_new_resident_and_block(chrome: Any, simulator_url: str, simulator_app: Flask) -> None:
    wait = _open(chrome, simulator_url)
    count = len(chrome.find_elements(By.CSS_SELECTOR, "#resident-list .resident"))
    chrome.find_element(By.XPATH, "//button[normalize-space()='＋ 新しい住民']").click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#resident-list .resident")) == count + 1)
    user = chrome.find_element(By.ID, "user-id").text
    assert user.startswith("U") and len(user) == 33 and user not in {r["userId"] for r in SIMULATED_RESIDENTS}
    assert "住民D" in chrome.find_element(By.CSS_SELECTOR, "#resident-list .resident.active").text

    chrome.find_element(By.XPATH, "//button[normalize-space()='友だち追加']").click()
    wait.until(lambda d: _bot_count(d) >= 1)
    assert _is_following(simulator_app, user) is True

    chrome.find_element(By.XPATH, "//button[normalize-space()='ブロック']").click()
    wait.until(lambda d: "ブロックしました" in d.find_element(By.ID, "transcript").text)
    assert not chrome.find_element(By.ID, "message").is_enabled()
    wait.until(lambda _d: _is_following(simulator_app, user) is False)


def _is_following(app: Flask, user: str) -> bool | None:
    """What the bot recorded about this resident (None: never heard of them)."""
    with get_db(app).session() as session:
        resident = get_resident(session, user)
        return None if resident is None else resident.is_following
