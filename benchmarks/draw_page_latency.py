"""How fast does the drawing page answer? 50 drawings sent to the real server, as the page sends them.

Starts `05b_draw_a_digit.py --no-browser` in its own process (exactly what `make draw` runs, on
models/cnn.pt and models/mlp.pt), then posts 50 drawings to /predict one after another: the ten
digits of mnist_common/pictures.py, each drawn five times moved and resized a little, on the
page's 280x280 white canvas with its 16-pixel pen. It reports the round trip seen by the page
(median and worst), the server's own share of it, how many drawings were read right, and that
Ctrl-C stops the server cleanly.

Run:   python benchmarks/draw_page_latency.py      (about 30 s; needs models/cnn.pt and models/mlp.pt)
"""

import base64
import io
import json
import re
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from mnist_common import LearnerError, friendly_errors  # noqa: E402
from mnist_common.pictures import drawn_digit  # noqa: E402

DRAWINGS_PER_DIGIT = 5  # 10 digits x 5 = 50 requests
CANVAS = 280  # the page's drawing pad, in pixels (web/draw.html)
PEN = 16  # the page's stroke width on that pad
WARM_UP = 3  # requests sent first and not counted (the first one pays for PyTorch's start-up)
SEED = 0


def page_drawing(digit: int, rng: np.random.Generator) -> bytes:
    """A PNG as the page's canvas sends it: black strokes on an opaque white RGBA canvas."""
    moved = tuple(rng.uniform(-0.08, 0.08, 2))
    image = drawn_digit(digit, CANVAS, PEN, moved=moved, scale=rng.uniform(0.75, 1.05)).convert("RGBA")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def start_page() -> tuple[subprocess.Popen, str]:
    """The drawing page's server in its own process, and the address it printed."""
    server = subprocess.Popen([sys.executable, "-u", str(ROOT / "05b_draw_a_digit.py"), "--no-browser"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in server.stdout:
        if line.startswith("drawing page: "):
            return server, line.split()[2]
    server.wait()
    raise LearnerError("the drawing page did not start (run python 05b_draw_a_digit.py --no-browser to see why)")


def page_token(address: str) -> str:
    """The token the server wrote into its page, read as the browser reads it: the server answers only its page."""
    with urllib.request.urlopen(address, timeout=60) as response:
        return re.search(r'name="page-token" content="([^"]+)"', response.read().decode())[1]


def ask(address: str, token: str, png: bytes) -> tuple[dict, float]:
    """One /predict request: the reply and its round trip in milliseconds."""
    body = json.dumps({"image": "data:image/png;base64," + base64.b64encode(png).decode()}).encode()
    request = urllib.request.Request(address + "predict", data=body,
                                     headers={"Content-Type": "application/json", "X-Page-Token": token})
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as response:
        reply = json.loads(response.read())
    return reply, 1000 * (time.perf_counter() - start)


def main(drawings_per_digit: int = DRAWINGS_PER_DIGIT, seed: int = SEED) -> dict:
    rng = np.random.default_rng(seed)
    drawings = [(digit, page_drawing(digit, rng)) for _ in range(drawings_per_digit) for digit in range(10)]
    server, address = start_page()
    try:
        token = page_token(address)
        for _, png in drawings[:WARM_UP]:
            ask(address, token, png)
        replies = [(digit, *ask(address, token, png)) for digit, png in drawings]
    finally:
        server.send_signal(signal.SIGINT)  # what Ctrl-C sends
        stopped = server.wait(timeout=30)
    round_trips = [ms for _, _, ms in replies]
    in_server = [reply["milliseconds"] for _, reply, _ in replies]
    right = sum(reply["digit"] == digit for digit, reply, _ in replies)
    confident = sum(reply["digit"] == digit and reply["verdict"] == "digit" for digit, reply, _ in replies)
    print(f"{len(replies)} drawings posted to {address}predict, one after another")
    print(f"round trip: median {statistics.median(round_trips):.0f} ms, worst {max(round_trips):.0f} ms "
          f"(of which the server's preparation, two networks and SmoothGrad: median "
          f"{statistics.median(in_server):.0f} ms)")
    print(f"read right: {right} of {len(replies)} ({confident} with a confident answer, the rest 'not sure')")
    print(f"Ctrl-C: the server stopped with exit status {stopped}")
    return {"round_trips": round_trips, "right": right, "exit_status": stopped}


if __name__ == "__main__":
    with friendly_errors():
        main()
