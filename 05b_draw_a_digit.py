"""Draw a digit and watch the networks think: a drawing page in your browser, on your own models.

This script is a tiny web server, written with Python's standard library only. It loads your
CNN (04) and MLP (03) once, opens a page where you draw with the mouse, a finger or a pen, and
answers each drawing with what both networks say, the 28x28 picture they actually see, and where
the CNN looks. Every drawing goes through exactly what `05_understand_model.py --image` uses:
the same preparation (mnist_common/handwriting.py), the same "that is not a digit" rule
(mnist_common/rejection.py) and the same SmoothGrad map (mnist_common/saliency.py). The page
itself is web/draw.html: plain HTML and JavaScript, nothing to build, nothing fetched from the
internet. The server listens on 127.0.0.1 only: no other computer can reach it.

Run:     python 05b_draw_a_digit.py               (opens the page in your browser; Ctrl-C stops it)
         python 05b_draw_a_digit.py --no-browser  (just prints the address)
Needs:   models/cnn.pt (python 04_improved_model.py) and models/mlp.pt (python 03_train_model.py)
Writes:  my_drawings/*.png, when you press "save" (try them again with 05 --image)
"""

import argparse
import base64
import binascii
import json
import threading
import time
import webbrowser
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import torch

from mnist_common import (
    DATA_DIR,
    DATASET_ENV,
    MODELS_DIR,
    ROOT,
    LearnerError,
    check_knob,
    current_dataset,
    ensure_writable,
    friendly_errors,
    is_whole,
    load_mnist,
    load_model,
    shown,
)
from mnist_common.handwriting import image_from_bytes, predict_views, prepare_image
from mnist_common.rejection import fit_rejection_rule, judge
from mnist_common.saliency import smoothgrad

# --- Settings (edit and re-run) -------------------------------------------------------------
PORT = 0  # 0: any free port (printed); or a fixed one such as 8765
MAX_BODY = 2_000_000  # bytes; a drawing is about 10,000, anything larger is refused (413)
SALIENCY_SAMPLES = 8  # noisy copies per saliency map: fewer than 05's 32, to answer while you draw (4-32)
SAVE_DIR = ROOT / "my_drawings"  # where the "save" button writes PNG files
PAGE = ROOT / "web" / "draw.html"


class BadRequestError(Exception):
    """A request the page should never send: answered with 400 and a one-line reason."""


# --- What the page asks for -------------------------------------------------------------------
class DrawingApp:
    """The two networks, loaded once, and the two things the page can ask of them."""

    def __init__(self, models_dir: Path = MODELS_DIR, data_dir: Path = DATA_DIR, save_dir: Path = SAVE_DIR):
        if current_dataset().key != "mnist":
            raise LearnerError(f"the drawing page reads handwritten digits with the MNIST models: unset {DATASET_ENV}")
        self.models = {name: load_model(Path(models_dir) / file, script) for name, file, script in
                       (("cnn", "cnn.pt", "04_improved_model.py"), ("mlp", "mlp.pt", "03_train_model.py"))}
        # the CNN decides "not a digit", with the same rule and the same function as 05 --image
        self.rule = fit_rejection_rule(self.models["cnn"][0], load_mnist(data_dir=data_dir), data_dir)
        self.save_dir = Path(save_dir)

    def predict(self, png: bytes) -> dict:
        """Everything the page shows for one drawing."""
        start = time.perf_counter()
        picture = image_from_bytes(png, "the drawing")  # not an image: LearnerError, answered with 400
        try:
            prepared = prepare_image(picture, "the drawing")
        except LearnerError as why:  # blank, or a speck: nothing to read yet
            return {"verdict": "not a digit", "text": "this does not look like a digit", "digit": None,
                    "cnn": None, "mlp": None, "view": [0.0] * 784, "saliency": [0.0] * 784, "note": str(why),
                    "milliseconds": 1000 * (time.perf_counter() - start)}
        cnn, norm = self.models["cnn"][0], self.models["cnn"][1]["normalization"]
        verdict = judge(cnn, self.rule, prepared.view[None], norm["mean"], norm["std"])[0]  # its probs: the CNN's bars
        mlp, mlp_norm = self.models["mlp"][0], self.models["mlp"][1]["normalization"]
        mlp_probs = predict_views(mlp, prepared.view[None], mlp_norm["mean"], mlp_norm["std"])[0].softmax(0)
        x = ((prepared.view - norm["mean"]) / norm["std"])[None, None]
        saliency = smoothgrad(cnn, x, torch.tensor([verdict.digit]), samples=SALIENCY_SAMPLES)[0]
        saliency = saliency / saliency.abs().max().clamp_min(1e-8)  # -1 to 1, for the page's colours
        return {"verdict": verdict.kind, "text": verdict.text,
                "digit": verdict.digit if verdict.kind != "not a digit" else None,
                "cnn": verdict.probs.tolist(), "mlp": mlp_probs.tolist(),
                "view": prepared.view.flatten().tolist(), "saliency": saliency.flatten().tolist(),
                "note": "; ".join(prepared.notes), "milliseconds": 1000 * (time.perf_counter() - start)}

    def save(self, png: bytes) -> dict:
        """Write the drawing as a PNG (checked to be one first) into the save folder."""
        image_from_bytes(png, "the drawing")  # refuses anything that is not an image
        folder = ensure_writable(self.save_dir, "drawings")
        path = folder / f"drawing_{datetime.now():%Y%m%d_%H%M%S_%f}.png"
        partial = path.with_name(path.name + ".part")
        partial.write_bytes(png)
        partial.replace(path)  # complete, or not there at all
        print(f"saved {shown(path)}")
        return {"path": shown(path)}


