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

import mnist_common  # noqa: E402
from mnist_common.handwriting import predict_views, prepare_image  # noqa: E402
from mnist_common.pictures import EVALUATION_FONTS, drawn_digit, not_digits, typed_digit  # noqa: E402
from mnist_common.rejection import auroc, energy, fit_rejection_rule  # noqa: E402


def drawn(digit: int, size: int, width: int, transparent: bool) -> np.ndarray:
    """A drawing as a paint program saves it, read back as grayscale in 0-1 (as read_image would)."""
    return mnist_common.handwriting._to_gray(drawn_digit(digit, size, width, transparent))


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
