"""What a browser showed when its test failed: every open page's picture and HTML, in test-artifacts/failed.

A race in a page shows once in many runs; what the page showed at that moment is what tells it.
"""

from __future__ import annotations

import os
import re

from playwright.sync_api import Browser
from playwright.sync_api import Error as PlaywrightError

from tests.conftest import ARTIFACTS


def keep_the_pages(browser: Browser) -> None:
    """Each open page of ``browser`` as ``<test>-<n>.png`` and ``.html``, named after the running test."""
    folder = ARTIFACTS / "failed"
    folder.mkdir(parents=True, exist_ok=True)
    test = re.sub(r"\W+", "-", os.environ.get("PYTEST_CURRENT_TEST", "unknown").split(" ")[0].split("::")[-1])
    pages = [page for context in browser.contexts for page in context.pages]
    for i, page in enumerate(pages):
        try:
            page.screenshot(path=str(folder / f"{test}-{i}.png"), full_page=True)
            (folder / f"{test}-{i}.html").write_text(page.content(), encoding="utf-8")
        except PlaywrightError:  # a page already closed or crashed: the others are still worth keeping
            continue
