"""Your own handwriting: reading an image file and preparing it the way MNIST prepared its digits.

MNIST's recipe: light ink on a black background; the digit cropped to its ink, scaled so its
longer side is 20 pixels, and placed in a 28x28 image with its centre of mass in the middle.
A network trained on MNIST has only ever seen digits made that way, so a photo or a drawing
must be made that way too before the network can read it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from .runtime import LearnerError
from .training import predict_logits

MNIST_BOX = 20  # MNIST scaled each digit's longer side to 20 pixels ...
MNIST_SIZE = 28  # ... and centred it, by centre of mass, in a 28x28 image
MAX_PIXELS = 40_000_000  # refuse larger images (a phone photo has about 12 million pixels)


def read_image(path: Path) -> np.ndarray:
    """An image file as grayscale (H, W) in 0-1, whatever its format, depth or transparency.

    8- and 16-bit images are scaled to 0-1 by their own range; a drawing on a transparent
    background (the default of drawing apps) is laid on white paper, strokes dark.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if path.is_dir():
        raise LearnerError(f"{path} is a folder, not an image: give the path of a PNG or JPEG file inside it")
    if not path.is_file():
        raise LearnerError(f"{path} not found: give the path of a PNG or JPEG file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # too large is our one line, below
            with Image.open(path) as opened:
                if opened.width * opened.height > MAX_PIXELS:
                    raise Image.DecompressionBombError
                return _to_gray(opened)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise LearnerError(f"{path} is too large ({MAX_PIXELS:,} pixels at most): shrink it, a few hundred "
                           "pixels across is plenty") from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise LearnerError(f"{path} is not an image this script can read: use a PNG or JPEG file") from None


def _to_gray(image) -> np.ndarray:
    """PIL image -> float32 (H, W) in 0-1, dark strokes on light paper for transparent drawings."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit (or 32-bit integer) grayscale
        values = np.asarray(image, dtype=np.float64)
        full = 65535.0 if values.max() > 255 or image.mode.startswith("I;16") else 255.0
        return np.clip(values / full, 0, 1).astype(np.float32)
    if image.mode == "F":
        values = np.asarray(image, dtype=np.float32)
        return (values - values.min()) / max(float(values.max() - values.min()), 1e-8)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255
        alpha = rgba[..., 3]
        if (alpha < 0.5).any():  # a transparent background: whatever is opaque is ink
            gray = rgba[..., :3].mean(-1)
            if (alpha > 0.5).mean() < 0.5:  # strokes on a see-through page: ink = opacity
                return 1 - alpha
            return alpha * gray + (1 - alpha) * 1.0  # an opaque picture with transparent margins: on white
    return np.asarray(image.convert("L"), dtype=np.float32) / 255


def edge_pixels(image: np.ndarray) -> np.ndarray:
    """The pixels along the four edges of an image: mostly background in a photo of a digit."""
    return np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])


def prepare_digit(path: Path) -> tuple[np.ndarray, torch.Tensor]:
    """Read an image file and prepare it as MNIST was: returns (original, (28, 28) in 0-1).

    Grayscale; invert if the background is light (MNIST is light ink on black); crop to the
    ink; scale the longer side to 20 pixels; centre by centre of mass in a 28x28 image.
    """
    from PIL import Image

    original = read_image(path)
    ink = 1 - original if np.median(edge_pixels(original)) > 0.5 else original  # light paper: invert
    ink = np.clip(ink - np.median(edge_pixels(ink)), 0, None)  # the paper's own shade is not ink
    if ink.max() < 0.1:
        raise LearnerError(f"{path} looks blank: no digit found (draw it darker, or on a plainer background)")
    ink /= ink.max()
    rows, cols = np.nonzero(ink > 0.2)
    ink = ink[rows.min():rows.max() + 1, cols.min():cols.max() + 1]  # crop to the ink
    height, width = ink.shape
    scale = MNIST_BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = np.asarray(Image.fromarray((ink * 255).astype(np.uint8)).resize(size, Image.LANCZOS),
                       dtype=np.float32) / 255
    total = small.sum()
    cy = (small.sum(1) * np.arange(small.shape[0])).sum() / total  # centre of mass, row
    cx = (small.sum(0) * np.arange(small.shape[1])).sum() / total  # centre of mass, column
    # MNIST's digits have their centre of mass at pixel (14, 14): 01_explore_mnist.py measures it
    top = int(np.clip(round(MNIST_SIZE / 2 - cy), 0, MNIST_SIZE - small.shape[0]))
    left = int(np.clip(round(MNIST_SIZE / 2 - cx), 0, MNIST_SIZE - small.shape[1]))
    canvas = np.zeros((MNIST_SIZE, MNIST_SIZE), dtype=np.float32)
    canvas[top:top + small.shape[0], left:left + small.shape[1]] = small
    return original, torch.from_numpy(canvas)


def predict_views(model, views: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """Probabilities (N, 10) for prepared (N, 28, 28) images in 0-1, normalized as in training."""
    device = next(model.parameters()).device
    x = ((views - mean) / std).unsqueeze(1).to(device)  # (N, 1, 28, 28)
    return torch.softmax(predict_logits(model, x), 1).cpu()
