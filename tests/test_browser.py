"""The browser helper (tests/browser.py) catches what a broken page does, and passes a good one.

Screenshots are kept in test-artifacts/ at the repository root, one per test, named after it.
"""

from __future__ import annotations

import base64
import functools
import http.server
import io
import threading
from pathlib import Path

import pytest
from PIL import Image

from browser import headless_chromium, missing_packages, open_page
from conftest import skip_unless_installed

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_bytes(colour: str = "teal", size: tuple[int, int] = (24, 16)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


GOOD_PAGE = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>good page</title></head>
<body><h1>All well</h1><img alt="inline" src="{data_uri(png_bytes())}">
<script>console.log("a log line is not an error");</script></body></html>
"""

BAD_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>bad page</title></head>
<body><h1>Things go wrong</h1>
<img alt="missing file" src="missing-diagram.png">
<img alt="undecodable" src="data:image/png;base64,AAAA">
<script>console.error("tandem-console-marker");</script>
<script>throw new Error("tandem-uncaught-marker");</script>
</body></html>
"""


def write_page(folder: Path, name: str, html: str) -> str:
    path = folder / name
    path.write_text(html, encoding="utf-8")
    return path.resolve().as_uri()


def test_a_good_page_passes_and_leaves_a_png(browser, tmp_path, screenshot_path):
    report = open_page(browser, write_page(tmp_path, "good.html", GOOD_PAGE), screenshot_path)

    assert report.ok, str(report)
    assert report.console_errors == [] and report.broken_images == []
    assert report.title == "good page"
    assert screenshot_path.read_bytes().startswith(PNG_MAGIC)
    width, height = Image.open(screenshot_path).size
    assert width > 0 and height > 0


def test_a_broken_page_names_its_images_and_console_errors(browser, tmp_path, screenshot_path):
    report = open_page(browser, write_page(tmp_path, "bad.html", BAD_PAGE), screenshot_path)

    assert not report.ok
    assert len(report.broken_images) == 2, str(report)
    assert report.broken_images[0].endswith("/missing-diagram.png")
    assert report.broken_images[1] == "data:image/png;base64,AAAA"
    errors = "\n".join(report.console_errors)
    assert "tandem-console-marker" in errors
    assert "Uncaught Error: tandem-uncaught-marker" in errors
    assert "missing-diagram.png" in errors  # the failed load is logged too
    assert "missing-diagram.png" in str(report) and "tandem-uncaught-marker" in str(report)
    assert screenshot_path.read_bytes().startswith(PNG_MAGIC)


def test_errors_of_one_page_are_not_reported_for_the_next(browser, tmp_path, screenshot_path):
    open_page(browser, write_page(tmp_path, "bad.html", BAD_PAGE), screenshot_path)
    report = open_page(browser, write_page(tmp_path, "good.html", GOOD_PAGE), screenshot_path)

    assert report.ok, str(report)


def test_a_page_served_on_localhost(browser, tmp_path, screenshot_path):
    (tmp_path / "picture.png").write_bytes(png_bytes("orange"))
    (tmp_path / "index.html").write_text(
        '<!doctype html><title>served</title><img src="/picture.png"><img src="/absent.png">',
        encoding="utf-8",
    )
    handler = functools.partial(QuietHandler, directory=str(tmp_path))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            url = f"http://127.0.0.1:{server.server_address[1]}/index.html"
            report = open_page(browser, url, screenshot_path)
        finally:
            server.shutdown()

    assert report.title == "served"
    assert [source.rsplit("/", 1)[-1] for source in report.broken_images] == ["absent.png"]
    assert any("404" in message for message in report.console_errors), str(report)


def test_selenium_manager_is_never_asked(monkeypatch, tmp_path, screenshot_path):
    # Selenium Manager would download a driver; offline CI must use the system one.
    from selenium.webdriver.common.selenium_manager import SeleniumManager

    skip_unless_installed("chromium", "chromium-driver")

    def refuse(*args, **kwargs):
        raise AssertionError("Selenium Manager was run")

    monkeypatch.setattr(SeleniumManager, "binary_paths", refuse)
    with headless_chromium() as driver:
        report = open_page(driver, write_page(tmp_path, "good.html", GOOD_PAGE), screenshot_path)
    assert report.ok, str(report)


def test_missing_programs_are_named_by_their_debian_package(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert missing_packages("chromium", "chromium-driver", "graphviz") == [
        "chromium",
        "chromium-driver",
        "graphviz",
    ]
    with pytest.raises(pytest.skip.Exception, match="chromium, chromium-driver"):
        skip_unless_installed("chromium", "chromium-driver")


def test_graphviz_dot_draws(graphviz_dot, tmp_path):
    import subprocess

    svg = subprocess.run(
        [str(graphviz_dot), "-Tsvg"], input="digraph { a -> b }", capture_output=True, text=True
    )
    assert svg.returncode == 0, svg.stderr
    assert "<svg" in svg.stdout


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # keeps the request log out of pytest's output
        pass
