"""Draw a digit and watch the networks think: a drawing page in your browser, on your own models.

This script is a tiny web server, written with Python's standard library only. It loads your
CNN (04, as 05 showed it what is not a digit: models/cnn_taught.pt, made here first if missing) and
MLP (03) once, opens a page where you draw with the mouse, a finger or a pen, and
answers each drawing with what both networks say, the 28x28 picture they actually see, and where
the CNN looks. Every drawing goes through exactly what `05_understand_model.py --image` uses:
the same preparation (mnist_common/handwriting.py), the same "that is not a digit" rule
(mnist_common/rejection.py) and the same SmoothGrad map (mnist_common/saliency.py). The page
itself is web/draw.html: plain HTML and JavaScript, nothing to build, nothing fetched from the
internet.

The server listens on 127.0.0.1 only, so no other computer can reach it; and it answers only the
page it served, because other web pages open in your browser could reach it too (`Gatekeeper`
says how). It stays up whatever arrives: a bounded queue of drawings (`WorkQueue`), time limits
on slow clients, and every bad request answered with its HTTP status and one line.

The page can also learn (next step 3, 07_transfer_learning.py, measures why it works): type a
name in its "teach" panel, draw a few examples, press "add example" after each (they are saved in
my_dataset/<name>/), then "learn". The server gives the CNN's last layer one new row of weights
per taught class and trains only those rows on the CNN's features, in seconds, while the ten
digit rows stay exactly as they were (`teach_new_classes` in mnist_common/transfer.py).
From then on the bars include your classes next to the digits.

Run:     python 05b_draw_a_digit.py               (opens the page in your browser; Ctrl-C stops it)
         python 05b_draw_a_digit.py --no-browser  (just prints the address)
Needs:   models/cnn.pt (python 04_improved_model.py) and models/mlp.pt (python 03_train_model.py)
Writes:  models/cnn_taught.pt, when it is missing or made from another models/cnn.pt (about a minute, once);
         my_drawings/*.png, when you press "save" (try them again with 05 --image);
         my_dataset/<name>/*.png, when you press "add example" (07 --dataset my_dataset learns them too)
"""

import argparse
import base64
import binascii
import hmac
import io
import json
import re
import secrets
import socket
import sys
import threading
import time
import webbrowser
from contextlib import contextmanager
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
    is_number,
    is_whole,
    load_mnist,
    load_model,
    random_affine,
    shown,
)
from mnist_common.handwriting import NothingToReadError, image_from_bytes, predict_views, prepare_digit, prepare_image
from mnist_common.rejection import SURE, fit_rejection_rule, judge, percent, taught_model, verdict_for
from mnist_common.saliency import smoothgrad
from mnist_common.transfer import (
    body_features,
    check_class_name,
    extended_network,
    get_head,
    normalized,
    teach_new_classes,
)

# --- Settings (edit and re-run) -------------------------------------------------------------
PORT = 0  # 0: any free port (printed); or a fixed one such as 8765
MAX_BODY = 2_000_000  # bytes; a drawing is about 10,000, anything larger is refused (413)
MAX_PIXELS = 1_000_000  # pixels per picture (the page sends 280x280); bounds one request to about 40 MB (10,000+)
WORKERS = 2  # drawings prepared at once: one per CPU core (1-8)
QUEUE = 48  # drawings that may wait for a worker (each holds its body, 2 MB at most); past that "busy" (503) (0-64)
QUEUE_WAIT = 20.0  # seconds a drawing may wait in that queue before it too is answered "busy" (1-60)
MAX_CONNECTIONS = 64  # connections served at once; more are answered 503 at the door (16-256)
TIMEOUT = 10.0  # seconds a client may stay silent, and a whole request body may take, before it is cut off (1-60)
SALIENCY_SAMPLES = 8  # noisy copies per saliency map: fewer than 05's 32, to answer while you draw (4-32)
SAVE_DIR = ROOT / "my_drawings"  # where the "save" button writes PNG files
TEACH_DIR = ROOT / "my_dataset"  # where "add example" writes each taught class's drawings, a folder per class
MAX_TAUGHT_CLASSES = 12  # classes the page may learn next to the digits (1-50)
MAX_EXAMPLES = 100  # drawings kept per taught class; more are refused (2-1,000)
TEACH_DIGITS = 100  # MNIST training digits per digit that stand for "not a new class" while learning (10-1,000)
TEACH_COPIES = 8  # randomly moved copies of each taught drawing (1-32)
TEACH_STEPS = 300  # steps of learning for the new rows (50-2,000)
TEACH_RATE = 0.01  # Adam's learning rate for them (0.001-0.05)
PAGE = ROOT / "web" / "draw.html"
TOKEN_PLACEHOLDER = b"{{PAGE_TOKEN}}"  # where web/draw.html receives this launch's token


