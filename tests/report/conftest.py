"""A headless Chromium (Debian's package) driven by Playwright, for the report's page tests."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def chromium_path() -> str:
    """The system Chromium; the tests never download a browser."""
    found = os.environ.get("NEXTMOVE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("NEXTMOVE_SKIP_BROWSER") == "1":
            pytest.skip("no chromium and NEXTMOVE_SKIP_BROWSER=1")
        pytest.fail("browser tests need Debian's chromium (apt-get install chromium; .ci/run installs it)")
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """One browser per test module: while Playwright's sync API is open it keeps an event loop running in the
    main thread, so a session-wide browser made every later ``asyncio.run`` of the same worker (the API tests)
    fail with "cannot be called from a running event loop" whenever the scheduler put them after a page test."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox", "--disable-gpu"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
