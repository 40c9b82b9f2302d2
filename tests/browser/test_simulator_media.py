"""Locations and photos in the chat simulator, in headless Chromium: a resident finds the nearest
open shelter (location from the panel, hazard, shelter cards) and reports a pothole with a photo
file and a location; the report then shows in /admin/reports for a `reports` user."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from bot import auth
from bot.db import get_db
from bot.sandbox.fake_line import FakeLinePlatform
from bot.sandbox.simulator import SIMULATED_RESIDENTS
from reports.models import PHOTO_ATTACHED, RECEIVED, Report
from tests.browser.conftest import HAVE_BROWSER, MISSING_BROWSER, log_in, page_wait, screenshot
from tests.conftest import webhook_served

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not HAVE_BROWSER, reason=MISSING_BROWSER)]

pytest.importorskip("selenium", reason="selenium is not installed")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

WAIT = 60  # seconds; shared CI machines
DATA = Path(__file__).resolve().parents[1] / "data"
SITES = DATA / "shelters-standard-sites.csv"  # generated test data: no real shelter
HOME = ("36.649", "140.149")  # inside the generated data's box, nearest to テスト第一避難所
PASSWORD = "tsuho-password-1357"


@pytest.fixture
def media_app(make_app: Any, fake_line_server: Any, tmp_path: Path) -> Flask:
    """A development app with the simulator on, the generated shelters imported and 001-004 open."""
    _fake, served = fake_line_server
    app = make_app(APP_ENV="development", SIMULATOR_ENABLED=True, FAKE_LINE_URL=served.url,
                   REPORT_PHOTO_DIR=str(tmp_path / "photos"))
    runner = app.test_cli_runner()
    assert runner.invoke(args=["shelters", "import", str(SITES)]).exit_code == 0
    assert runner.invoke(args=["shelters", "open", "1", "2", "3", "4"]).exit_code == 0
    return app


@pytest.fixture
def served(media_app: Flask, fake_line: FakeLinePlatform) -> Iterator[str]:
    """The app over HTTP; the fake platform posts its webhooks to it."""
    with webhook_served(media_app, fake_line) as url:
        yield url


def _open(browser: Any, url: str, user: str) -> WebDriverWait:
    """The simulator with nothing remembered, as resident `user`, who has added the account."""
    browser.get(url)
    browser.execute_script("window.localStorage.clear()")
    browser.get(url)
    wait = page_wait(browser, WAIT)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, f"#resident-list .resident[data-user='{user}']"))
    _click(wait, f"//button[@data-user='{user}']")
    wait.until(lambda d: d.find_element(By.ID, "user-id").text == user)
    before = _bot_count(browser)
    browser.find_element(By.XPATH, "//button[normalize-space()='友だち追加']").click()
    wait.until(lambda d: _bot_count(d) > before)
    return wait


def _click(wait: WebDriverWait, xpath: str) -> None:
    """Click an element that polling may re-render at any moment (stale references are retried)."""
    wait.until(lambda d: d.find_element(By.XPATH, xpath).click() or True)


def _bot_count(browser: Any) -> int:
    return len(browser.find_elements(By.CSS_SELECTOR, "#transcript .row.bot"))


def _transcript(browser: Any) -> str:
    return str(browser.execute_script("return document.getElementById('transcript').innerText"))


def _say(browser: Any, wait: WebDriverWait, text: str) -> None:
    before = _bot_count(browser)
    box = browser.find_element(By.ID, "message")
    box.send_keys(text)
    box.send_keys(Keys.ENTER)
    wait.until(lambda d: _bot_count(d) > before)


def _quick_reply(wait: WebDriverWait, label: str) -> None:
    _click(wait, f"//button[contains(@class,'quick-reply') and normalize-space()='{label}']")


def _send_location(browser: Any, wait: WebDriverWait, lat: str, lon: str) -> None:
    """Fill the open location panel and send; wait for the bot's answer."""
    wait.until(lambda d: d.find_element(By.ID, "location-panel").is_displayed())
    for field, value in (("location-lat", lat), ("location-lon", lon)):
        box = browser.find_element(By.ID, field)
        box.clear()
        box.send_keys(value)
    before = _bot_count(browser)
    browser.find_element(By.ID, "location-send").click()
    wait.until(lambda d: _bot_count(d) > before)
    assert not browser.find_element(By.ID, "location-panel").is_displayed()


