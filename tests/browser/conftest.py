"""Browser tests: a headless Chromium driven by the system chromedriver."""

from __future__ import annotations

import base64
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Screenshots of the walkthroughs: kept by CI as artefacts (.ci/run prints where), never committed.
ARTIFACTS = ROOT / ".ci" / "artifacts"
ARTIFACT_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
MAX_SCREENSHOT_HEIGHT = 4000  # px; a longer page is cut there

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
MISSING_BROWSER = "needs /usr/bin/chromium and /usr/bin/chromedriver (CI: apt-get install chromium chromium-driver)"
HAVE_BROWSER = CHROMIUM.exists() and CHROMEDRIVER.exists()

# Quiet, offline, reproducible: no first-run UI, updates, sync or background traffic.
CHROME_ARGS = (
    "--headless=new",
    "--no-sandbox",  # containers run as root without user namespaces
    "--disable-gpu",
    "--disable-dev-shm-usage",  # small /dev/shm in containers crashes tabs
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1100,860",
    "--lang=ja",
)


@pytest.fixture
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A fresh headless Chromium (own profile directory) per test; skipped when none is installed."""
    if not HAVE_BROWSER:
        pytest.skip(MISSING_BROWSER)
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    from selenium.webdriver.chrome.service import Service

    profile = tmp_path_factory.mktemp("chromium-profile")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in CHROME_ARGS:
        options.add_argument(arg)
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def page_wait(browser: Any, timeout: float) -> Any:
    """A WebDriverWait that asks again when the page changes under it: a stale element, or Chromium
    answering that the node it found has left the document (a plain WebDriverException)."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout, ignored_exceptions=(WebDriverException,))


def log_in(browser: Any, url: str, username: str, password: str, landing_h1: str, timeout: float = 30.0) -> None:
    """Open `url` (the login form, or a page that sends there), sign in, wait for the landing page's heading."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)
    wait = WebDriverWait(browser, timeout)
    wait.until(EC.visibility_of_element_located((By.ID, "username")))
    browser.find_element(By.ID, "username").send_keys(username)
    browser.find_element(By.ID, "password").send_keys(password)
    browser.find_element(By.ID, "login-submit").click()
    page_wait(browser, timeout).until(EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), landing_h1))


def screenshot(driver: Any, name: str) -> Path:
    """Save the whole page the browser shows (not only the window) as .ci/artifacts/NAME.png and
    return the path. NAME is lowercase ASCII words joined by hyphens, e.g. "login-2-dashboard":
    one directory for every test, so name it after the task and step."""
    if not ARTIFACT_NAME.match(name):
        raise ValueError(f"screenshot name {name!r}: use lowercase letters, digits and hyphens")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    try:
        metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
        page, window = metrics["cssContentSize"], metrics["cssLayoutViewport"]
    except Exception:  # noqa: BLE001 - a driver without the DevTools protocol: the window only
        page = window = None
    if page is None or page["height"] <= window["clientHeight"]:
        driver.save_screenshot(str(path))  # fits the window (the simulator scrolls inside it)
        return path
    clip = {"x": 0, "y": 0, "width": max(page["width"], window["clientWidth"]),
            "height": min(page["height"], MAX_SCREENSHOT_HEIGHT), "scale": 1}
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip})
    path.write_bytes(base64.b64decode(shot["data"]))
    return path
