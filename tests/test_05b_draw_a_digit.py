"""05b_draw_a_digit.py: the drawing page's server, driven over HTTP on a free localhost port."""

import base64
import io
import json
import urllib.error
import urllib.request

import pytest
from PIL import Image, ImageDraw

from conftest import script

draw_page = script("05b_draw_a_digit.py")

ONE = [[(140, 50), (140, 235)], [(110, 80), (140, 50)]]
SEVEN = [[(70, 60), (210, 60), (120, 235)]]


def canvas_png(strokes, width: int = 16) -> bytes:
    """A 280x280 drawing as the page sends it: black strokes on a white canvas."""
    image = Image.new("RGBA", (280, 280), (255, 255, 255, 255))
    pen = ImageDraw.Draw(image)
    for points in strokes:
        pen.line(points, fill=(0, 0, 0, 255), width=width, joint="curve")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


@pytest.fixture(scope="module")
def server(models_dir, tmp_path_factory):
    app = draw_page.DrawingApp(models_dir, save_dir=tmp_path_factory.mktemp("drawings"))
    running = draw_page.start_server(app, port=0)
    yield running
    running.shutdown()
    running.server_close()


def post(server, route: str, body: bytes) -> tuple[int, dict]:
    url = f"http://127.0.0.1:{server.server_address[1]}{route}"
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def predict(server, png: bytes) -> dict:
    status, reply = post(server, "/predict", json.dumps({"image": data_url(png)}).encode())
    assert status == 200, reply
    return reply


def test_it_listens_on_this_computer_only(server):
    assert server.server_address[0] == "127.0.0.1"


def test_the_page_is_served_and_unknown_routes_are_404(server):
    with urllib.request.urlopen(f"http://127.0.0.1:{server.server_address[1]}/", timeout=10) as page:
        html = page.read().decode()
    assert '<canvas id="pad"' in html and "http" not in html.split("<script>")[1].replace("http.server", "")
    status, reply = post(server, "/nowhere", b"{}")
    assert status == 404 and "no such route" in reply["error"]


@pytest.mark.parametrize(("strokes", "digit"), [(ONE, 1), (SEVEN, 7)])
def test_a_drawn_digit_comes_back_right(server, strokes, digit):
    reply = predict(server, canvas_png(strokes))
    assert reply["digit"] == digit and reply["verdict"] in ("digit", "not sure")
    assert len(reply["cnn"]) == len(reply["mlp"]) == 10 and abs(sum(reply["cnn"]) - 1) < 1e-5
    assert len(reply["view"]) == len(reply["saliency"]) == 784 and max(reply["view"]) == pytest.approx(1.0)


def test_the_page_and_05_image_give_the_same_verdict(server, understand_model, models_dir, tmp_path):
    for name, strokes, width in (("seven", SEVEN, 16), ("thick_one", ONE, 40)):
        png = canvas_png(strokes, width)
        (tmp_path / f"{name}.png").write_bytes(png)
        from_page = predict(server, png)
        from_file = understand_model.main(image_paths=[tmp_path / f"{name}.png"], models_dir=models_dir,
                                          out_dir=tmp_path)["verdicts"][0]
        assert from_page["text"] == from_file.text and from_page["verdict"] == from_file.kind


def test_a_blank_canvas_is_not_a_digit(server):
    reply = predict(server, canvas_png([]))
    assert reply["verdict"] == "not a digit" and reply["digit"] is None


@pytest.mark.parametrize(("body", "reason"), [
    (b"{not json", "malformed JSON"),
    (b'{"picture": 1}', "expected"),
    (json.dumps({"image": "data:image/png;base64,@@@@"}).encode(), "not valid base64"),
    (json.dumps({"image": data_url(b"these are not pixels")}).encode(), "not an image"),
])
def test_bad_requests_get_400_with_a_one_line_reason(server, body, reason):
    status, reply = post(server, "/predict", body)
    assert status == 400 and reason in reply["error"] and "\n" not in reply["error"]


def test_an_oversized_body_gets_413(server):
    status, reply = post(server, "/predict", b"x" * (draw_page.MAX_BODY + 1))
    assert status == 413 and "too large" in reply["error"]


def test_save_writes_the_drawing_as_a_png(server):
    status, reply = post(server, "/save", json.dumps({"image": data_url(canvas_png(SEVEN))}).encode())
    assert status == 200 and reply["path"].endswith(".png")


def test_a_missing_model_is_one_line_naming_the_script(tmp_path):
    with pytest.raises(draw_page.LearnerError, match=r"cnn.pt not found: run `python 04_improved_model\.py`"):
        draw_page.DrawingApp(tmp_path)
