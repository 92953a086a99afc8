"""Open a page in Debian's headless Chromium and report its console errors, broken images and looks.

Test helper for every page tandem writes or serves (the explain report, the serve page). It drives
the system browser through the system driver (`/usr/bin/chromium`, `/usr/bin/chromedriver`,
installed by `make system-deps`); Selenium Manager, which would download a driver, is never run.
"""

from __future__ import annotations

import base64
import contextlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# Debian package -> the program it installs, which the tests look for on PATH.
SYSTEM_PROGRAMS = {"chromium": "chromium", "chromium-driver": "chromedriver", "graphviz": "dot"}
WINDOW_SIZE = (1280, 900)  # a fixed viewport, so screenshots of the same page compare
MAX_SCREENSHOT_HEIGHT = 16384  # CSS pixels; a runaway page still gives a readable PNG
LOAD_TIMEOUT_S = 20.0

# True for each <img> that finished loading with pixels: a missing file, a 404 or an undecodable
# data: URI leaves naturalWidth at 0 once `complete`.
_BROKEN_IMAGES_JS = """
return Array.from(document.images)
    .filter(image => !(image.complete && image.naturalWidth > 0))
    .map(image => image.currentSrc || image.getAttribute('src') || image.outerHTML);
"""
_IMAGES_SETTLED_JS = "return Array.from(document.images).every(image => image.complete);"


def missing_packages(*packages: str) -> list[str]:
    """The Debian packages among `packages` whose program is not on PATH.

    Args:
        packages: names from SYSTEM_PROGRAMS, e.g. "chromium", "chromium-driver", "graphviz".
    Returns:
        list[str]: the missing ones, in the order given; empty when all are installed.
    """
    return [package for package in packages if shutil.which(SYSTEM_PROGRAMS[package]) is None]


@dataclass(frozen=True)
class PageReport:
    """What a page did when it loaded.

    Attributes:
        url: the address that was opened.
        title: the document's <title>.
        console_errors: the browser console's SEVERE entries (uncaught exceptions,
            `console.error(...)`, resources that failed to load), one message each.
        broken_images: the src of every <img> that did not load (data: URIs cut to 80 characters).
        screenshot: the PNG of the whole page.
    """

    url: str
    title: str
    console_errors: list[str]
    broken_images: list[str]
    screenshot: Path

    @property
    def ok(self) -> bool:
        return not self.console_errors and not self.broken_images

    def __str__(self) -> str:
        lines = [f"{self.url} ({self.title!r}), screenshot {self.screenshot}"]
        lines += [f"  console error: {message}" for message in self.console_errors]
        lines += [f"  broken image: {source}" for source in self.broken_images]
        return "\n".join(lines)


@contextlib.contextmanager
def headless_chromium() -> Iterator:
    """A Selenium driver for headless system Chromium, quit on exit.

    Returns:
        selenium.webdriver.Chrome: with the browser console log kept at every level.
    Example:
        with headless_chromium() as driver:
            report = open_page(driver, Path("report.html").resolve().as_uri(), Path("shot.png"))
    """
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which(SYSTEM_PROGRAMS["chromium"]) or "/usr/bin/chromium"
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
        "--disable-gpu",
        "--disable-dev-shm-usage",  # containers often have a small /dev/shm
        f"--window-size={WINDOW_SIZE[0]},{WINDOW_SIZE[1]}",
        "--hide-scrollbars",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # A driver path in the Service is what keeps Selenium Manager (and its downloads) out.
    driver_path = shutil.which(SYSTEM_PROGRAMS["chromium-driver"]) or "/usr/bin/chromedriver"
    service = webdriver.ChromeService(executable_path=driver_path)
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(LOAD_TIMEOUT_S)
    try:
        yield driver
    finally:
        driver.quit()


def open_page(driver, url: str, screenshot: Path) -> PageReport:
    """Load `url`, wait until it and its images have loaded, and report what went wrong.

    Args:
        driver: from `headless_chromium()` (the log capability is what makes console errors visible).
        url: a file:// or http://127.0.0.1 address.
        screenshot: where to write the PNG of the whole page; its folder is created.
    Returns:
        PageReport: console errors and broken images (both empty for a good page).
    """
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get_log("browser")  # drains what earlier pages logged
    driver.get(url)  # returns once the load event has fired
    WebDriverWait(driver, LOAD_TIMEOUT_S).until(
        lambda d: (
            d.execute_script("return document.readyState") == "complete"
            and d.execute_script(_IMAGES_SETTLED_JS)
        )
    )
    broken_images = [_shorten(source) for source in driver.execute_script(_BROKEN_IMAGES_JS)]
    console_errors = [
        entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"
    ]
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    screenshot.write_bytes(_full_page_png(driver))
    return PageReport(url, driver.title, console_errors, broken_images, screenshot)


def _full_page_png(driver) -> bytes:
    # The DevTools call sees past the viewport, which `save_screenshot` does not.
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {
        "x": 0,
        "y": 0,
        "width": max(1, round(size["width"])),
        "height": max(1, min(round(size["height"]), MAX_SCREENSHOT_HEIGHT)),
        "scale": 1,
    }
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "clip": clip, "captureBeyondViewport": True}
    )
    return base64.b64decode(shot["data"])


def _shorten(source: str, limit: int = 80) -> str:
    # A data: URI is mostly base64; an address is kept whole, since its end names the file.
    if not source.startswith("data:") or len(source) <= limit:
        return source
    return source[: limit - 3] + "..."
