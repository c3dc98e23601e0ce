"""The drawing page in a real browser: headless Chromium, driven by Selenium, draws with the pointer.

Not part of `make test`: run `make test-browser` (it needs the Debian packages chromium and
chromium-driver, which .ci/run installs where they are missing).
"""

import pytest
from chromium import answer, chromium_page, draw

from conftest import script

pytestmark = pytest.mark.browser

draw_page = script("05b_draw_a_digit.py")


@pytest.fixture(scope="module")
def page(models_dir, tmp_path_factory):
    server = draw_page.start_server(draw_page.DrawingApp(models_dir, save_dir=tmp_path_factory.mktemp("saved")))
    with chromium_page(server, tmp_path_factory.mktemp("chromium-profile"), "1000,800") as browser:
        yield browser


def read_as(digit: str) -> tuple:
    """The ways a verdict that reads the drawing as `digit` begins."""
    return f"{digit} (", f"not sure: {digit} (", f"not sure: most like {digit},"


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
    text = answer(page, read_as(digit))
    page.save_screenshot(str(tmp_path / f"drawn_{digit}_{width}.png"))
    assert text.startswith(read_as(digit)), text
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
    answer(page, read_as("1"))
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
