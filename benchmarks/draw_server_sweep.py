"""Can anything but its own page use the drawing server, or knock it over? Each case, and its answer.

Starts `05b_draw_a_digit.py --no-browser` in its own process (what `make draw` runs), reads the
page's token the way a browser does, then sends what an attacker or a careless client would:
other hosts and origins, text/plain, no token, malformed lengths and bodies, pictures that once
crashed the handler, slow and lying clients, bursts. It prints one row per case (the HTTP
status and the server's one-line answer), then the server's memory and threads after the
bursts, read from /proc (Linux). Every request goes to 127.0.0.1 only.

Run:   python benchmarks/draw_server_sweep.py      (about a minute; needs models/cnn.pt and models/mlp.pt)
"""

import base64
import io
import json
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from draw_page_latency import page_token, start_page  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from mnist_common import friendly_errors  # noqa: E402

BURST = 50  # predictions sent at once
LIARS = 200  # clients that announce a body and never send it
BIG = (1000, 1000)  # the largest picture the server accepts (MAX_PIXELS), sent six at once


def png(size=(280, 280), mode="RGBA", line=True) -> bytes:
    image = Image.new(mode, size, "white")
    if line:
        ImageDraw.Draw(image).line([(size[0] * 0.25, size[1] * 0.2), (size[0] * 0.75, size[1] * 0.2),
                                    (size[0] * 0.4, size[1] * 0.85)], fill="black", width=max(3, size[0] // 18))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def body_of(picture: bytes) -> bytes:
    return json.dumps({"image": "data:image/png;base64," + base64.b64encode(picture).decode()}).encode()


def request(port: int, token: str, body: bytes = b"{}", path: str = "/predict", **headers) -> bytes:
    sent = {"Host": f"127.0.0.1:{port}", "Content-Type": "application/json", "X-Page-Token": token,
            "Content-Length": str(len(body))}
    sent.update({name.replace("_", "-"): value for name, value in headers.items()})
    lines = "".join(f"{k}: {v}\r\n" for k, v in sent.items() if v is not None)
    return f"POST {path} HTTP/1.1\r\n{lines}Connection: close\r\n\r\n".encode() + body


def send(port: int, data: bytes, wait: float = 60) -> tuple[str, str]:
    """(status, one-line answer) for raw bytes; 'reset' or 'no answer' when the connection gave none."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=wait) as connection:
            connection.sendall(data)
            answer = b""
            while chunk := connection.recv(65_536):
                answer += chunk
    except ConnectionResetError:
        return "reset", ""
    except TimeoutError:
        return "no answer", ""
    if not answer:
        return "closed", ""
    head, _, body = answer.partition(b"\r\n\r\n")
    try:
        reply = json.loads(body)
        text = reply.get("error") or reply.get("text") or reply.get("path", "")
    except ValueError:
        text = f"({len(body):,} bytes of page)"
    return head.split()[1].decode(), text


def proc_status(pid: int) -> dict:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return {"peak MB": int(fields["VmHWM"].split()[0]) / 1024, "now MB": int(fields["VmRSS"].split()[0]) / 1024,
            "threads": int(fields["Threads"])}


def cases(port: int, token: str) -> list:
    seven = body_of(png())
    pictures = [("a 400x1 PNG", png((400, 1), "L", False)), ("a 20000x10 PNG", png((20_000, 10), "L", False)),
                ("a 1200x1000 PNG (over the pixel cap)", png((1200, 1000), "L", False)),
                ("a PNG cut short inside its pixels", png()[:-40]),
                ("a PNG with a broken chunk after its pixels",
                 png()[:-12] + b"\x00\x00\x00\x04tEXtjunk\xde\xad\xbe\xef" + png()[-12:]),
                ("a GIF", (lambda b: (Image.new("L", (50, 50)).save(b, "GIF"), b.getvalue())[1])(io.BytesIO()))]
    rows = [
        ("a drawing of a 7, as the page sends it", request(port, token, seven)),
        ("GET / with Host: evil.example", f"GET / HTTP/1.1\r\nHost: evil.example:{port}\r\n\r\n".encode()),
        ("POST from Origin: http://evil.example", request(port, token, seven, Origin="http://evil.example")),
        ("POST with Host: evil.example (DNS rebinding)", request(port, token, seven, Host="evil.example")),
        ("POST /save as text/plain", request(port, token, seven, "/save", Content_Type="text/plain")),
        ("POST without the token", request(port, token, seven, X_Page_Token=None)),
        ("POST with a guessed token", request(port, token, seven, X_Page_Token="guess")),
        ("JSON nested 100,000 deep", request(port, token, b"[" * 100_000 + b"]" * 100_000)),
        ("Content-Length: abc", request(port, token, Content_Length="abc")),
        ("Content-Length: 1e3", request(port, token, Content_Length="1e3")),
        ("Content-Length: -1", request(port, token, Content_Length="-1")),
        ("a chunked POST", request(port, token, b"2\r\n{}\r\n0\r\n\r\n", Content_Length=None,
                                   Transfer_Encoding="chunked")),
        ("2,000,001 bytes", request(port, token, b"x" * 2_000_001)),
        ("a body shorter than its Content-Length", request(port, token, seven[:100], Content_Length=str(len(seven)))),
        ("/save of a PNG with bytes after its end", request(port, token, body_of(png() + b"<script>"), "/save")),
    ]
    rows += [(name, request(port, token, body_of(picture))) for name, picture in pictures]
    rows.append(("/save of a GIF", request(port, token, body_of(pictures[-1][1]), "/save")))
    return rows


def main() -> dict:
    server, address = start_page()
    port = int(address.rstrip("/").rsplit(":", 1)[1])
    results = {}
    try:
        token = page_token(address)
        print(f"{'case':<48} status  answer")
        for name, data in cases(port, token):
            status, text = send(port, data)
            results[name] = status
            print(f"{name:<48} {status:<7} {text[:90]}")
        seven = request(port, token, body_of(png()))
        started = time.perf_counter()
        with ThreadPoolExecutor(BURST) as pool:
            statuses = list(pool.map(lambda _: send(port, seven)[0], range(BURST)))
        counts = ", ".join(f"{statuses.count(s)} x {s}" for s in sorted(set(statuses)))
        print(f"\n{BURST} predictions at once: {counts}, all answered in {time.perf_counter() - started:.1f} s")
        before = proc_status(server.pid)
        big = request(port, token, body_of(png(BIG, "RGBA")))
        with ThreadPoolExecutor(6) as pool:
            statuses = list(pool.map(lambda _: send(port, big)[0], range(6)))
        after = proc_status(server.pid)
        grew = after["peak MB"] - before["peak MB"]
        print(f"six {BIG[0]}x{BIG[1]} RGBA pictures at once: {statuses}; the server's peak memory "
              f"{before['peak MB']:.0f} MB -> {after['peak MB']:.0f} MB (+{grew:.0f} MB)")
        liars = []
        for _ in range(LIARS):
            connection = socket.create_connection(("127.0.0.1", port), timeout=30)
            connection.sendall(request(port, token, b"{", Content_Length="5000"))
            liars.append(connection)
        threads_while = proc_status(server.pid)["threads"]
        time.sleep(12)
        threads_after = proc_status(server.pid)["threads"]
        answered = sum(b" 408 " in connection.recv(200) for connection in liars)
        for connection in liars:
            connection.close()
        print(f"{LIARS} clients that announce 5,000 bytes and send 1: the server held {threads_while} threads, "
              f"{threads_after} after 12 s (its timeout is 10 s), {answered} were answered 408; "
              f"a normal drawing meanwhile: {send(port, seven)[0]}")
        results.update(burst=statuses, threads_after=threads_after, answered=answered)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return results


if __name__ == "__main__":
    with friendly_errors():
        main()
