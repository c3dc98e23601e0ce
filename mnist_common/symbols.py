"""Hand-drawn-looking symbols, made by the project: the ready-made example dataset of 07.

Each symbol is a few pen strokes in 0-1 units of the page (y downwards), like the digits of
pictures.py. A "hand" draws them never quite the same twice: every stroke wobbles, the whole
is slanted, squeezed and placed anywhere, with a fine pen, a pen or a marker, and the page is a
clean drawing, a photo of paper or light ink on a dark page. `export_example_dataset` writes
them in torchvision's ImageFolder layout: one folder per class, PNG files inside.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .pictures import circle, drawn_strokes, on_page
from .runtime import LearnerError, ensure_writable

SYMBOL_STROKES = {  # class name (a folder-safe word) -> the symbol's strokes
    "plus": [[(0.5, 0.18), (0.5, 0.82)], [(0.18, 0.5), (0.82, 0.5)]],
    "minus": [[(0.18, 0.5), (0.82, 0.5)]],
    "times": [[(0.24, 0.24), (0.76, 0.76)], [(0.76, 0.24), (0.24, 0.76)]],
    "equals": [[(0.2, 0.4), (0.8, 0.4)], [(0.2, 0.6), (0.8, 0.6)]],
    "question": [[*circle(0.5, 0.32, 0.17, 0.15, 1.05 * np.pi, 2.45 * np.pi), (0.5, 0.5), (0.5, 0.64)],
                 [(0.5, 0.8), (0.505, 0.82)]],
}
LOOKS = ("clean", "clean", "photo", "dark")  # as a drawing program saves it (twice as often), photographed, dark page


def wobbly(points, rng: np.random.Generator, amount: float) -> list[tuple[float, float]]:
    """A stroke as a hand draws it: resampled finely, then bent by a slow random drift."""
    points = np.asarray(points, dtype=np.float64)
    lengths = np.r_[0, np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))]
    along = np.linspace(0, lengths[-1], max(2, int(40 * lengths[-1]) + 2))
    fine = np.stack([np.interp(along, lengths, points[:, i]) for i in (0, 1)], 1)
    drift = np.cumsum(rng.normal(0, amount, fine.shape), axis=0)
    drift -= np.linspace(0, 1, len(fine))[:, None] * drift[-1]  # ends near where the hand aimed
    return [tuple(p) for p in fine + drift]


def drawn_symbol(name: str, rng: np.random.Generator, size: int) -> Image.Image:
    """One symbol, white on black, drawn by a jittery hand with a pen of any width."""
    slant, squeeze, tilt = rng.uniform(-0.2, 0.2), rng.uniform(0.75, 1.15), rng.uniform(-0.12, 0.12)
    strokes = []
    for points in SYMBOL_STROKES[name]:
        moved = [(0.5 + squeeze * (x - 0.5) + slant * (0.5 - y) + rng.normal(0, 0.015),
                  y + tilt * (x - 0.5) + rng.normal(0, 0.015)) for x, y in points]
        strokes.append(wobbly(moved, rng, 0.003))
    return drawn_strokes(strokes, max(2, round(size * rng.uniform(0.025, 0.09))), size)


def symbol_picture(name: str, rng: np.random.Generator) -> np.ndarray:
    """A drawn symbol on a page, (H, W) grayscale in 0-1, dark ink on light paper (or light on dark)."""
    size = int(rng.integers(96, 200))
    return on_page(drawn_symbol(name, rng, size), rng, size, str(rng.choice(LOOKS)))


def export_example_dataset(folder: Path, per_class: int, seed: int, names=tuple(SYMBOL_STROKES)) -> list[Path]:
    """Write `per_class` drawings of each symbol as folder/<name>/<name>_NNN.png; returns the files."""
    if not names or any(name not in SYMBOL_STROKES for name in names):
        raise LearnerError(f"the example symbols are {', '.join(SYMBOL_STROKES)}")
    rng = np.random.default_rng(seed)
    written = []
    for name in names:
        class_dir = ensure_writable(Path(folder) / name, "the example dataset")
        for i in range(per_class):
            picture = symbol_picture(name, rng)
            path = class_dir / f"{name}_{i:03d}.png"
            Image.fromarray(np.round(picture * 255).astype(np.uint8)).save(path)
            written.append(path)
    return written
