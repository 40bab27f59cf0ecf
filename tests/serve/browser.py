"""Real headless Chromium (Debian's ``chromium``, driven by Playwright; no browser is ever downloaded), and a
watch on the page's console: any error the test did not expect fails it."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
HTTP_ERROR = re.compile(r"the server responded with a status of (\d{3})")


class Console:
    """Errors the page logs (console errors, uncaught exceptions). A failed request shows up in Chromium's console
    as "Failed to load resource: ... status of 413"; a test names the statuses it provokes."""

    def __init__(self):
        self.errors: list[str] = []

    def watch(self, page) -> None:
        page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))

    def take(self, expected_statuses: Iterable[int] = ()) -> list[str]:
        """The errors seen since the last call that are not answers with one of ``expected_statuses``."""
        expected = set(expected_statuses)
        errors, self.errors = self.errors, []
        return [e for e in errors if not ((m := HTTP_ERROR.search(e)) and int(m.group(1)) in expected)]


@pytest.fixture(scope="module")
def chromium():
    """One browser per module: Playwright's sync API keeps its event loop marked running in this thread while it
    is open, so it must be closed before later tests call ``asyncio.run``."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).is_file():
        pytest.fail(f"the browser tests need Debian's chromium at {CHROMIUM}: apt-get install chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--autoplay-policy=no-user-gesture-required", "--mute-audio"]
        )
        yield browser
        browser.close()


class Screens:
    """Numbered screenshots of each step under the test's output directory."""

    def __init__(self, root: Path):
        self.root = root
        self.count = 0

    def __call__(self, page, name: str) -> Path:
        self.count += 1
        path = self.root / f"{self.count:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path