class RefusedError(Exception):
    """A request answered with an HTTP error status and a one-line reason (a bad body, a stranger, too busy)."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status


# --- What the page asks for -------------------------------------------------------------------
class DrawingApp:
    """The two networks, loaded once, and the two things the page can ask of them."""

    def __init__(self, models_dir: Path = MODELS_DIR, data_dir: Path = DATA_DIR, save_dir: Path = SAVE_DIR,
                 teach_dir: Path = TEACH_DIR):
        if current_dataset().key != "mnist":
            raise LearnerError(f"the drawing page reads handwritten digits with the MNIST models: unset {DATASET_ENV}")
        self.models = {name: load_model(Path(models_dir) / file, script) for name, file, script in
                       (("cnn", "cnn.pt", "04_improved_model.py"), ("mlp", "mlp.pt", "03_train_model.py"))}
        # the CNN shown what is not a digit decides "not a digit", with the same rule and function as 05 --image
        data = load_mnist(data_dir=data_dir)
        cnn, checkpoint = self.models["cnn"]
        self.models["cnn"] = (taught_model(cnn, Path(models_dir) / "cnn.pt", data, data_dir), checkpoint)
        self.rule = fit_rejection_rule(self.models["cnn"][0], data, data_dir)
        self.save_dir = Path(save_dir)
        self.networks_in_use = threading.Lock()  # pictures are prepared side by side, the networks run one by one
        self.teacher = Teacher(self.models["cnn"], data, Path(teach_dir), self.networks_in_use)

    def predict(self, png: bytes) -> dict:
        """Everything the page shows for one drawing."""
        start = time.perf_counter()
        picture = image_from_bytes(png, "the drawing", MAX_PIXELS)  # not an image, too large: 400
        try:
            prepared = prepare_image(picture, "the drawing")  # a sliver of 400x1 pixels: 400
        except NothingToReadError as why:  # blank, or a speck: the page was just cleared, or barely touched
            return {"verdict": "not a digit", "text": "this does not look like a digit", "digit": None,
                    "cnn": None, "mlp": None, "view": [0.0] * 784, "saliency": [0.0] * 784, "note": str(why),
                    "milliseconds": 1000 * (time.perf_counter() - start)}
        cnn, norm = self.models["cnn"][0], self.models["cnn"][1]["normalization"]
        mlp, mlp_norm = self.models["mlp"][0], self.models["mlp"][1]["normalization"]
        x = ((prepared.view - norm["mean"]) / norm["std"])[None, None]
        taught = self.teacher.learned  # (network, class names) once "learn" has run, else None
        with self.networks_in_use:  # one drawing at a time: the rule reads the CNN's features through a hook
            verdict = judge(cnn, self.rule, prepared.view[None], norm["mean"], norm["std"])[0]  # the CNN's bars too
            mlp_probs = predict_views(mlp, prepared.view[None], mlp_norm["mean"], mlp_norm["std"])[0].softmax(0)
            probs, text, kind, top = verdict.probs, verdict.text, verdict.kind, verdict.digit
            looked_at = cnn
            if taught is not None:
                looked_at, names = taught
                probs = predict_views(looked_at, prepared.view[None], norm["mean"], norm["std"])[0].softmax(0)
                top = int(probs.argmax())
                if top >= len(verdict.probs):  # one of the taught classes wins
                    text, kind = taught_text(probs, names), "taught"
                else:  # a digit wins: the same rule, quoting the probabilities the bars show
                    verdict = verdict_for(probs[:len(verdict.probs)], verdict.digit_probability, self.rule.accept)
                    text, kind, top = verdict.text, verdict.kind, verdict.digit
            saliency = smoothgrad(looked_at, x, torch.tensor([top]), samples=SALIENCY_SAMPLES)[0]
        saliency = saliency / saliency.abs().max().clamp_min(1e-8)  # -1 to 1, for the page's colours
        classes = taught[1] if taught is not None else [str(d) for d in range(len(verdict.probs))]
        return {"verdict": kind, "text": text, "digit": top if kind != "not a digit" else None,  # a class's index
                "name": classes[top] if kind != "not a digit" else None, "classes": classes,
                "cnn": probs.tolist(), "mlp": mlp_probs.tolist(),
                "view": prepared.view.flatten().tolist(), "saliency": saliency.flatten().tolist(),
                "note": "; ".join(prepared.notes), "milliseconds": 1000 * (time.perf_counter() - start)}

    def add_example(self, png: bytes, name: str) -> dict:
        """Keep one drawing of a class to teach, as my_dataset/<name>/<time>.png (re-encoded, like "save")."""
        return self.teacher.add(reencoded_png(png), name)

    def save(self, png: bytes) -> dict:
        """Write the drawing into the save folder as a PNG this code encoded itself from the decoded pixels."""
        folder = ensure_writable(self.save_dir, "drawings")
        path = folder / f"drawing_{datetime.now():%Y%m%d_%H%M%S_%f}.png"
        partial = path.with_name(path.name + ".part")
        partial.write_bytes(reencoded_png(png))
        partial.replace(path)  # complete, or not there at all
        print(f"saved {shown(path)}")
        return {"path": shown(path)}


def taught_text(probs: torch.Tensor, names: list[str]) -> str:
    """The answer when a taught class wins: named plainly when sure, else with the runner-up, as digits are."""
    (first, second), (p1, p2) = probs.topk(2).indices.tolist(), probs.topk(2).values.tolist()
    if p1 >= SURE - 0.005:  # shown rounded: 89.6% would read "90%"
        return f"{names[first]} ({percent(p1)})"
    return f"not sure: {names[first]} ({percent(p1)}) or {names[second]} ({percent(p2)})"


class Teacher:
    """The teach panel's two buttons: keep examples of a named class, and learn every class kept so far.

    Learning runs in a thread of its own, so the page can ask how far it got (/teach/status)
    while the server keeps answering drawings; the network it makes replaces the previous one
    in one step, when it is complete.
    """

    def __init__(self, cnn: tuple, data, folder: Path, networks_in_use: threading.Lock):
        self.cnn, self.norm = cnn[0], cnn[1]["normalization"]
        self.folder = folder
        self.lock = threading.Lock()  # one "add" or "learn" decision at a time
        self.networks_in_use = networks_in_use  # the app's: features are read through a hook on the CNN
        self.learned = None  # (network, class names) after a successful "learn"
        self.status = {"state": "idle", "progress": 0.0, "message": "nothing learned yet"}
        images, labels = data.train
        keep = torch.cat([torch.nonzero(labels == d).squeeze(1)[:TEACH_DIGITS] for d in range(10)])
        self.digit_features = body_features(self.cnn, images[keep].cpu())  # (10 * TEACH_DIGITS, D), computed once
        self.digit_labels = labels[keep].cpu()

    def class_dir(self, name) -> Path:
        """my_dataset/<name>, for a name that is one folder-safe word and not a digit."""
        if not isinstance(name, str):
            raise RefusedError(400, 'expected {"image": "data:image/png;base64,...", "name": "a class name"}')
        try:
            check_class_name(name, "the class name")
        except LearnerError as why:
            raise RefusedError(400, str(why)) from None
        if name in {str(d) for d in range(10)}:
            raise RefusedError(400, f"the class name {name!r} is a digit, which the network knows already: "
                                    "choose a word, such as star")
        folder = (self.folder / name).resolve()
        if folder.parent != self.folder.resolve():  # never anywhere else, whatever the name
            raise RefusedError(400, f"the class name {name!r} does not name a folder inside {shown(self.folder)}/")
        return folder

    def counts(self) -> dict:
        """Drawings kept per class, read from the folder (so drawings of earlier sessions count too)."""
        if not self.folder.is_dir():
            return {}
        return {d.name: len(list(d.glob("*.png"))) for d in sorted(self.folder.iterdir())
                if d.is_dir() and not d.name.startswith(".")}

    def add(self, png: bytes, name) -> dict:
        folder = self.class_dir(name)
        with self.lock:
            counts = self.counts()
            if name not in counts and len(counts) >= MAX_TAUGHT_CLASSES:
                raise RefusedError(400, f"{MAX_TAUGHT_CLASSES} classes are taught already: add to one of them")
            if counts.get(name, 0) >= MAX_EXAMPLES:
                raise RefusedError(400, f"{name} has {MAX_EXAMPLES} examples already: press learn")
            ensure_writable(folder, "taught drawings")
            path = folder / f"{name}_{datetime.now():%Y%m%d_%H%M%S_%f}.png"
            partial = path.with_name(path.name + ".part")
            partial.write_bytes(png)
            partial.replace(path)  # complete, or not there at all
            counts = self.counts()
        return {"name": name, "counts": counts}

    def learn(self, _request: dict | None = None) -> dict:
        """Start learning every class in the folder (unless it is learning already); the page asks for status."""
        with self.lock:
            if self.status["state"] == "learning":
                return dict(self.status)
            counts = self.counts()
            ready = {name: n for name, n in counts.items() if n >= 2}
            if not ready:
                raise RefusedError(400, "teach a class first: type its name, draw it, and press \"add example\" "
                                        "at least twice")
            if len(ready) > MAX_TAUGHT_CLASSES:  # folders made by hand: the page learns at most this many
                raise RefusedError(400, f"{shown(self.folder)}/ holds {len(ready)} classes, and the page learns at "
                                        f"most {MAX_TAUGHT_CLASSES}: move some of them out")
            self.status = {"state": "learning", "progress": 0.0, "message": "reading your drawings"}
        threading.Thread(target=self._learn, args=(sorted(ready),), daemon=True).start()
        return dict(self.status)

    def _learn(self, names: list[str]) -> None:
        start = time.perf_counter()
        try:
            views, labels = [], []
            for label, name in enumerate(names):
                for path in sorted((self.folder / name).glob("*.png"))[:MAX_EXAMPLES]:
                    try:
                        views.append(prepare_digit(path).view)
                        labels.append(label)
                    except LearnerError:  # a blank drawing: nothing to learn from it
                        continue
            if not views:
                raise LearnerError("none of the drawings holds anything to learn from: draw larger")
            x = normalized(torch.stack(views), self.norm)  # (N, 1, 28, 28), as predict_views normalizes
            torch.manual_seed(0)
            moved = random_affine(10, 0.1, 1.5, -self.norm["mean"] / self.norm["std"])
            copies = torch.cat([x] + [moved(x) for _ in range(TEACH_COPIES - 1)])
            y = torch.tensor(labels).repeat(TEACH_COPIES)
            with self.networks_in_use:
                features = body_features(self.cnn, copies)

            def progress(step, steps):
                self.status = {"state": "learning", "progress": step / steps,
                               "message": f"learning: step {step} of {steps}"}

            with torch.enable_grad():
                head = teach_new_classes(get_head(self.cnn), self.digit_features, self.digit_labels, features, y,
                                         TEACH_STEPS, TEACH_RATE, seed=0, progress=progress)
            network = extended_network(self.cnn, head)
            self.learned = (network, [str(d) for d in range(10)] + names)  # one assignment: never half a network
            seconds = time.perf_counter() - start
            self.status = {"state": "done", "progress": 1.0, "seconds": seconds, "classes": names,
                           "message": f"learned {', '.join(names)} from {len(views)} drawings in {seconds:.1f} s: "
                                      "draw one!"}
        except Exception as error:  # the page hears it in one line; the server stays up
            self.status = {"state": "error", "progress": 0.0,
                           "message": str(error) if isinstance(error, LearnerError) else
                           f"learning failed ({type(error).__name__}); see the server's terminal"}
            if not isinstance(error, LearnerError):
                print(f"drawing page: {type(error).__name__} while learning: {error}")

    def report(self, _request: dict | None = None) -> dict:
        """How far learning got, and the drawings kept per class."""
        return {**self.status, "counts": self.counts()}


def reencoded_png(data: bytes) -> bytes:
    """The pixels of a PNG, encoded anew: a JPEG, a GIF or bytes hidden after the image never reach the disk."""
    from PIL import Image

    image_from_bytes(data, "the drawing", MAX_PIXELS)  # not an image, damaged, too large: one line (400)
    with Image.open(io.BytesIO(data)) as opened:
        if opened.format != "PNG":
            raise LearnerError(f"the drawing is a {opened.format} image, not a PNG: only the page's PNG is saved")
        opened.load()
        buffer = io.BytesIO()
        opened.save(buffer, format="PNG")
    return buffer.getvalue()


def json_from(body: bytes, expected: str = "a JSON object") -> dict:
    """The request body as a JSON object, or RefusedError (400) saying what was `expected`."""
    try:
        request = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RefusedError(400, f"malformed JSON: {error}") from None
    except RecursionError:
        raise RefusedError(400, "malformed JSON: nested too deeply") from None
    if not isinstance(request, dict):
        raise RefusedError(400, f"expected {expected}")
    return request


def drawing_from(body: bytes) -> bytes:
    """The PNG bytes inside a request body {"image": "data:image/png;base64,..."}, or RefusedError (400)."""
    shape = '{"image": "data:image/png;base64,..."}'
    image = json_from(body, shape).get("image")
    if not isinstance(image, str) or not image.startswith("data:image/png;base64,"):
        raise RefusedError(400, f"expected {shape}")
    try:
        return base64.b64decode(image.split(",", 1)[1], validate=True)
    except (binascii.Error, ValueError):
        raise RefusedError(400, "the image is not valid base64") from None


# --- Who may ask, and how much at once -----------------------------------------------------------
class Gatekeeper:
    """Only this launch's own page may use the server.

    Any web page open in the learner's browser can send requests to 127.0.0.1, so a server on
    this computer is not private by being local. Four checks, as notebook and development
    servers make them: the Host header must name this server (a page that renamed a host of its
    own to 127.0.0.1, "DNS rebinding", sends its own name); the Origin, which browsers add to
    every cross-site request, must be this page's; a POST must be JSON, which a page elsewhere
    cannot send without the browser asking this server first (and it never says yes); and each
    POST carries a random token that only the page served here knows.
    """

    def __init__(self, port: int):
        self.token = secrets.token_urlsafe(24)  # new at every launch
        self.hosts = {f"127.0.0.1:{port}", f"localhost:{port}"}
        self.origins = {f"http://{host}" for host in self.hosts}

    def check(self, headers, post: bool) -> None:
        """Raise RefusedError(403) naming the first check the request fails."""
        host, origin = headers.get("Host", ""), headers.get("Origin")
        if host not in self.hosts:
            raise RefusedError(403, f"Host {host!r} is not this server (expected 127.0.0.1 or localhost with its port)")
        if origin is not None and origin not in self.origins:
            raise RefusedError(403, f"Origin {origin!r} is not this page")
        if post:
            kind = headers.get("Content-Type", "").split(";")[0].strip().lower()
            if kind != "application/json":
                raise RefusedError(403, f"Content-Type {kind or 'missing'!r}: only application/json is accepted")
            if not hmac.compare_digest(headers.get("X-Page-Token", "").encode(), self.token.encode()):
                raise RefusedError(403, "missing or wrong page token: reload the page this server printed")


class WorkQueue:
    """At most WORKERS drawings prepared at once, QUEUE more waiting; past that, "busy" (503).

    Each prediction holds tens of MB for a moment; without a bound, a burst of requests would
    hold them all at once.
    """

    def __init__(self, workers: int = WORKERS, waiting: int = QUEUE, wait: float = QUEUE_WAIT):
        self.running, self.limit, self.wait = threading.BoundedSemaphore(workers), workers + waiting, wait
        self.lock, self.admitted = threading.Lock(), 0

    @contextmanager
    def slot(self):
        with self.lock:
            if self.admitted >= self.limit:
                raise RefusedError(503, "busy, try again in a moment")
            self.admitted += 1
        try:
            if not self.running.acquire(timeout=self.wait):
                raise RefusedError(503, "busy, try again in a moment")
            try:
                yield
            finally:
                self.running.release()
        finally:
            with self.lock:
                self.admitted -= 1


# --- The server --------------------------------------------------------------------------------
def body_length(headers) -> int:
    """The request's Content-Length, checked: 411 when absent or chunked, 400 when not a whole number."""
    if headers.get("Transfer-Encoding"):
        raise RefusedError(411, "send the body with a Content-Length, not in chunks")
    value = headers.get("Content-Length")
    if value is None:
        raise RefusedError(411, "a Content-Length is required")
    if not re.fullmatch(r"[0-9]{1,12}", value.strip()):
        raise RefusedError(400, f"Content-Length {value[:20]!r} is not a whole number of bytes")
    return int(value)


