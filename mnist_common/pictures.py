"""Pictures the project makes itself, no download needed: typed digits made to look like photos,
and things that are not digits (blank paper, noise, scribbles, letters, shapes).

They test what a network trained on MNIST does with inputs from outside MNIST: the typed digits
should be read, the rest should be refused ("this does not look like a digit").
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT_DIR = Path(matplotlib.get_data_path()) / "fonts" / "ttf"  # the fonts matplotlib ships, on every machine
TEST_FONTS = ["DejaVuSans.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf"]  # used by the test suite
EVALUATION_FONTS = ["DejaVuSans-Bold.ttf", "DejaVuSerif-Italic.ttf", "DejaVuSansMono-Bold.ttf", "STIXGeneral.ttf",
                    "STIXGeneralBol.ttf", "cmr10.ttf", "cmss10.ttf", "cmtt10.ttf", "DejaVuSans-Oblique.ttf"]
CANVAS = 200  # pixels across, like a small crop of a phone photo


def font(name: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONT_DIR / name), size)


def paper(rng: np.random.Generator, size: int = CANVAS) -> np.ndarray:
    """Light paper as a camera sees it: not quite white, lit unevenly, a little grain."""
    level = rng.uniform(0.72, 0.95)
    ramp = np.linspace(-1, 1, size)
    angle = rng.uniform(0, 2 * np.pi)
    light = rng.uniform(0.05, 0.18) * (np.cos(angle) * ramp[None, :] + np.sin(angle) * ramp[:, None])
    return np.clip(level + light + rng.normal(0, 0.015, (size, size)), 0, 1)


def photo_of(glyph: Image.Image, rng: np.random.Generator) -> np.ndarray:
    """Lay a white-on-black glyph (L mode) on photographed paper: grey ink, rotation, blur, off centre."""
    glyph = glyph.rotate(rng.uniform(-10, 10), resample=Image.BILINEAR, expand=True)
    bbox = glyph.getbbox()
    glyph = glyph.crop(bbox) if bbox else glyph
    canvas = Image.new("L", (CANVAS, CANVAS), 0)
    room = (CANVAS - glyph.width, CANVAS - glyph.height)
    corner = (int(rng.uniform(0.15, 0.85) * max(room[0], 0)), int(rng.uniform(0.15, 0.85) * max(room[1], 0)))
    canvas.paste(glyph, corner)
    canvas = canvas.filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 1.6)))
    ink = np.asarray(canvas, dtype=np.float32) / 255
    background = paper(rng)
    darkness = rng.uniform(0.55, 0.85)  # pencil to marker
    return np.clip(background * (1 - darkness * ink), 0, 1)


def typed_digit(digit: int, font_name: str, rng: np.random.Generator) -> np.ndarray:
    """A digit typed in a font, printed, and photographed: (CANVAS, CANVAS) grayscale in 0-1."""
    size = int(rng.uniform(70, 120))
    glyph = Image.new("L", (size * 2, size * 2), 0)
    ImageDraw.Draw(glyph).text((size // 2, size // 4), str(digit), fill=255, font=font(font_name, size))
    return photo_of(glyph, rng)


def circle(cx, cy, rx, ry, start=0.0, end=2 * np.pi, n=24) -> list[tuple[float, float]]:
    """Points along an ellipse (or an arc of one), in 0-1 units."""
    return [(cx + rx * np.cos(a), cy + ry * np.sin(a)) for a in np.linspace(start, end, n)]


DIGIT_STROKES = {  # each digit as pen strokes, in 0-1 units of the canvas (y downwards); not used by the tests
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


def drawn_digit(digit: int, size: int, width: int, transparent: bool = False, moved=(0.0, 0.0),
                scale: float = 1.0) -> Image.Image:
    """A digit as a paint program saves it: dark strokes on white paper, or on a transparent page.

    `moved` shifts the strokes (in 0-1 units) and `scale` shrinks or grows them about the centre.
    """
    mode, page, ink = ("RGBA", (0, 0, 0, 0), (0, 0, 0, 255)) if transparent else ("L", 255, 0)
    image = Image.new(mode, (size, size), page)
    pen = ImageDraw.Draw(image)
    for points in DIGIT_STROKES[digit]:
        pen.line([((0.5 + scale * (x - 0.5) + moved[0]) * size, (0.5 + scale * (y - 0.5) + moved[1]) * size)
                  for x, y in points], fill=ink, width=width, joint="curve")
    return image


def drawn_strokes(points_list, width: int, size: int = CANVAS) -> Image.Image:
    """White strokes through lists of (x, y) points in 0-1 units, on black."""
    image = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(image)
    for points in points_list:
        draw.line([(x * size, y * size) for x, y in points], fill=255, width=width, joint="curve")
    return image


# --- Things that are not digits -------------------------------------------------------------------------
def blank(rng: np.random.Generator) -> np.ndarray:
    """Paper with nothing on it (and, half the time, a faint smudge)."""
    page = paper(rng)
    if rng.random() < 0.5:
        yy, xx = np.mgrid[:CANVAS, :CANVAS] / CANVAS
        page -= 0.03 * np.exp(-((xx - rng.random()) ** 2 + (yy - rng.random()) ** 2) / 0.01)
    return np.clip(page, 0, 1)


def noise(rng: np.random.Generator) -> np.ndarray:
    """Television snow: every pixel random."""
    return rng.random((CANVAS, CANVAS)).astype(np.float32)


def scribble(rng: np.random.Generator) -> np.ndarray:
    """A few random pen strokes, as a child (or a cat) might draw them."""
    strokes = [[tuple(rng.uniform(0.15, 0.85, 2)) for _ in range(rng.integers(2, 6))]
               for _ in range(rng.integers(3, 7))]
    return photo_of(drawn_strokes(strokes, int(rng.integers(4, 10))), rng)


def letter(rng: np.random.Generator, letters: str = "ABCDEFHKMNPRTUVWXYabdefhkmnprtuwxy") -> np.ndarray:
    """A letter, typed in one of the fonts, photographed (letters that look like digits, O l S Z..., left out)."""
    names = TEST_FONTS + EVALUATION_FONTS
    size = int(rng.uniform(70, 120))
    glyph = Image.new("L", (size * 2, size * 2), 0)
    ImageDraw.Draw(glyph).text((size // 2, size // 4), str(rng.choice(list(letters))), fill=255,
                               font=font(str(rng.choice(names)), size))
    return photo_of(glyph, rng)


def shape(rng: np.random.Generator) -> np.ndarray:
    """A drawn star, cross-hatch or zigzag: deliberate marks that are still not digits."""
    kind = rng.integers(3)
    if kind == 0:  # a five-pointed star
        angles = np.pi / 2 + np.arange(11) * 4 * np.pi / 5
        points = [(0.5 + 0.35 * np.cos(a), 0.5 - 0.35 * np.sin(a)) for a in angles]
        strokes = [points]
    elif kind == 1:  # a grid
        strokes = [[(0.2, y), (0.8, y)] for y in (0.3, 0.5, 0.7)] + [[(x, 0.2), (x, 0.8)] for x in (0.3, 0.5, 0.7)]
    else:  # a zigzag
        strokes = [[(0.15 + 0.1 * i, 0.3 if i % 2 else 0.7) for i in range(8)]]
    return photo_of(drawn_strokes(strokes, int(rng.integers(5, 10))), rng)


NOT_DIGITS = {"blank paper": blank, "noise": noise, "scribbles": scribble, "letters": letter, "shapes": shape}


def not_digits(count_each: int, seed: int) -> dict[str, list[np.ndarray]]:
    """`count_each` pictures of each kind of non-digit, reproducible from the seed."""
    rng = np.random.default_rng(seed)
    return {kind: [make(rng) for _ in range(count_each)] for kind, make in NOT_DIGITS.items()}