def drawing_from(body: bytes) -> bytes:
    """The PNG bytes inside a request body {"image": "data:image/png;base64,..."}, or BadRequestError."""
    try:
        request = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BadRequestError(f"malformed JSON: {error}") from None
    image = request.get("image") if isinstance(request, dict) else None
    if not isinstance(image, str) or not image.startswith("data:image/png;base64,"):
        raise BadRequestError('expected {"image": "data:image/png;base64,..."}')
    try:
        return base64.b64decode(image.split(",", 1)[1], validate=True)
    except (binascii.Error, ValueError):
        raise BadRequestError("the image is not valid base64") from None


# --- The server --------------------------------------------------------------------------------
def make_handler(app: DrawingApp, page: bytes):
    """A request handler that knows the app: GET / gives the page, POST /predict and /save answer JSON."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/":
                self.reply(200, page, "text/html; charset=utf-8")
            else:
                self.reply_json(404, {"error": f"no such page: {self.path}"})

        def do_POST(self):
            routes = {"/predict": app.predict, "/save": app.save}
            if self.path not in routes:
                self.reply_json(404, {"error": f"no such route: {self.path}"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                if length <= 8 * MAX_BODY:  # read and drop it, so the client hears the answer
                    self.rfile.read(length)
                self.close_connection = True
                self.reply_json(413, {"error": f"request too large ({length:,} bytes; {MAX_BODY:,} at most)"})
                return
            try:
                self.reply_json(200, routes[self.path](drawing_from(self.rfile.read(length))))
            except (BadRequestError, LearnerError) as why:
                self.reply_json(400, {"error": str(why)})

        def reply_json(self, status: int, content: dict):
            self.reply(status, json.dumps(content).encode(), "application/json")

        def reply(self, status: int, body: bytes, kind: str):
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_):  # quiet: one line per drawing would flood the terminal
            pass

    return Handler


def start_server(app: DrawingApp, port: int = PORT) -> ThreadingHTTPServer:
    """Serve the app on 127.0.0.1 (this computer only) in a background thread; port 0 picks a free one."""
    server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(app, PAGE.read_bytes()))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main(port: int = PORT, open_browser: bool = True, models_dir: Path = MODELS_DIR, data_dir: Path = DATA_DIR,
         save_dir: Path = SAVE_DIR) -> None:
    app = DrawingApp(models_dir, data_dir, save_dir)
    try:
        server = start_server(app, port)
    except OSError as error:
        raise LearnerError(f"cannot listen on port {port} ({error.strerror}): choose another with --port, "
                           "or 0 for any free one") from None
    address = f"http://127.0.0.1:{server.server_address[1]}/"
    print(f"drawing page: {address}  (on this computer only; Ctrl-C stops it)")
    if open_browser:
        webbrowser.open(address)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("\nstopping the drawing page")
    finally:
        server.shutdown()
        server.server_close()


def check_knobs(port: int = PORT) -> None:
    """The constants above (and --port), checked before the models load (one line naming a bad one)."""
    check_knob("PORT" if port == PORT else "--port", port, is_whole(port, 0, 65_535),
               "use 0 (any free port) or a port number up to 65535, such as 8765")
    check_knob("MAX_BODY", MAX_BODY, is_whole(MAX_BODY, 10_000), "use a whole number of bytes of at least 10,000")
    check_knob("SALIENCY_SAMPLES", SALIENCY_SAMPLES, is_whole(SALIENCY_SAMPLES, 1), "use a whole number of at least 1")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-browser", action="store_true", help="only print the address")
    parser.add_argument("--port", type=int, default=PORT, help="port to listen on (0: any free one)")
    return parser.parse_args()


if __name__ == "__main__":
    with friendly_errors():
        args = parse_args()
        check_knobs(args.port)
        main(port=args.port, open_browser=not args.no_browser)
