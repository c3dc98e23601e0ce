"""How well are digits from outside MNIST read, and non-digits refused? Measured on styles the rule never saw.

The "not a digit" rule (mnist_common/rejection.py) is fitted on digits and non-digits typed in
the DejaVu fonts, drawn by a jittery hand and MNIST's validation digits. Everything here is
something else: the STIX and Computer Modern fonts, regular, bold, heavy and italic; hairline
pens; clean renders and photos; 3000-pixel canvases; tiny digits enlarged; digits touching the
border; light on dark; phone photos stored sideways with an EXIF tag; transparent and 16-bit
PNGs; MNIST test digits shrunk to 8-16 pixels and enlarged; and, when scikit-learn is installed,
1,797 digits written by 43 other people (UCI's 8x8 scans). Every picture is encoded as a PNG or
JPEG file and read back exactly as `05_understand_model.py --image` reads a file. Three networks
are scored: the CNN after outlier exposure (mnist_common/rejection.py `taught_model`, what --image
and the drawing page use), the CNN as 04 trained it, and the MLP, each with its own fitted rule.

Run:   python benchmarks/handwriting_eval.py                  (about 12 minutes on 2 cores; needs models/cnn.pt, mlp.pt)
       python benchmarks/handwriting_eval.py --folder DIR     (also DIR/labels.csv: file,kind,label,style)
       pip install scikit-learn                               (adds the other people's handwriting)
"""

import argparse
import csv
import io
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

import mnist_common  # noqa: E402
from mnist_common.handwriting import image_from_bytes, prepare_image, read_image  # noqa: E402
from mnist_common.pictures import (  # noqa: E402
    HELD_OUT_FONTS,
    LETTERS,
    LOOK_ALIKES,
    SYMBOLS,
    blank_sheet_on_desk,
    drawn_digit,
    glyph,
    not_digits,
    on_page,
    photo_of,
    random_shape,
    texture,
)
from mnist_common.rejection import fit_rejection_rule, judge, taught_model  # noqa: E402

SEED = 7  # other seeds than the fitting set's and 05's
FOLDER_STYLE_WORDS = 1  # a folder's styles are grouped by their first word(s): "typed", "pencil", "hexagon"...
REGULAR = ["STIXGeneral.ttf", "cmr10.ttf", "cmss10.ttf", "cmtt10.ttf"]
BOLD = ["STIXGeneralBol.ttf", "cmb10.ttf", "STIXGeneralBolIta.ttf"]
ITALIC = ["STIXGeneralItalic.ttf", "cmti10.ttf", "STIXGeneralBolIta.ttf"]
TARGETS = {  # group of styles -> (least share read right, most share refused)
    "typed (every weight)": (0.97, 0.02),
    "low resolution, enlarged": (0.85, 1.0),
    "photos, pens, PNG files": (0.98, 1.0),
}


def encoded(picture: np.ndarray, fmt: str = "PNG", **options) -> bytes:
    """A grayscale picture in 0-1 as the bytes of an image file."""
    buffer = io.BytesIO()
    Image.fromarray((np.clip(picture, 0, 1) * 255).round().astype(np.uint8)).save(buffer, fmt, **options)
    return buffer.getvalue()


def sideways_jpeg(picture: np.ndarray, turn: int) -> bytes:
    """A phone photo: the pixels stored turned, with the EXIF tag that says how to turn them back."""
    orientation, transpose = {90: (6, Image.ROTATE_90), 180: (3, Image.ROTATE_180), 270: (8, Image.ROTATE_270)}[turn]
    image = Image.fromarray((np.clip(picture, 0, 1) * 255).astype(np.uint8)).transpose(transpose)
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85, exif=exif)
    return buffer.getvalue()


def typed(rng, fonts, weight=0.0, look="clean", size=200) -> list:
    """Every digit twice in each of `fonts`: (file bytes, digit)."""
    out = []
    for name in fonts:
        for digit in list(range(10)) * 2:
            picture = on_page(glyph(str(digit), name, int(rng.integers(50, 110)), weight), rng, size, look)
            out.append((encoded(picture), digit))
    return out