def make_handler(app: DrawingApp, page: bytes, gate: Gatekeeper, queue: WorkQueue, timeout: float = TIMEOUT):
    """A request handler that knows the app: GET / gives the page; POST /predict, /save and /teach/... answer JSON."""
    page, seconds = page.replace(TOKEN_PLACEHOLDER, gate.token.encode()), timeout

    class Handler(BaseHTTPRequestHandler):
        timeout = seconds  # of silence, before the socket gives up (a slow or lying client)

        def do_GET(self):
            self.answer(lambda: self.page(), post=False)

        def do_POST(self):
            self.answer(lambda: self.work(), post=True)

        def page(self):
            if self.path != "/":
                raise RefusedError(404, f"no such page: {self.path[:80]}")
            self.reply(200, page, "text/html; charset=utf-8")

        def work(self):
            routes = {"/predict": lambda body: app.predict(drawing_from(body)),
                      "/save": lambda body: app.save(drawing_from(body)),
                      "/teach/add": lambda body: app.add_example(drawing_from(body), json_from(body).get("name")),
                      "/teach/learn": lambda body: app.teacher.learn(json_from(body)),
                      "/teach/status": lambda body: app.teacher.report(json_from(body))}
            if self.path not in routes:
                raise RefusedError(404, f"no such route: {self.path[:80]}")
            length = body_length(self.headers)
            if length > MAX_BODY:
                if length <= 8 * MAX_BODY:  # read and drop it, so the client hears the answer
                    self.read_body(length)
                raise RefusedError(413, f"request too large ({length:,} bytes; {MAX_BODY:,} at most)")
            body = self.read_body(length)
            with queue.slot():
                self.reply_json(200, routes[self.path](body))

        def answer(self, respond, post: bool):
            """Run one request; every failure becomes an HTTP answer with a one-line reason, never a traceback."""
            try:
                gate.check(self.headers, post)
                respond()
            except RefusedError as why:
                if why.status == 403:
                    print(f"refused {self.command} {self.path[:80]} from a stranger: {why}")
                self.close_connection = True
                self.reply_json(why.status, {"error": str(why)})
            except LearnerError as why:  # not an image, too large, damaged: the learner's own words
                self.reply_json(400, {"error": str(why)})
            except (ConnectionError, TimeoutError):  # the client left (a reload mid-answer): nothing to say
                self.close_connection = True
            except Exception as error:  # a bug of ours: one line here, a 500 there, and the server stays up
                print(f"drawing page: {type(error).__name__} while answering {self.command} {self.path[:80]}: {error}")
                self.close_connection = True
                self.reply_json(500, {"error": f"the server failed ({type(error).__name__}); see its terminal"})

        def read_body(self, length: int) -> bytes:
            """Exactly `length` bytes within `timeout` seconds in all, or 408 (a body shorter than it claims)."""
            deadline, parts, got = time.monotonic() + seconds, [], 0
            try:
                while got < length:
                    if time.monotonic() > deadline:
                        raise TimeoutError
                    part = self.rfile.read1(min(65_536, length - got))
                    if not part:
                        break
                    parts.append(part)
                    got += len(part)
            except TimeoutError:
                raise RefusedError(408, f"the body did not arrive within {seconds:g} s") from None
            if got < length:
                raise RefusedError(400, f"the body ended after {got:,} of the {length:,} bytes announced")
            return b"".join(parts)

        def reply_json(self, status: int, content: dict):
            self.reply(status, json.dumps(content).encode(), "application/json")

        def reply(self, status: int, body: bytes, kind: str):
            try:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("X-Content-Type-Options", "nosniff")
                self.end_headers()
                self.wfile.write(body)
            except (ConnectionError, TimeoutError):  # gone before the answer: nothing to tell it
                self.close_connection = True

        def send_error(self, code, message=None, *_):  # a malformed request line or header
            self.close_connection = True
            self.reply_json(code, {"error": message or "bad request"})

        def log_message(self, *_):  # quiet: one line per drawing would flood the terminal
            pass

    return Handler


