"""The drawing page's teach panel, over HTTP: examples kept, names checked, every protection kept, learning."""

import time

import pytest
from test_05b_draw_a_digit import ONE, canvas_png, data_url, post, raw

from conftest import script

draw_page = script("05b_draw_a_digit.py")


def plus(size: int, dx: int = 0, dy: int = 0):
    return [[(140 - size + dx, 140 + dy), (140 + size + dx, 140 + dy)], [(140 + dx, 140 - size + dy),
                                                                         (140 + dx, 140 + size + dy)]]


def triangle(size: int, dx: int = 0, dy: int = 0):
    top = (140 + dx, 140 - size + dy)
    return [[top, (140 + size + dx, 140 + size + dy), (140 - size + dx, 140 + size + dy), top]]


SHAPES = {"plus": plus, "triangle": triangle}
VARIANTS = [(60, 0, 0), (80, -10, 5), (100, 10, -10), (70, 20, 10), (90, -20, -5), (110, 0, 15), (65, 15, -15),
            (95, -15, 0)]  # (half size, moved right, moved down) in pad pixels: eight different drawings


@pytest.fixture(scope="module")
def server(models_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("teach")
    app = draw_page.DrawingApp(models_dir, save_dir=root / "drawings", teach_dir=root / "my_dataset")
    running = draw_page.start_server(app, port=0)
    running.teach_dir = root / "my_dataset"
    yield running
    running.shutdown()
    running.server_close()


def add(server, name, strokes, **headers):
    return post(server, "/teach/add", f'{{"image": "{data_url(canvas_png(strokes))}", "name": {name}}}'.encode(),
                **headers)


def test_learn_before_any_example_is_refused_in_one_line(server):
    status, reply = post(server, "/teach/learn", b"{}")
    assert status == 400 and reply["error"].startswith("teach a class first")


def test_an_example_is_kept_in_its_class_folder_as_a_png(server):
    status, reply = add(server, '"plus"', plus(70))
    assert status == 200 and reply["counts"]["plus"] >= 1
    files = list((server.teach_dir / "plus").glob("*.png"))
    assert files and all(f.read_bytes().startswith(b"\x89PNG") for f in files)


@pytest.mark.parametrize(("name", "reason"), [
    ('"a/b"', "path separator"), ('"../up"', "path separator"), ('".."', "path separator"),
    ('"a:b"', "not folder-safe"), ('"  "', "is empty"), ('"7"', "is a digit"), ('"con"', "Windows reserves"),
    ('"x?"', "not folder-safe"), ("42", "expected"), ("null", "expected"),
])
def test_names_that_are_not_one_safe_folder_are_refused(server, name, reason):
    before = sorted(p.name for p in server.teach_dir.parent.rglob("*"))
    status, reply = add(server, name, plus(70))
    assert status == 400 and reason in reply["error"] and "\n" not in reply["error"]
    assert sorted(p.name for p in server.teach_dir.parent.rglob("*")) == before  # nothing written anywhere


@pytest.mark.parametrize("route", ["/teach/add", "/teach/learn", "/teach/status"])
@pytest.mark.parametrize(("headers", "reason"), [
    ({"X-Page-Token": None}, "page token"), ({"X-Page-Token": "guess"}, "page token"),
    ({"Origin": "http://evil.example"}, "Origin"), ({"Content-Type": "text/plain"}, "Content-Type"),
])
def test_the_teach_requests_keep_every_protection(server, route, headers, reason):
    status, reply = post(server, route, b'{"name": "plus"}', **headers)
    assert status == 403 and reason in reply["error"]


def test_the_teach_requests_are_refused_to_another_host(server):
    body = b"{}"
    request = (f"POST /teach/learn HTTP/1.1\r\nHost: attacker.example:{server.server_address[1]}\r\n"
               f"Content-Type: application/json\r\nX-Page-Token: {server.token}\r\nContent-Length: {len(body)}\r\n"
               "Connection: close\r\n\r\n").encode() + body
    status, reply = raw(server, request)
    assert status == 403 and "Host" in reply["error"]


def test_taught_classes_are_learned_and_named_next_to_the_digits(server):
    for name, shape in SHAPES.items():
        for size, dx, dy in VARIANTS:
            assert add(server, f'"{name}"', shape(size, dx, dy))[0] == 200
    status, reply = post(server, "/teach/learn", b"{}")
    assert status == 200 and reply["state"] in ("learning", "done")
    deadline = time.monotonic() + 120
    while reply["state"] == "learning" and time.monotonic() < deadline:
        time.sleep(0.2)
        reply = post(server, "/teach/status", b"{}")[1]
    assert reply["state"] == "done", reply
    assert reply["classes"] == ["plus", "triangle"] and reply["counts"]["triangle"] == 8
    for name, shape in SHAPES.items():  # a ninth drawing of each, unlike the eight
        status, answer = post(server, "/predict", f'{{"image": "{data_url(canvas_png(shape(85, 25, 20)))}"}}'.encode())
        assert status == 200 and answer["classes"][10:] == ["plus", "triangle"] and len(answer["cnn"]) == 12
        assert answer["verdict"] == "taught" and answer["name"] == name, answer["text"]
        assert answer["text"].startswith((f"{name} (", f"not sure: {name} ("))
    status, answer = post(server, "/predict", f'{{"image": "{data_url(canvas_png(ONE))}"}}'.encode())
    assert answer["digit"] == 1 and answer["text"].startswith(("1 (", "not sure: 1 ("))  # digits are still read