def touching(rng) -> list:
    """The glyph cropped so that it touches one or two edges of the picture."""
    out = []
    for i, digit in enumerate(list(range(10)) * 3):
        ink = np.asarray(glyph(str(digit), REGULAR[i % len(REGULAR)], 120), dtype=np.float32) / 255
        pad = [(int(rng.integers(0, 2)) * 30, int(rng.integers(0, 2)) * 30) for _ in range(2)]
        pad[i % 2] = (0, pad[i % 2][1])  # no margin on one side at least
        out.append((encoded(1 - np.pad(ink, pad)), digit))
    return out


def tiny(rng, data_raw) -> list:
    """Digits only 8 to 16 pixels tall, enlarged: typed in held-out fonts, and MNIST test digits shrunk."""
    out = []
    for i, digit in enumerate(list(range(10)) * 3):
        height = int(rng.integers(8, 17))
        small = 255 - np.asarray(glyph(str(digit), REGULAR[i % len(REGULAR)], height * 2), dtype=np.uint8)
        image = Image.fromarray(small).resize((max(1, small.shape[1] // 2), height), Image.BILINEAR)
        image = image.resize((image.width * 12, image.height * 12), Image.NEAREST if i % 2 else Image.BILINEAR)
        out.append((encoded(np.pad(np.asarray(image, dtype=np.float32) / 255, 20, constant_values=1)), digit))
    images, labels = data_raw.test
    for index in torch.randperm(len(labels), generator=torch.Generator().manual_seed(SEED))[:60].tolist():
        side = int(rng.integers(8, 17))
        small = Image.fromarray(255 - images[index].numpy()).resize((side, side), Image.BILINEAR)
        out.append((encoded(np.asarray(small.resize((side * 15, side * 15), Image.BICUBIC), np.float32) / 255),
                    int(labels[index])))
    return out


def other_people(rng) -> list:
    """UCI's handwritten digits (43 people, 8x8 scans, 0-16), enlarged to 160-320 pixels; empty without sklearn."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        return []
    digits = load_digits()
    out = []
    for index in rng.permutation(len(digits.target))[:200]:
        scan = 1 - digits.images[index] / 16  # dark ink on light paper
        side = int(rng.integers(160, 321))
        image = Image.fromarray((np.pad(scan, 1, constant_values=1) * 255).astype(np.uint8))
        out.append((encoded(np.asarray(image.resize((side, side), Image.BICUBIC), np.float32) / 255),
                    int(digits.target[index])))
    return out


def drawn(digit, size, width, transparent=False) -> bytes:
    image = drawn_digit(digit, size, width, transparent)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def sixteen_bit(digit, rng) -> bytes:
    picture = on_page(glyph(str(digit), "cmss10.ttf", 90), rng, 220, "clean")
    buffer = io.BytesIO()
    Image.fromarray((picture * 65535).astype(np.uint16)).save(buffer, "PNG")
    return buffer.getvalue()


def digit_styles(data_raw) -> dict:
    """Group -> style -> [(file bytes, digit)]: every style held out from the rule's fitting."""
    rng = np.random.default_rng(SEED)
    photo = [(encoded(photo_of(glyph(str(d), name, int(rng.integers(70, 120))), rng), "JPEG", quality=60), d)
             for name in REGULAR for d in range(10)]
    huge = [(encoded(on_page(glyph(str(d), BOLD[d % 3], 400), rng, 3000, "clean"), "JPEG", quality=80), d)
            for d in list(range(10)) * 2]
    sideways = [(sideways_jpeg(photo_of(glyph(str(d), REGULAR[d % 4], 100), rng), (90, 180, 270)[i % 3]), d)
                for i, d in enumerate(list(range(10)) * 3)]
    return {
        "typed (every weight)": {
            "regular, clean": typed(rng, REGULAR), "bold, clean": typed(rng, BOLD), "italic, clean": typed(rng, ITALIC),
            "heavy felt pen (+7% of height)": typed(rng, REGULAR + BOLD[:2], weight=0.07),
            "light on dark": typed(rng, REGULAR + BOLD[:2], look="dark"),
            "touching the border": touching(rng),
            "3000x3000 canvas, bold": huge,
        },
        "low resolution, enlarged": {"8-16 px tall, enlarged": tiny(rng, data_raw), "other people (UCI 8x8)":
                                     other_people(rng)},
        "photos, pens, PNG files": {
            "photographed, JPEG": photo, "phone photo stored sideways (EXIF)": sideways,
            "hairline pen (1 px on 800)": [(drawn(d, 800, 1), d) for d in range(10)] * 2,
            "thick marker": [(drawn(d, 300, 26), d) for d in range(10)] * 2,
            "transparent PNG": [(drawn(d, 400, 10, True), d) for d in range(10)] * 2,
            "16-bit PNG": [(sixteen_bit(d, rng), d) for d in list(range(10)) * 2],
        },
    }


def non_digit_styles() -> dict:
    """Kind -> [file bytes]: letters and symbols in held-out fonts, made pictures, and look-alike letters apart."""
    rng = np.random.default_rng(SEED + 1)
    def typed_chars(chars, count):
        return [encoded(on_page(glyph(str(rng.choice(list(chars))), str(rng.choice(HELD_OUT_FONTS)),
                                      int(rng.integers(50, 110)), float(rng.choice([0.0, 0.0, 0.05]))),
                                rng, 200, str(rng.choice(["clean", "photo", "dark"])))) for _ in range(count)]
    made = not_digits(20, seed=SEED + 2)
    desk_rng = np.random.default_rng(SEED + 3)  # its own seed: the other kinds stay as they were
    return {"letters (held-out fonts)": typed_chars(LETTERS, 60), "symbols (held-out fonts)": typed_chars(SYMBOLS, 40),
            "shapes": [encoded(on_page(random_shape(rng, 200), rng, 200, "clean")) for _ in range(30)],
            "scribbles": [encoded(p) for p in made["scribbles"]], "noise": [encoded(p) for p in made["noise"]],
            "blank paper": [encoded(p) for p in made["blank paper"]],
            "textures": [encoded(texture(rng, 200)) for _ in range(20)],
            "look-alikes (O I l S Z B g q...)": typed_chars(LOOK_ALIKES, 40),
            "blank sheets on desks (photographed)": [
                encoded(blank_sheet_on_desk(desk_rng, int(desk_rng.integers(160, 400))), "JPEG", quality=85)
                for _ in range(30)]}


def folder_styles(folder: Path) -> tuple[dict, dict]:
    """A folder of files with labels.csv (file,kind,label,style): digits by style, non-digits by style."""
    digits, others = defaultdict(list), defaultdict(list)
    with open(folder / "labels.csv") as table:
        for row in csv.DictReader(table):
            path = folder / "images" / row["file"] if (folder / "images").is_dir() else folder / row["file"]
            style = " ".join(row["style"].split()[:FOLDER_STYLE_WORDS])  # "typed noto sans bold ..." -> "typed"
            if row["kind"] == "digit":
                digits[style].append((path, int(row["label"])))
            else:  # letters that really look like digits are counted apart, as the benchmark's own are
                apart = ", look-alike" if "lookalike" in row["style"].split() else ""
                others[f"{style} ({row['kind']}{apart})"].append(path)
    return dict(digits), dict(others)


def verdicts_for(files, model, rule, norm) -> list:
    """A verdict per file (bytes or a path), None where the preparation itself refused it."""
    views, where = [], []
    for i, item in enumerate(files):
        try:
            gray = read_image(item) if isinstance(item, Path) else image_from_bytes(item)
            views.append(prepare_image(gray).view)
            where.append(i)
        except mnist_common.LearnerError:
            pass
    out = [None] * len(files)
    for i, verdict in zip(where, judge(model, rule, torch.stack(views), norm["mean"], norm["std"]) if views else []):
        out[i] = verdict
    return out


def score_digits(verdicts, digits) -> Counter:
    counts = Counter()
    for verdict, digit in zip(verdicts, digits):
        if verdict is None or verdict.kind == "not a digit":
            counts["refused"] += 1
        else:
            counts["right" if verdict.digit == digit else "wrong"] += 1
            counts["sure"] += verdict.digit == digit and verdict.kind == "digit"
    return counts


def report(name, model, checkpoint, rule, groups, others) -> None:
    norm = checkpoint["normalization"]
    print(f"\n{name}: read right (of which sure) / wrong / refused, per style")
    for group, styles in groups.items():
        total = Counter()
        for style, items in styles.items():
            if not items:
                print(f"  {style:<40} skipped (pip install scikit-learn to add it)")
                continue
            counts = score_digits(verdicts_for([f for f, _ in items], model, rule, norm), [d for _, d in items])
            total += counts
            right = f"{counts['right']}/{len(items)} ({counts['sure']})"
            print(f"  {style:<40} {right:>14}  {counts['wrong']:>3}  {counts['refused']:>3}")
        n = total["right"] + total["wrong"] + total["refused"]
        line = f"  = {group}: {total['right'] / n:.1%} right, {total['refused'] / n:.1%} refused ({n} digits)"
        if group in TARGETS:
            least, most = TARGETS[group]
            met = total["right"] / n >= least and total["refused"] / n <= most
            line += f"; target >= {least:.0%} right" + (f", <= {most:.0%} refused" if most < 1 else "")
            line += ": met" if met else ": MISSED"
        print(line)
    print("  non-digits: refused / not sure / answered as a confident digit")
    counted = Counter()
    for kind, files in others.items():
        kinds = Counter("refused" if v is None or v.kind == "not a digit" else v.kind for v in
                        verdicts_for(files, model, rule, norm))
        if "look-alike" not in kind and "lookalike" not in kind:
            counted += kinds
        print(f"  {kind:<40} {kinds['refused']:>4} {kinds['not sure']:>4} {kinds['digit']:>4}  of {len(files)}")
    n = sum(counted.values())
    print(f"  = non-digits (look-alikes apart): {(counted['refused'] + counted['not sure']) / n:.1%} refused or not "
          f"sure, {counted['digit']} of {n} answered as a confident digit; target >= 90%: "
          + ("met" if counted["refused"] + counted["not sure"] >= 0.9 * n else "MISSED"))


def main(folder: Path | None = None) -> None:
    data = mnist_common.load_mnist()
    groups, others = digit_styles(mnist_common.load_mnist(normalized=False)), non_digit_styles()
    if folder:
        extra_digits, extra_others = folder_styles(folder)
        groups[f"from {folder}"] = extra_digits
        others |= {f"{folder.name}: {kind}": files for kind, files in extra_others.items()}
    networks = (("CNN taught (what --image and the page use)", "cnn.pt", "04_improved_model.py"),
                ("CNN as 04 trained it", "cnn.pt", "04_improved_model.py"), ("MLP", "mlp.pt", "03_train_model.py"))
    for name, file, script in networks:
        model, checkpoint = mnist_common.load_model(mnist_common.MODELS_DIR / file, script)
        if "taught" in name:
            model = taught_model(model, mnist_common.MODELS_DIR / file, data)
        rule = fit_rejection_rule(model, data)
        answered = sum(v.kind != "not a digit" for v in judge(model, rule, (data.test[0][:, 0] * data.std + data.mean),
                                                              data.mean, data.std)) / len(data.test[1])
        print(f"\n{name}: MNIST test digits answered as digits: {answered:.2%} (target >= 99%: "
              f"{'met' if answered >= 0.99 else 'MISSED'}); refusal threshold {rule.accept:.3f}")
        report(name, model, checkpoint, rule, groups, others)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folder", type=Path, help="also score the files listed in FOLDER/labels.csv")
    with mnist_common.friendly_errors():
        main(parser.parse_args().folder)
