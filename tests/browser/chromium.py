"""What the browser tests share: the drawing page served, opened in headless Chromium, and drawn on.

Selenium is given the system's chromedriver (Debian: chromium and chromium-driver), so it never
tries to download one.
"""

import shutil
from contextlib import contextmanager
from itertools import pairwise
from pathlib import Path

import pytest


@contextmanager
def chromium_page(server, profile: Path, window: str):
    """Headless Chromium with the server's page open; skips the test where Chromium is not installed.
    The server is shut down afterwards, skipped or not."""
    browser = None
    try:
        webdriver = pytest.importorskip("selenium.webdriver")
        from selenium.webdriver.chrome.service import Service

        driver_path, browser_path = shutil.which("chromedriver"), shutil.which("chromium")
        if not driver_path or not browser_path:
            pytest.skip("chromium and chromedriver are not installed (Debian: apt install chromium chromium-driver)")
        options = webdriver.ChromeOptions()
        options.binary_location = browser_path
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--no-first-run", f"--window-size={window}", f"--user-data-dir={profile}"):
            options.add_argument(flag)
        browser = webdriver.Chrome(service=Service(driver_path), options=options)
        browser.get(f"http://127.0.0.1:{server.server_address[1]}/")
        yield browser
    finally:
        if browser is not None:
            browser.quit()
        server.shutdown()
        server.server_close()


def draw(browser, strokes):
    """Drag the pointer along each stroke, in pad pixels from the pad's centre (the pad is 280x280)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    pad = browser.find_element(By.ID, "pad")
    for points in strokes:
        actions = ActionChains(browser, duration=20)
        actions.move_to_element_with_offset(pad, *points[0]).click_and_hold()
        for (x0, y0), (x1, y1) in pairwise(points):
            for _ in range(8):  # many small moves, as a hand makes them
                actions.move_by_offset(round((x1 - x0) / 8), round((y1 - y0) / 8))
        actions.release().perform()


def answer(browser, expected) -> str:
    """The verdict's text once it shows `expected`: a text it contains, or a tuple of ways it may begin.

    The page answers while a stroke is still being drawn, so an early answer about half a stroke
    can pass for the final one if the test only asks that a digit appears somewhere in it ("21%"
    contains a 1): ask for the beginnings the final answer may have.
    """
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    verdict = browser.find_element(By.ID, "verdict")
    shows = (lambda text: text.startswith(expected)) if isinstance(expected, tuple) else (lambda text: expected in text)
    WebDriverWait(browser, 30).until(lambda _: shows(verdict.text))
    return verdict.text
