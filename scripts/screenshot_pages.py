"""Screenshots of report pages or Dagster UI pages in headless Chromium (/usr/bin/chromium).

    .venv/bin/python scripts/screenshot_pages.py OUT_DIR data/reports/2026-06-20/index.html \
        http://127.0.0.1:3000/assets/analytics/goal_status

Each argument after OUT_DIR is a file (a report page) or a URL; each gives OUT_DIR/<n>.png
(full page for files) and a line saying how many charts drew and any console errors.
"""

from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright


def main(out_dir: str, *targets: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        for n, target in enumerate(targets):
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            errors: list[str] = []
            page.on("console", lambda m, errors=errors: errors.append(m.text) if m.type == "error" else None)
            is_file = not target.startswith("http")
            page.goto(Path(target).resolve().as_uri() if is_file else target)
            page.wait_for_timeout(3000 if is_file else 6000)
            if page.get_by_role("button", name="Skip").count():  # Dagster's first-visit dialog
                page.get_by_role("button", name="Skip").click()
                page.wait_for_timeout(500)
            charts = page.eval_on_selector_all("[data-chart]", "els => els.map(e => e.dataset.rendered)")
            page.screenshot(path=str(out / f"{n}.png"), full_page=is_file)
            print(
                f"{out / f'{n}.png'}: {target}: {charts.count('true')}/{len(charts)} charts drawn; "
                f"console errors: {errors or 'none'}"
            )
            page.close()
        browser.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
