"""05b_draw_a_digit.py: the drawing page's server, driven over HTTP on a free localhost port."""

import base64
import io
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

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


def post(server, route: str, body: bytes, **headers) -> tuple[int, dict]:
    """POST as the page does (JSON, with this launch's token); keyword arguments replace or drop (None) headers."""
    url = f"http://127.0.0.1:{server.server_address[1]}{route}"
    sent = {"Content-Type": "application/json", "X-Page-Token": server.token}
    sent.update({name.replace("_", "-"): value for name, value in headers.items()})
    request = urllib.request.Request(url, data=body, headers={k: v for k, v in sent.items() if v is not None})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def raw(server, request: bytes, wait: float = 30) -> tuple[int, dict | bytes]:
    """Send bytes as they are (headers a browser would never send) and read the HTTP answer (JSON, or the page)."""
    with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=wait) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65_536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body) if b"application/json" in head else body


def request_bytes(server, body: bytes, **headers) -> bytes:
    """A POST /predict as raw bytes, with the right Host and token unless headers say otherwise."""
    sent = {"Host": f"127.0.0.1:{server.server_address[1]}", "Content-Type": "application/json",
            "X-Page-Token": server.token, "Content-Length": str(len(body))}
    sent.update({name.replace("_", "-"): value for name, value in headers.items()})
    lines = "".join(f"{k}: {v}\r\n" for k, v in sent.items() if v is not None)
    return f"POST /predict HTTP/1.1\r\n{lines}Connection: close\r\n\r\n".encode() + body


def png_bytes(image: Image.Image, kind: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=kind)
    return buffer.getvalue()


def predict_body(png: bytes) -> bytes:
    return json.dumps({"image": data_url(png)}).encode()


def predict(server, png: bytes) -> dict:
    status, reply = post(server, "/predict", json.dumps({"image": data_url(png)}).encode())
    assert status == 200, reply
    return reply


def test_it_listens_on_this_computer_only(server):
    assert server.server_address[0] == "127.0.0.1"


def test_the_page_is_served_with_this_launchs_token_and_unknown_routes_are_404(server):
    with urllib.request.urlopen(f"http://127.0.0.1:{server.server_address[1]}/", timeout=10) as page:
        html = page.read().decode()
    assert '<canvas id="pad"' in html and "http" not in html.split("<script>")[1].replace("http.server", "")
    assert f'content="{server.token}"' in html and "{{PAGE_TOKEN}}" not in html and len(server.token) >= 24
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


# --- Only the page may use the server (issue: any web page could POST to it) ------------------------
@pytest.mark.parametrize(("headers", "reason"), [
    ({"Origin": "http://evil.example"}, "Origin"),  # a page elsewhere, posting cross-site
    ({"Host": "evil.example"}, "Host"),  # DNS rebinding: the attacker's name, pointing here
    ({"Content_Type": "text/plain"}, "Content-Type"),  # a "simple" request that skips the browser's preflight
    ({"X_Page_Token": None}, "token"),
    ({"X_Page_Token": "guessed"}, "token"),
])
def test_requests_from_anywhere_but_the_page_get_403(server, headers, reason, capfd):
    status, reply = post(server, "/save", predict_body(canvas_png(SEVEN)), **headers)
    assert status == 403 and reason in reply["error"] and "\n" not in reply["error"]
    printed = capfd.readouterr()
    assert printed.out.count("\n") == 1 and "refused POST /save" in printed.out and not printed.err


def test_the_page_itself_is_not_served_to_another_host(server):
    status, reply = raw(server, f"GET / HTTP/1.1\r\nHost: evil.example:{server.server_address[1]}\r\n\r\n".encode())
    assert status == 403 and "Host" in reply["error"]  # a rebinding page cannot read the token
    status, page = raw(server, f"GET / HTTP/1.1\r\nHost: localhost:{server.server_address[1]}\r\n\r\n".encode())
    assert status == 200 and server.token.encode() in page


# --- It stays up, and answers everything with a status and one line ------------------------------------
@pytest.mark.parametrize(("picture", "status", "reason"), [
    (png_bytes(Image.new("L", (400, 1), 255)), 400, "too thin"),
    (png_bytes(Image.new("L", (20_000, 10), 255)), 400, "too thin"),
    (png_bytes(Image.new("L", (1200, 1000), 255)), 400, "too large"),  # over MAX_PIXELS: refused before decoding
    (png_bytes(Image.new("L", (300, 300), 255))[:-40], 400, "not an image"),  # cut short inside its pixels
])
def test_pictures_that_crashed_the_handler_get_a_4xx_and_one_line(server, picture, status, reason, capfd):
    got, reply = post(server, "/predict", predict_body(picture))
    assert got == status and reason in reply["error"] and "\n" not in reply["error"]
    assert not capfd.readouterr().err


def test_a_png_with_a_damaged_chunk_after_its_pixels_is_read_as_it_looks(server, capfd):
    png = canvas_png(SEVEN)
    damaged = png[:-12] + b"\x00\x00\x00\x04tEXt" + b"junk" + b"\xde\xad\xbe\xef" + png[-12:]  # a wrong CRC
    assert predict(server, damaged)["digit"] == 7 and not capfd.readouterr().err


