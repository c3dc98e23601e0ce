"""How well are digits from outside MNIST read, and non-digits refused? An evaluation set the tests never see.

Builds 150 pictures of digits in styles the test suite does not use: typed in nine fonts and
photographed (light paper, grey ink, blur, a tilt, off centre), and drawn with a thin pen on a
large canvas and with a thick marker, as dark-on-light drawings and as transparent PNGs. Each
is prepared exactly as `05_understand_model.py --image` prepares a file, and read by your
models/cnn.pt and models/mlp.pt. Then the non-digit pictures of mnist_common/pictures.py
(other seeds than 05's) measure the "not a digit" rule.

Run:   python benchmarks/handwriting_eval.py      (about a minute; needs models/cnn.pt and models/mlp.pt)
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

import mnist_common  # noqa: E402
from mnist_common.handwriting import predict_views, prepare_image  # noqa: E402
from mnist_common.pictures import EVALUATION_FONTS, not_digits, typed_digit  # noqa: E402
from mnist_common.rejection import auroc, energy, fit_rejection_rule  # noqa: E402


def circle(cx, cy, rx, ry, start=0.0, end=2 * np.pi, n=24):
    return [(cx + rx * np.cos(a), cy + ry * np.sin(a)) for a in np.linspace(start, end, n)]


STROKES = {  # each digit as pen strokes, in 0-1 units of the canvas (y downwards)
    0: [circle(0.5, 0.5, 0.22, 0.33)],
    1: [[(0.42, 0.27), (0.54, 0.15), (0.54, 0.85)]],
    2: [[*circle(0.5, 0.33, 0.2, 0.17, np.pi, 2.25 * np.pi), (0.28, 0.85), (0.75, 0.85)]],
    3: [circle(0.5, 0.33, 0.19, 0.16, 1.1 * np.pi, 2.5 * np.pi),
        circle(0.5, 0.66, 0.21, 0.18, 1.5 * np.pi, 2.9 * np.pi)],
    4: [[(0.62, 0.85), (0.62, 0.15), (0.25, 0.62), (0.78, 0.62)]],
    5: [[(0.72, 0.15), (0.36, 0.15), (0.33, 0.45), *circle(0.5, 0.63, 0.2, 0.2, 1.25 * np.pi, 2.85 * np.pi)]],
    6: [[(0.65, 0.15), (0.38, 0.45), *circle(0.5, 0.65, 0.18, 0.18, np.pi, 3 * np.pi)]],
    7: [[(0.25, 0.18), (0.75, 0.18), (0.42, 0.85)]],
    8: [circle(0.5, 0.32, 0.17, 0.16), circle(0.5, 0.67, 0.21, 0.19)],
    9: [[*circle(0.5, 0.34, 0.18, 0.18), (0.68, 0.34), (0.6, 0.85)]],
}


def drawn(digit: int, size: int, width: int, transparent: bool) -> np.ndarray:
    """A drawing as a paint program saves it, read back as grayscale in 0-1 (as read_image would)."""
    mode, paper, ink = ("RGBA", (0, 0, 0, 0), (0, 0, 0, 255)) if transparent else ("L", 255, 0)
    image = Image.new(mode, (size, size), paper)
    pen = ImageDraw.Draw(image)
    for points in STROKES[digit]:
        pen.line([(x * size, y * size) for x, y in points], fill=ink, width=width, joint="curve")
    return mnist_common.handwriting._to_gray(image)


def evaluation_set(seed: int = 7) -> dict[str, list[tuple[np.ndarray, int]]]:
    """Name of the style -> [(picture, digit)]: 90 typed and photographed, 60 drawn."""
    rng = np.random.default_rng(seed)
    styles = {f"typed, {Path(name).stem}": [(typed_digit(d, name, rng), d) for d in range(10)]
              for name in EVALUATION_FONTS}
    styles["drawn, 2-px pen on 600 px"] = [(drawn(d, 600, 2, False), d) for d in range(10)]
    styles["drawn, thick marker"] = [(drawn(d, 300, 28, False), d) for d in range(10)]
    styles["drawn, transparent PNG"] = [(drawn(d, 400, 12, True), d) for d in range(10)]
    styles["drawn, thin pen, transparent"] = [(drawn(d, 500, 3, True), d) for d in range(10)]
    styles["drawn, thin pen on grey paper"] = [(0.35 + 0.5 * drawn(d, 400, 4, False), d) for d in range(10)]
    styles["drawn, marker on a shadowed page"] = [
        (np.clip(drawn(d, 300, 20, False) * np.linspace(0.45, 1.0, 300)[None, :], 0, 1), d) for d in range(10)]
    return styles


def read_all(model, checkpoint, rule, styles) -> dict:
    norm = checkpoint["normalization"]
    results = {}
    for style, items in styles.items():
        views = torch.stack([prepare_image(picture).view for picture, _ in items])
        verdicts = rule.verdicts(predict_views(model, views, norm["mean"], norm["std"]))
        results[style] = (sum(v.digit == d for v, (_, d) in zip(verdicts, items)),
                          sum(v.kind == "digit" and v.digit == d for v, (_, d) in zip(verdicts, items)), len(items))
    return results


def main() -> None:
    data = mnist_common.load_mnist()
    styles = evaluation_set()
    pictures = not_digits(60, seed=11)
    for name, file, script in (("CNN", "cnn.pt", "04_improved_model.py"), ("MLP", "mlp.pt", "03_train_model.py")):
        model, checkpoint = mnist_common.load_model(mnist_common.MODELS_DIR / file, script)
        rule = fit_rejection_rule(model, data.val[0])
        results = read_all(model, checkpoint, rule, styles)
        right = sum(r[0] for r in results.values())
        total = sum(r[2] for r in results.values())
        print(f"\n{name}: {right} of {total} digits read right ({right / total:.1%}); per style (right, of which "
              "answered confidently):")
        for style, (r, confident, n) in results.items():
            print(f"  {style:<36} {r:>3}/{n}  ({confident} confident)")
        scores, refused = [], 0
        for images in pictures.values():
            for image in images:
                try:
                    view = prepare_image(image).view
                except mnist_common.LearnerError:
                    refused += 1
                    continue
                scores.append(energy(predict_views(model, view[None], data.mean, data.std))[0])
        every = torch.cat([torch.stack(scores), torch.full((refused,), -1e9)])
        digits = energy(mnist_common.predict_logits(model, data.test[0]))
        print(f"  non-digits: AUROC {auroc(digits, every):.3f}; refused at 95% of digits kept: "
              f"{(every < rule.confident).float().mean():.0%} of {len(every)} ({refused} by the preparation itself)")


if __name__ == "__main__":
    with mnist_common.friendly_errors():
        main()
