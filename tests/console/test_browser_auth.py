"""A console bound beyond loopback, through a real browser: without its token every page,
file and API answer 401 and nothing else; opened with ``?token=`` the pages carry it on
to their stylesheets, scripts, API calls, event stream and links, and work."""

from __future__ import annotations

import pytest

from tests.console._browser import new_browser, page_data, screenshot, severe_log, wait_page
from tests.edge._helpers import serial_device, start_edge, stop_edge, write_config
from tests.fixtures.mosquitto import free_port

pytestmark = pytest.mark.timeout(120)

TOKEN = "s3cret-console-token-for-tests"
DENIED = "401: this console needs a token or a user and password"


def test_beyond_loopback_the_pages_want_the_token(tmp_path, pty_device) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    config, _ = write_config(tmp_path, serial_device("room-1", "temperature", str(pty_device.link), "text"),
                             extra=f'[console]\naddress = "0.0.0.0:{port}"\ntoken = "{TOKEN}"\n')
    edge_log = tmp_path / "edge.log"
    edge = start_edge(config, edge_log)
    browser = new_browser()
    url = f"http://127.0.0.1:{port}"
    try:
        pty_device.wait_reader(timeout=30)
        pty_device.write(b"21.5\n")
        for path in ["/", "/devices/room-1", "/static/js/common.js", "/static/console.css",
                     "/api/overview", "/api/stream", f"/?token={TOKEN[:-1]}"]:
            browser.get(url + path)
            assert browser.find_element("tag name", "body").text == DENIED, path
            assert page_data(browser, "overview") is None
        severe_log(browser)  # the 401s above, logged by the browser as failed loads

        browser.get(f"{url}/?token={TOKEN}")
        wait_page(browser, lambda: browser.execute_script(
            "const r = document.querySelector('#devices tr[data-device=\"room-1\"] [data-field=last]');"
            "return r && r.textContent") == "temperature_c=21.5", "room-1's 21.5 on the overview")
        # The stylesheet came too (styles applied), and the event stream is open with the token.
        assert browser.execute_script(
            "return getComputedStyle(document.querySelector('header')).display") == "flex"
        wait_page(browser, lambda: browser.find_element("id", "live").text == "live", "the live stream")
        pty_device.write(b"22.5\n")
        wait_page(browser, lambda: browser.execute_script(
            "return document.querySelector('#devices tr[data-device=\"room-1\"] [data-field=last]')"
            ".textContent") == "temperature_c=22.5", "22.5 through the stream")
        # Links carry the token: the device page opens from the overview and plots.
        link = browser.find_element("css selector", "#devices a[href^='/devices/']")
        assert f"token={TOKEN}" in (link.get_attribute("href") or "")
        link.click()
        data = wait_page(browser, lambda: (d := page_data(browser, "device")) and
                         (d["plots"].get("Temperature (°C)") or {}).get("ts_ms") and d,
                         "room-1's plot behind the token")
        assert data["plots"]["Temperature (°C)"]["values"]["temperature_c"][-2:] == [21.5, 22.5]
        assert not severe_log(browser)
        screenshot(browser, tmp_path, "device-with-token")
    finally:
        browser.quit()
        rc = stop_edge(edge, edge_log)
    assert rc == 0, edge_log.read_text()
