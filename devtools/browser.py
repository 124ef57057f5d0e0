"""Debian's headless Chromium driven through Debian's chromedriver (selenium), with no network.

The status page's tests and ``python -m devtools.status_page_shot`` use it. Every flag that would
make Chromium reach out (component updates, sync, background networking, QUIC) is off, and each
session gets a fresh profile folder, so nothing of one run reaches the next.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

#: What Chromium runs with here: headless, as root in a container (no sandbox), and silent.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
)


@contextmanager
def headless_chromium(profile: Path) -> Iterator[webdriver.Chrome]:
    """A Chromium session with its profile in ``profile`` (a fresh, empty folder)."""
    options = Options()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    # Selenium Manager, which would look for drivers on the network, is not used: both paths are given.
    os.environ.setdefault("SE_AVOID_STATS", "true")
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def set_viewport(driver: webdriver.Chrome, width: int, height: int, *, mobile: bool) -> None:
    """Make the page's viewport exactly ``width`` x ``height`` CSS pixels (a phone with
    ``mobile``: its meta viewport applies), as the DevTools device toolbar does."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile},
    )


def full_page_screenshot(driver: webdriver.Chrome, path: Path, width: int, *, mobile: bool) -> None:
    """A PNG of the whole page at ``width``: the viewport is made as tall as the page first."""
    set_viewport(driver, width, 800, mobile=mobile)
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    set_viewport(driver, width, height, mobile=mobile)
    path.write_bytes(driver.get_screenshot_as_png())
