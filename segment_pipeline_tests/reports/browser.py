"""A real headless Chromium (Debian's /usr/bin/chromium) driven by Playwright, for the page tests."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")


def chromium_or_skip() -> str:
    pytest.importorskip("playwright.sync_api", reason="pip package playwright is not installed")
    found = CHROMIUM if CHROMIUM.exists() else shutil.which("chromium")
    if not found:
        pytest.skip("no Chromium on this machine: apt-get install -y chromium")
    return str(found)


@dataclass
class PageVisit:
    console_errors: list[str] = field(default_factory=list)
    outside_requests: list[str] = field(default_factory=list)


@contextmanager
def browser_page(viewport: tuple[int, int] = (1200, 900)) -> Iterator[tuple[object, PageVisit]]:
    """A fresh page that records console errors and every request that leaves file://."""
    from playwright.sync_api import sync_playwright

    executable = chromium_or_skip()
    visit = PageVisit()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
            page.on("console", lambda m: visit.console_errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: visit.console_errors.append(str(e)))
            page.on(
                "request",
                lambda r: (
                    None if r.url.startswith(("file:", "data:", "blob:")) else visit.outside_requests.append(r.url)
                ),
            )
            yield page, visit
        finally:
            browser.close()