class DrawingServer(ThreadingHTTPServer):
    """http.server's threading server, with room for a burst, a cap on connections, and no tracebacks."""

    request_queue_size = 128  # the listen backlog: a burst of 50 connections waits instead of being reset
    daemon_threads = True

    def __init__(self, address, handler):
        super().__init__(address, handler)
        self.open_connections = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def process_request(self, request, client_address):
        if not self.open_connections.acquire(blocking=False):  # too many at once: 503 at the door
            try:
                request.settimeout(1)
                request.sendall(b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                                b"Content-Length: 38\r\n\r\n{\"error\": \"busy, try again in a moment\"}")
            except OSError:
                pass  # it left already; the door closes either way
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.open_connections.release()

    def handle_error(self, *_):
        error = sys.exc_info()[1]
        if not isinstance(error, (ConnectionError, TimeoutError, socket.timeout)):  # a client leaving is no news
            print(f"drawing page: {type(error).__name__}: {error}")


def start_server(app: DrawingApp, port: int = PORT, timeout: float = TIMEOUT, queue: WorkQueue | None = None
                 ) -> DrawingServer:
    """Serve the app on 127.0.0.1 (this computer only) in a background thread; port 0 picks a free one."""
    server = DrawingServer(("127.0.0.1", port), BaseHTTPRequestHandler)
    gate = Gatekeeper(server.server_address[1])  # the port is known only once the socket is bound
    server.RequestHandlerClass = make_handler(app, PAGE.read_bytes(), gate, queue or WorkQueue(), timeout)
    server.token = gate.token  # for tests and tools that drive the server without the page
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
    print(f"drawing page: {address}  (on this computer only, for this page only; Ctrl-C stops it)")
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
    check_knob("MAX_PIXELS", MAX_PIXELS, is_whole(MAX_PIXELS, 10_000), "use a whole number of at least 10,000")
    check_knob("WORKERS", WORKERS, is_whole(WORKERS, 1, 8), "use a whole number from 1 to 8")
    check_knob("QUEUE", QUEUE, is_whole(QUEUE, 0, 64), "use a whole number from 0 to 64")
    check_knob("QUEUE_WAIT", QUEUE_WAIT, is_number(QUEUE_WAIT, 1, 60), "use a number of seconds from 1 to 60")
    check_knob("MAX_CONNECTIONS", MAX_CONNECTIONS, is_whole(MAX_CONNECTIONS, 16, 256),
               "use a whole number from 16 to 256")
    check_knob("TIMEOUT", TIMEOUT, is_number(TIMEOUT, 1, 60), "use a number of seconds from 1 to 60")
    check_knob("SALIENCY_SAMPLES", SALIENCY_SAMPLES, is_whole(SALIENCY_SAMPLES, 1), "use a whole number of at least 1")
    for name, value, low, high in (("MAX_TAUGHT_CLASSES", MAX_TAUGHT_CLASSES, 1, 50),
                                   ("MAX_EXAMPLES", MAX_EXAMPLES, 2, 1000), ("TEACH_DIGITS", TEACH_DIGITS, 10, 1000),
                                   ("TEACH_COPIES", TEACH_COPIES, 1, 32),
                                   ("TEACH_STEPS", TEACH_STEPS, 50, 2000)):
        check_knob(name, value, is_whole(value, low, high), f"use a whole number from {low} to {high:,}")
    check_knob("TEACH_RATE", TEACH_RATE, is_number(TEACH_RATE, 0.0001, 1), "use a number from 0.0001 to 1")


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
