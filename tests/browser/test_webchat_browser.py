"""The homepage chat as a resident uses it: a city page on ANOTHER origin (its own port) embeds
the one-line widget; Chromium opens the chat, asks, picks a 「もしかして」 entry and votes with the
keyboard only; Esc closes it; nothing is fetched from a third server; a 360-px phone gets the
chat full-screen. Screenshots in .ci/artifacts/webchat-*.png."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from werkzeug.serving import make_server

from bot.db import get_db
from faq.models import QuestionLog
from faq.store import load_repo_kb
from tests.browser.conftest import page_wait, screenshot
from tests.conftest import LiveServer

pytestmark = pytest.mark.browser
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

UNSURE = "マイナンバー"  # 常総市: 「もしかして」

HOST_PAGE = """<!doctype html>
<html lang="ja"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>テスト市 公式ホームページ</title></head>
<body><h1>テスト市 公式ホームページ</h1><p><a href="#news" id="host-link">お知らせ</a></p>
<script src="{bot}/chat/widget.js" async></script>
</body></html>"""


class HostSite:
    """The city's own homepage: a page on its own port that embeds the widget."""

    def __init__(self) -> None:
        self.bot_url = ""
        self.server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.origin = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        body = HOST_PAGE.format(bot=self.bot_url).encode()
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body)))])
        return [body]


@pytest.fixture
def sites(make_app: Callable[..., Flask]) -> Iterator[tuple[HostSite, str, Flask]]:
    """The city's page and the bot (常総市's knowledge base), the bot allowing the page's origin."""
    host = HostSite()
    app = make_app(MUNICIPALITY="joso", WEBCHAT_ALLOWED_ORIGINS=host.origin)
    with get_db(app).session() as session:
        load_repo_kb(session, "joso")
    bot = LiveServer(app)
    host.bot_url = bot.url
    try:
        yield host, bot.url, app
    finally:
        bot.stop()
        host.server.shutdown()


def active(browser: Any) -> dict[str, str]:
    return browser.execute_script(
        "var e = document.activeElement; return {id: e.id || '', text: (e.textContent || '').trim(), tag: e.tagName};")


def press_until(browser: Any, backwards: bool, found: Callable[[dict[str, str]], bool], limit: int = 25) -> dict[str, str]:
    """Press Tab (Shift+Tab when backwards) until the focused element is the one wanted."""
    for _ in range(limit):
        chain = ActionChains(browser)
        if backwards:
            chain.key_down(Keys.SHIFT).send_keys(Keys.TAB).key_up(Keys.SHIFT)
        else:
            chain.send_keys(Keys.TAB)
        chain.perform()
        now = active(browser)
        if found(now):
            return now
    raise AssertionError(f"never reached the element; last focused: {active(browser)}")


def resources(browser: Any) -> list[str]:
    return browser.execute_script("return performance.getEntriesByType('resource').map(function (e) { return e.name; });")