def _pothole_jpeg(path: Path) -> Path:
    """A small generated JPEG (a grey square with a dark blot), written for this test."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (96, 72), (150, 150, 150))
    ImageDraw.Draw(image).ellipse((30, 20, 66, 52), fill=(40, 35, 30))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    path.write_bytes(out.getvalue())
    return path


def test_a_resident_sends_a_location_from_the_panel_and_sees_open_shelters(
        browser: Any, served: str, fake_line: FakeLinePlatform) -> None:
    user = SIMULATED_RESIDENTS[0]["userId"]
    wait = _open(browser, served + "/simulator", user)
    # The panel's preset points come from the imported data (never a named real place).
    presets = [b.get_attribute("textContent") for b in browser.find_elements(By.CSS_SELECTOR, ".preset-place")]
    assert presets[0] == "登録済み避難所の中心" and len(presets) == 4

    _say(browser, wait, "避難所")
    assert "位置情報を送る" in _transcript(browser)
    _quick_reply(wait, "位置情報を送る")  # LINE's location action opens the panel
    _send_location(browser, wait, *HOME)
    assert "位置情報: 36.649, 140.149" in _transcript(browser)
    wait.until(lambda d: "どの災害から避難しますか" in _transcript(d))
    screenshot(browser, "simulator-media-1-location")

    before = _bot_count(browser)
    _quick_reply(wait, "洪水")
    wait.until(lambda d: _bot_count(d) >= before + 2)
    cards = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "#transcript .flex-carousel .flex-bubble")]
    # Open and for floods, nearest first: 001, 003, 004 (002 is not for floods, 005 is closed).
    assert [c.splitlines()[0] for c in cards] == ["テスト第一避難所", "テスト第三避難所", "テスト第四避難所"]
    assert "テスト県テスト市本町1-1" in cards[0] and "地図で見る" in cards[0]
    assert "近い順に3か所" in _transcript(browser)

    # The "+" of the input bar sends a location at any time, here from a preset point.
    before = _bot_count(browser)
    browser.find_element(By.ID, "attach").click()
    browser.find_element(By.ID, "attach-location").click()
    browser.find_element(By.XPATH, "//button[@class='preset-place' and normalize-space()='中心から北へ約1km']").click()
    assert browser.find_element(By.ID, "location-lat").get_attribute("value").startswith("36.6")
    screenshot(browser, "simulator-media-2-panel")
    browser.find_element(By.ID, "location-send").click()
    wait.until(lambda d: _bot_count(d) > before)
    assert not browser.find_elements(By.CSS_SELECTOR, "#transcript .failed")
    screenshot(browser, "simulator-media-2-shelters-again")


def test_a_resident_reports_a_pothole_with_a_photo_and_staff_see_it(
        browser: Any, served: str, media_app: Flask, fake_line: FakeLinePlatform, tmp_path: Path) -> None:
    with get_db(media_app).session() as session:
        auth.create_user(session, "doboku", PASSWORD, "reports")
    user = SIMULATED_RESIDENTS[1]["userId"]
    wait = _open(browser, served + "/simulator", user)

    _say(browser, wait, "通報")
    before = _bot_count(browser)
    _quick_reply(wait, "道路")
    wait.until(lambda d: _bot_count(d) > before and "写真を選ぶ" in _transcript(d))

    # 写真を選ぶ (LINE's cameraRoll action) opens the file picker; the test gives it a JPEG.
    _quick_reply(wait, "写真を選ぶ")
    before = _bot_count(browser)
    browser.find_element(By.ID, "image-file").send_keys(str(_pothole_jpeg(tmp_path / "pothole.jpg")))
    wait.until(lambda d: _bot_count(d) > before and "写真を受け取りました" in _transcript(d))
    thumbnail = browser.find_element(By.CSS_SELECTOR, "#transcript .row.me .me-media img")
    assert thumbnail.get_attribute("src").startswith("data:image/jpeg")
    assert browser.execute_script("return arguments[0].naturalWidth", thumbnail) > 0
    assert any(r.path.endswith("/content") for r in fake_line.requests)  # the bot fetched it from "LINE"

    _quick_reply(wait, "位置情報を送る")
    _send_location(browser, wait, *HOME)
    wait.until(lambda d: "場所を受け取りました" in _transcript(d))
    _say(browser, wait, "歩道に深さ10cmほどの穴があります")
    wait.until(lambda d: "この内容で市に送りますか" in _transcript(d))
    assert "写真：あり" in _transcript(browser)
    screenshot(browser, "simulator-media-3-report-summary")
    before = _bot_count(browser)
    _quick_reply(wait, "送信")
    wait.until(lambda d: _bot_count(d) > before and "通報を受け付けました" in _transcript(d))

    with get_db(media_app).session() as session:
        report = session.scalars(select(Report).where(Report.status == RECEIVED)).one()
        number, photo = str(report.number), report.photo_status
        assert (report.category, report.latitude, report.longitude) == ("道路", 36.649, 140.149)
    assert photo == PHOTO_ATTACHED and number in _transcript(browser)

    log_in(browser, served + "/admin/reports", "doboku", PASSWORD, "住民からの通報", WAIT)
    assert number in browser.find_element(By.ID, "report-table").text
    browser.find_element(By.LINK_TEXT, number).click()
    wait.until(lambda d: number in d.find_element(By.TAG_NAME, "h1").text)
    assert "歩道に深さ10cmほどの穴があります" in browser.find_element(By.TAG_NAME, "body").text
    photo_img = browser.find_element(By.ID, "report-photo")
    assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", photo_img) == 96
    screenshot(browser, "simulator-media-4-inbox")
