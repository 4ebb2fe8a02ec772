"""What the browser tests share: Debian's headless Chromium under Selenium, a real
`edge run` with a console, and reading back what a page drew.

The browser is /usr/bin/chromium with /usr/bin/chromedriver (deploy/setup.sh installs
both); Selenium Manager is kept offline, since a browser downloaded at run time does
not run on these machines. Screenshots go under pytest's base temp dir
(``console-screenshots/``), kept with the run's other artefacts.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
PHONE = (390, 844)  # a phone's CSS pixels (an iPhone 12-15)
DESKTOP = (1024, 900)
MAX_SHOT_PX = 2000


def new_browser(size: tuple[int, int] = DESKTOP) -> webdriver.Chrome:
    """Headless Chromium at ``size`` CSS pixels, its console log kept for failures."""
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never fetch a browser
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--disable-extensions", "--hide-scrollbars",
                f"--window-size={size[0]},{size[1]}"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


def page_data(browser: webdriver.Chrome, name: str) -> Any:
    """What a page exposed as ``window.__consoleData[name]`` (JSON round-trip)."""
    return json.loads(browser.execute_script(
        "return JSON.stringify((window.__consoleData || {})[arguments[0]] ?? null)", name))


def wait_page(browser: webdriver.Chrome, pred: Callable[[], Any], what: str,
              timeout: float = 20) -> Any:
    """Poll ``pred`` until it is truthy; on time-out, say what and show the page's errors."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.1)
    errors = browser.execute_script("const e = document.getElementById('error'); "
                                    "return e ? e.textContent : ''")
    log = [e["message"] for e in browser.get_log("browser")]
    raise AssertionError(f"timed out after {timeout}s waiting for {what} on {browser.current_url}; "
                         f"page error: {errors!r}; browser log: {log}")


def severe_log(browser: webdriver.Chrome) -> list[str]:
    """The browser's errors since the last call: script errors, failed requests."""
    return [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]


def page_weight(browser: webdriver.Chrome) -> dict[str, int]:
    """Bytes of this page's load: the document and every resource it fetched, as sent
    (gzipped where the server gzipped; a cached file still counts), but not the endless
    event stream."""
    return browser.execute_script("""
        const out = {};
        const nav = performance.getEntriesByType("navigation")[0];
        out[nav.name] = nav.encodedBodySize;
        for (const r of performance.getEntriesByType("resource")) {
            if (!r.name.includes("/api/stream")) out[r.name] = (out[r.name] || 0) + r.encodedBodySize;
        }
        return out;""")


def screenshot(browser: webdriver.Chrome, directory: Path, name: str) -> Path:
    """The page as ``directory/name.png``: the whole of it, up to ``MAX_SHOT_PX`` tall (a
    taller window made the renderer miss the driver's deadline)."""
    directory.mkdir(parents=True, exist_ok=True)
    size = browser.get_window_size()
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(size["width"], min(max(height + 100, 400), MAX_SHOT_PX))
    path = directory / f"{name}.png"
    try:
        browser.save_screenshot(str(path))
    finally:
        browser.set_window_size(size["width"], size["height"])
    return path