@pytest.mark.parametrize(("request_of", "status", "reason"), [
    (lambda s: request_bytes(s, b"[" * 100_000 + b"]" * 100_000), 400, "nested too deeply"),
    (lambda s: request_bytes(s, b"{}", Content_Length="abc"), 400, "not a whole number"),
    (lambda s: request_bytes(s, b"{}", Content_Length="1e3"), 400, "not a whole number"),
    (lambda s: request_bytes(s, b"{}", Content_Length="-1"), 400, "not a whole number"),
    (lambda s: request_bytes(s, b"2\r\n{}\r\n0\r\n\r\n", Content_Length=None, Transfer_Encoding="chunked"),
     411, "not in chunks"),
    (lambda s: request_bytes(s, b"", Content_Length=None), 411, "Content-Length is required"),
])
def test_malformed_requests_get_a_4xx_and_one_line(server, request_of, status, reason, capfd):
    got, reply = raw(server, request_of(server))
    assert got == status and reason in reply["error"] and "\n" not in reply["error"]
    assert not capfd.readouterr().err


@pytest.fixture(scope="module")
def impatient_server(models_dir, tmp_path_factory):
    """The same app behind a server that waits 1 s, not 10, for a silent client."""
    app = draw_page.DrawingApp(models_dir, save_dir=tmp_path_factory.mktemp("drawings"))
    running = draw_page.start_server(app, port=0, timeout=1.0)
    yield running
    running.shutdown()
    running.server_close()


def test_slow_and_lying_clients_are_cut_off_while_a_drawing_is_answered(impatient_server):
    body = predict_body(canvas_png(SEVEN))
    liar = request_bytes(impatient_server, body[:100], Content_Length=str(len(body)))  # promises more than it sends
    silent = f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1:{impatient_server.server_address[1]}\r\n".encode()
    results = {}

    def dripping():  # a slow client: a few bytes a second, never done within the time limit
        with socket.create_connection(("127.0.0.1", impatient_server.server_address[1]), timeout=10) as connection:
            connection.sendall(request_bytes(impatient_server, b"", Content_Length=str(len(body))))
            try:
                for i in range(0, 40, 4):
                    connection.sendall(body[i:i + 4])
                    time.sleep(0.3)
                results["drip"] = connection.recv(200).split()[1]
            except OSError:
                results["drip"] = b"cut"

    started = time.monotonic()
    drip = threading.Thread(target=dripping)
    drip.start()
    assert raw(impatient_server, liar, wait=10)[0] == 408
    with socket.create_connection(("127.0.0.1", impatient_server.server_address[1]), timeout=10) as connection:
        connection.sendall(silent)  # headers never finished: the server hangs up after its 1 s
        silent_since = time.monotonic()
        assert connection.recv(200) == b"" and time.monotonic() - silent_since < 5
    assert post(impatient_server, "/predict", body)[0] == 200  # others are served meanwhile
    drip.join(15)
    assert results.get("drip") in (b"408", b"cut") and time.monotonic() - started < 15


def test_fifty_drawings_at_once_are_all_answered(server):
    body = predict_body(canvas_png(SEVEN))
    started = time.monotonic()
    with ThreadPoolExecutor(50) as pool:
        statuses = list(pool.map(lambda _: raw(server, request_bytes(server, body), wait=60)[0], range(50)))
    assert len(statuses) == 50 and set(statuses) <= {200, 503}  # none reset, none left hanging
    assert statuses.count(200) >= 25  # most are predicted (all, on an idle machine); the rest told "busy"
    assert time.monotonic() - started < 60


def test_past_the_queue_the_answer_is_busy():
    queue = draw_page.WorkQueue(workers=1, waiting=0, wait=1)
    with queue.slot(), pytest.raises(draw_page.RefusedError, match="busy") as busy, queue.slot():
        pass
    assert busy.value.status == 503
    with queue.slot():  # and the slot is free again once the first drawing is done
        pass


def test_a_client_that_leaves_mid_answer_prints_nothing(server, capfd):
    for _ in range(5):  # a reload of the page mid-prediction: the socket closes before the answer
        connection = socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=10)
        connection.sendall(request_bytes(server, predict_body(canvas_png(SEVEN))))
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        connection.close()  # with SO_LINGER 0: a reset, as a browser tab closing does
    time.sleep(1.5)
    assert predict(server, canvas_png(SEVEN))["digit"] == 7
    printed = capfd.readouterr()
    assert printed.out == "" and printed.err == ""


# --- /save writes the PNG it decoded, never the bytes it was sent ------------------------------------
def test_save_reencodes_the_png_and_refuses_other_formats(server):
    sent = canvas_png(SEVEN) + b"<script>not part of the picture</script>"
    status, reply = post(server, "/save", predict_body(sent))
    assert status == 200
    data = (draw_page.ROOT / reply["path"]).read_bytes()  # an absolute path stays itself
    assert data.startswith(b"\x89PNG") and b"<script>" not in data
    assert Image.open(io.BytesIO(data)).convert("L").tobytes() == Image.open(io.BytesIO(sent)).convert("L").tobytes()
    jpeg = png_bytes(Image.open(io.BytesIO(canvas_png(SEVEN))).convert("RGB"), "JPEG")
    status, reply = post(server, "/save", predict_body(jpeg))
    assert status == 400 and "not a PNG" in reply["error"]