def test_a_resident_uses_the_embedded_chat_with_the_keyboard_only(browser: Any, sites: tuple[HostSite, str, Flask]) -> None:
    host, bot_url, app = sites
    wait = page_wait(browser, 60)
    browser.get(host.origin + "/")
    wait.until(lambda d: d.find_elements(By.ID, "city-webchat-button"))
    assert host.origin != bot_url.rstrip("/") and bot_url.startswith("http://127.0.0.1:")
    screenshot(browser, "webchat-1-host-page")

    # Tab to the button, Enter opens the chat; the focus goes into it.
    press_until(browser, False, lambda a: a["id"] == "city-webchat-button")
    ActionChains(browser).send_keys(Keys.ENTER).perform()
    frame = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#city-webchat-panel iframe"))
    assert browser.find_element(By.ID, "city-webchat-button").get_attribute("aria-expanded") == "true"
    browser.switch_to.frame(frame)
    wait.until(lambda d: active(d)["id"] == "chat-input")

    # Ask; Enter sends. 「もしかして」 shows numbered choices.
    ActionChains(browser).send_keys(UNSURE, Keys.ENTER).perform()
    wait.until(lambda d: "もしかして、次の" in d.find_elements(By.CSS_SELECTOR, ".msg.bot")[-1].text)
    clarify = browser.find_elements(By.CSS_SELECTOR, ".msg.bot")[-1]
    assert "1. " in clarify.find_element(By.TAG_NAME, "p").text  # numbered in the text, as on LINE
    labels = [b.text for b in clarify.find_elements(By.CSS_SELECTOR, ".choice")]
    assert labels[0].startswith("1. ") and labels[-1] == "どれでもない"
    screenshot(browser, "webchat-2-clarify")

    # Shift+Tab back from the input to choice 1, Enter picks it: its answer and 「役に立ちましたか？」.
    press_until(browser, True, lambda a: a["text"].startswith("1. "))
    ActionChains(browser).send_keys(Keys.ENTER).perform()
    wait.until(lambda d: any(m.text.endswith("この回答は役に立ちましたか？\nはい\nいいえ")
                             for m in d.find_elements(By.CSS_SELECTOR, ".msg.bot")))
    assert active(browser)["id"] == "chat-input"
    press_until(browser, True, lambda a: a["text"] == "はい")
    ActionChains(browser).send_keys(Keys.ENTER).perform()
    wait.until(lambda d: "お役に立ててうれしいです" in d.find_elements(By.CSS_SELECTOR, ".msg.bot")[-1].text)
    assert browser.find_element(By.ID, "chat-log").get_attribute("aria-live") == "polite"
    screenshot(browser, "webchat-3-voted")
    inner = resources(browser)

    with get_db(app).session() as session:
        (row,) = session.scalars(select(QuestionLog)).all()
        assert (row.channel, row.decision, row.is_helpful) == ("web", "clarify", True)
        assert row.chosen_topic == row.candidates[0]["topic"]

    # Esc closes the chat and gives the focus back to the button.
    ActionChains(browser).send_keys(Keys.ESCAPE).perform()
    browser.switch_to.default_content()
    wait.until(lambda d: not d.find_element(By.ID, "city-webchat-panel").is_displayed())
    assert active(browser)["id"] == "city-webchat-button"
    assert browser.find_element(By.ID, "city-webchat-button").get_attribute("aria-expanded") == "false"

    # Nothing but the city's page and the bot was asked for anything; no script errors, no CSP refusals.
    for url in resources(browser) + inner:
        assert url.startswith((host.origin + "/", bot_url + "/")), url
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []


def test_on_a_360_px_phone_the_chat_fills_the_screen(browser: Any, sites: tuple[HostSite, str, Flask]) -> None:
    host, _bot_url, _app = sites
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": 360, "height": 740, "deviceScaleFactor": 1, "mobile": True})
    wait = page_wait(browser, 60)
    browser.get(host.origin + "/")
    button = wait.until(lambda d: d.find_element(By.ID, "city-webchat-button"))
    button.click()
    frame = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#city-webchat-panel iframe"))
    panel = browser.find_element(By.ID, "city-webchat-panel").rect
    assert (panel["x"], panel["width"]) == (0, 360)
    browser.switch_to.frame(frame)
    wait.until(lambda d: active(d)["id"] == "chat-input")
    ActionChains(browser).send_keys("戸籍謄本をコンビニで取りたいのですが", Keys.ENTER).perform()
    wait.until(lambda d: any("この回答は役に立ちましたか？" in m.text for m in d.find_elements(By.CSS_SELECTOR, ".msg.bot")))
    widths = browser.execute_script("return [document.documentElement.scrollWidth, document.documentElement.clientWidth];")
    assert widths[0] <= widths[1] == 360  # no sideways scrolling
    send = browser.find_element(By.ID, "chat-send").rect
    assert send["x"] + send["width"] <= 360
    screenshot(browser, "webchat-4-phone-360px")
    browser.find_element(By.ID, "chat-close").click()
    browser.switch_to.default_content()
    wait.until(lambda d: d.find_element(By.ID, "city-webchat-button").is_displayed())


def test_a_site_that_is_not_allowed_gets_no_button(browser: Any, make_app: Callable[..., Flask]) -> None:
    host = HostSite()
    app = make_app(MUNICIPALITY="joso")  # WEBCHAT_ALLOWED_ORIGINS empty: only the bot's own pages
    bot = LiveServer(app)
    host.bot_url = bot.url
    try:
        browser.get(host.origin + "/")
        WebDriverWait(browser, 30).until(lambda d: any("widget.js" in u for u in resources(d)))
        WebDriverWait(browser, 30).until(lambda d: d.execute_script("return document.readyState") == "complete")
        assert browser.find_elements(By.ID, "city-webchat-button") == []
        # And the chat page refuses to be framed there, whatever a page tries.
        browser.execute_script(
            "var f = document.createElement('iframe'); f.id = 'forced'; f.onload = function () { window.forcedLoaded = true; };"
            "f.src = arguments[0] + '/chat'; document.body.appendChild(f);", bot.url)
        WebDriverWait(browser, 30).until(lambda d: d.execute_script("return window.forcedLoaded === true"))
        browser.switch_to.frame(browser.find_element(By.ID, "forced"))
        assert browser.find_elements(By.ID, "chat-input") == []
    finally:
        bot.stop()
        host.server.shutdown()
