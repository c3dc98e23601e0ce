"""The drawing page in a real browser: headless Chromium, driven by Selenium, draws with the pointer.

Not part of `make test`: run `make test-browser` (it needs the Debian packages chromium and
chromium-driver, which .ci/run installs where they are missing).
"""

import shutil
from itertools import pairwise

import pytest

from conftest import script

pytestmark = pytest.mark.browser

draw_page = script("05b_draw_a_digit.py")


@pytest.fixture(scope="module")
def page(models_dir, tmp_path_factory):
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    driver_path, browser_path = shutil.which("chromedriver"), shutil.which("chromium")
    if not driver_path or not browser_path:
        pytest.skip("chromium and chromedriver are not installed (Debian: apt install chromium chromium-driver)")
    server = draw_page.start_server(draw_page.DrawingApp(models_dir, save_dir=tmp_path_factory.mktemp("saved")))
    options = webdriver.ChromeOptions()
    options.binary_location = browser_path
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--window-size=1000,800",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(driver_path), options=options)
    browser.get(f"http://127.0.0.1:{server.server_address[1]}/")
    yield browser
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


def answer(browser, expected: str) -> str:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    verdict = browser.find_element(By.ID, "verdict")
    WebDriverWait(browser, 30).until(lambda _: expected in verdict.text)
    return verdict.text


@pytest.mark.parametrize(("strokes", "digit", "width"), [
    ([[(0, -95), (0, 95)]], "1", "16"),
    ([[(-70, -80), (70, -80), (-20, 95)]], "7", "16"),
    ([[(-60, -75), (60, -75), (-15, 95)]], "7", "40"),  # the marker: strokes as wide as a felt pen's
])
def test_drawing_a_digit_in_the_browser(page, strokes, digit, width, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    page.find_element(By.ID, "clear").click()
    Select(page.find_element(By.ID, "pen-width")).select_by_value(width)
    answer(page, "draw a digit")
    draw(page, strokes)
    text = answer(page, digit)
    page.save_screenshot(str(tmp_path / f"drawn_{digit}_{width}.png"))
    assert text.startswith((f"{digit} (", f"not sure: {digit} (", f"not sure: most like {digit},")), text
    bars = [float(page.find_element(By.ID, f"cnn-{d}").find_element(By.TAG_NAME, "span")
                  .value_of_css_property("width").removesuffix("px")) for d in range(10)]
    assert bars.index(max(bars)) == int(digit)


def test_clear_resets_the_page(page):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    page.find_element(By.ID, "clear").click()  # whatever the tests before it drew, and with which pen
    Select(page.find_element(By.ID, "pen-width")).select_by_value("16")
    answer(page, "draw a digit")
    draw(page, [[(0, -95), (0, 95)]])
    answer(page, "1")
    page.find_element(By.ID, "clear").click()
    assert answer(page, "draw a digit") == "draw a digit"


def test_save_writes_the_drawing_through_the_page(page):
    """The page's own request, with its token, passes every check of the server; the file is a PNG."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    page.find_element(By.ID, "clear").click()
    draw(page, [[(-70, -80), (70, -80), (-20, 95)]])
    answer(page, "7")
    page.find_element(By.ID, "save").click()
    saved = page.find_element(By.ID, "saved")
    WebDriverWait(page, 30).until(lambda _: saved.text)
    assert saved.text.startswith("saved as ") and saved.text.endswith(".png"), saved.text
    path = draw_page.ROOT / saved.text.removeprefix("saved as ")
    assert path.read_bytes().startswith(b"\x89PNG")
