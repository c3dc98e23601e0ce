"""The drawing page learns, in a real browser: teach two symbols with eight drawings each, then draw a ninth.

Not part of `make test`: run `make test-browser` (it needs chromium and chromium-driver).
"""

import pytest
from chromium import answer, chromium_page, draw

from conftest import script

pytestmark = pytest.mark.browser

draw_page = script("05b_draw_a_digit.py")


def plus(size, dx=0, dy=0):  # in pad pixels from the pad's centre
    return [[(-size + dx, dy), (size + dx, dy)], [(dx, -size + dy), (dx, size + dy)]]


def triangle(size, dx=0, dy=0):
    top, left, right = (dx, -size + dy), (-size + dx, size + dy), (size + dx, size + dy)
    return [[top, right, left, top]]


SHAPES = {"plus": plus, "triangle": triangle}
EIGHT = [(60, 0, 0), (80, -10, 5), (100, 10, -10), (70, 20, 10), (90, -20, -5), (110, 0, 15), (65, 15, -15),
         (95, -15, 0)]  # (half size, right, down): eight different drawings of each symbol
NINTH = (85, 25, 20)  # unlike any of them


@pytest.fixture(scope="module")
def page(models_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("teach-page")
    server = draw_page.start_server(draw_page.DrawingApp(models_dir, save_dir=root / "saved",
                                                         teach_dir=root / "my_dataset"))
    with chromium_page(server, root / "chromium-profile", "1000,1000") as browser:
        browser.teach_dir = root / "my_dataset"
        yield browser


def test_teach_two_symbols_and_the_page_names_a_ninth_of_each(page, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    status = page.find_element(By.ID, "teach-status")
    name_box = page.find_element(By.ID, "teach-name")
    for name, shape in SHAPES.items():
        name_box.clear()
        name_box.send_keys(name)
        for count, (size, dx, dy) in enumerate(EIGHT, start=1):
            draw(page, shape(size, dx, dy))
            page.find_element(By.ID, "teach-add").click()
            expected = f"{name}: {count} example"
            WebDriverWait(page, 30).until(lambda _, expected=expected: expected in status.text)
    assert len(list((page.teach_dir / "triangle").glob("*.png"))) == 8
    page.find_element(By.ID, "teach-learn").click()
    WebDriverWait(page, 60).until(lambda _: status.text.startswith("learned"))
    assert "plus, triangle" in status.text
    for index, (name, shape) in enumerate(SHAPES.items(), start=10):
        page.find_element(By.ID, "clear").click()
        answer(page, "draw a digit")
        draw(page, shape(*NINTH))
        named = (f"{name} (", f"not sure: {name} (")
        text = answer(page, named)  # waits for the page to name it (30 s at most)
        page.save_screenshot(str(tmp_path / f"taught_{name}.png"))
        assert text.startswith(named), text
        bars = [float(page.find_element(By.ID, f"cnn-{k}").find_element(By.TAG_NAME, "span")
                      .value_of_css_property("width").removesuffix("px")) for k in range(12)]
        assert bars.index(max(bars)) == index  # the taught class's bar, next to the digits', is the longest
