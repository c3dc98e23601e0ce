"""Your own handwriting: reading an image file and preparing it the way MNIST prepared its digits.

MNIST's recipe: light ink on a black background; the digit cropped to its ink, scaled so its
longer side is 20 pixels, and placed in a 28x28 image with its centre of mass in the middle.
A network trained on MNIST has only ever seen digits made that way, so a photo or a drawing
must be made that way too before the network can read it. Real pictures need a few more steps
than MNIST's scanned forms did, each a small function below:

  read_image          any PNG or JPEG (16-bit, transparent) -> grayscale, 0-1
  without_desk        a photo of a sheet lying on a darker desk: the desk painted the colour of the paper
  to_ink              ink bright on dark, as MNIST's (light paper is inverted)
  remove_background   subtract the paper's own, uneven brightness (shadows, lighting), never the ink
  ink_mask            which pixels are ink: Otsu's threshold
  keep_strokes        drop specks far smaller than the largest stroke, ruling, and what runs off the edge
  crop_to_ink         the box around the strokes
  match_stroke_width  widen thin pen strokes, peel heavy ones, to MNIST's stroke width before shrinking
  shrink_to_box       longer side 20 pixels, brightest ink 1.0
  centre_by_mass      into 28x28, centre of mass in the middle
  solid_ink           faint ink (a blurred scan, a pale pen) made as solid as MNIST's, after it is placed

`prepare_digit(path)` runs them all and keeps every step, for `--explain` to draw.
"""

from __future__ import annotations

import io
import struct
import sys
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .runtime import LearnerError
from .training import predict_logits

MNIST_BOX = 20  # MNIST scaled each digit's longer side to 20 pixels ...
MNIST_SIZE = 28  # ... and centred it, by centre of mass, in a 28x28 image
MNIST_STROKE = 2.5  # typical stroke width, in pixels of that 20-pixel box
MNIST_INK = 0.89  # MNIST's strokes are solid: half their ink pixels (those above 0.1) are brighter than this
HEAVY = 1.3  # strokes wider than 1.3 times MNIST's are peeled down to that (a bold font, a felt pen)
MAX_FILE_BYTES = 200_000_000  # refuse larger files before reading them (a phone photo is 2-10 MB)
MAX_PIXELS = 40_000_000  # refuse larger images (a phone photo has about 12 million pixels)
WORKING_SIZE = 320  # pictures are prepared at most this many pixels across: plenty for a 20-pixel digit
SPECK_SHARE = 0.08  # a blob of ink smaller than 8% of the largest stroke is a speck, not part of the digit
INNER_SHARE = 0.25  # a blob inside the picture at least a quarter the size of the largest may be the digit ...
GAP = 0.05  # ... and then blobs running off the picture's edge, 5% of its size away from it, are not part of it
RULING = 0.03  # a line from edge to edge of the page no thicker than 3% of the page is ruling (a margin), not ink
MIN_SIDE = 8  # a picture narrower than this many pixels cannot hold a digit ...
MAX_ASPECT = 20  # ... nor one more than 20 times as long as it is wide
FAINT = 0.2  # ink less than this much brighter than its background is paper grain or shadow, not a digit
DESK_SIZE = 96  # the sheet of paper in a photo is looked for on a copy at most this many pixels across
DESK_CONTRAST = 0.12  # a desk is at least this much darker than the sheet lying on it ...
DESK_SHARE = (0.02, 0.9)  # ... and covers this share of the photo
SMALL_SHEET = (0.6, 0.03, 0.92)  # desk beyond 60%: the sheet must be 4-cornered (92%), with no dark notches (3%)
SHEET_STEPS = np.arange(0, 0.21, 0.04)  # thresholds tried below Otsu's for the sheet's edge (its shaded parts too)
OFF_SHEET = 0.5  # dark strokes beyond the sheet, at most this share of those on it


class NothingToReadError(LearnerError):
    """A picture that can be read but holds no digit yet: blank, too faint, or a speck (a page just cleared)."""


@dataclass
class PreparedDigit:
    """Every step of the preparation, each a 2-D float array in 0-1 (for --explain), and the result."""

    original: np.ndarray  # as read, grayscale
    ink: np.ndarray  # bright ink on dark, at working size
    clean: np.ndarray  # background removed
    mask: np.ndarray  # what counts as ink (bool), specks removed
    crop: np.ndarray  # the box around the strokes, its pen matched to MNIST's
    small: np.ndarray  # longer side 20 pixels
    view: torch.Tensor  # (28, 28): what the network sees
    notes: list[str] = field(default_factory=list)  # anything a learner should know about this picture
    on_desk: bool = False  # a sheet lying on a darker desk was found, and the desk painted over in `ink`


# --- Reading -------------------------------------------------------------------------------------------
def read_image(path: Path) -> np.ndarray:
    """An image file as grayscale (H, W) in 0-1, whatever its format, depth or transparency."""
    path = Path(path)
    if path.is_dir():
        raise LearnerError(f"{path} is a folder, not an image: give the path of a PNG or JPEG file inside it")
    if not path.is_file():
        if path.exists():  # a FIFO, a device
            raise LearnerError(f"{path} is not a regular file: give the path of a PNG or JPEG file")
        raise LearnerError(f"{path} not found: give the path of a PNG or JPEG file")
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise LearnerError(f"{path} is too large ({MAX_FILE_BYTES // 1_000_000} MB at most) to be a photo of "
                               "a digit: give the path of a PNG or JPEG file")
        data = path.read_bytes()
    except OSError as error:  # no permission, a device, a file that vanished
        raise LearnerError(f"{path} cannot be read ({error.strerror or error}): check that it is a file you may "
                           "read") from None
    return image_from_bytes(data, str(path))


def image_from_bytes(data: bytes, name: str = "the image", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Encoded image bytes (PNG, JPEG...) as grayscale (H, W) in 0-1; larger than max_pixels: refused.

    8- and 16-bit images are scaled to 0-1 by their own range; a drawing on a transparent
    background (the default of drawing apps) becomes dark strokes on light paper. A phone stores
    a photo as its sensor saw it and writes "turned 90 degrees" in the file's EXIF tags: the
    picture is turned upright first, as every photo viewer does.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # too large is our one line, below
            warnings.filterwarnings("ignore", message="(?i).*exif")  # damaged EXIF: the picture is read as stored
            with Image.open(io.BytesIO(data)) as opened:
                if opened.width * opened.height > max_pixels:  # checked before a single pixel is decoded
                    raise Image.DecompressionBombError
                return _to_gray(upright(opened))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise LearnerError(f"{name} is too large ({max_pixels:,} pixels at most): shrink it, a few hundred "
                           "pixels across is plenty") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, struct.error, zlib.error, EOFError):
        raise LearnerError(f"{name} is not an image this script can read: use a PNG or JPEG file") from None


def upright(image):
    """The picture turned as its EXIF orientation tag says; as stored when the tag is damaged."""
    from PIL import ImageOps

    try:
        return ImageOps.exif_transpose(image)
    except (SyntaxError, struct.error, ValueError, KeyError, TypeError):
        return image


def _to_gray(image) -> np.ndarray:
    """PIL image -> float32 (H, W) in 0-1, dark strokes on light paper for transparent drawings."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit (or 32-bit integer) grayscale
        values = np.asarray(image, dtype=np.float64)
        full = 65535.0 if values.max() > 255 or image.mode.startswith("I;16") else 255.0
        return np.clip(values / full, 0, 1).astype(np.float32)
    if image.mode == "F":  # floating point (a TIFF from a scientific camera): scaled by its own range
        values = np.asarray(image, dtype=np.float32)
        finite = np.isfinite(values)
        if not finite.any():
            raise ValueError("no finite pixel")
        low, high = float(values[finite].min()), float(values[finite].max())
        values = np.where(finite, values, np.where(np.isposinf(values), high, low))  # NaN, -inf: dark; +inf: bright
        return ((values - low) / max(high - low, 1e-8)).astype(np.float32)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255
        alpha = rgba[..., 3]
        if (alpha < 0.5).any():  # a transparent background: whatever is opaque is ink
            if (alpha > 0.5).mean() < 0.5:  # strokes on a see-through page: ink = opacity
                return 1 - alpha
            return alpha * rgba[..., :3].mean(-1) + (1 - alpha)  # an opaque picture with transparent margins
    return np.asarray(image.convert("L"), dtype=np.float32) / 255


# --- The steps ---------------------------------------------------------------------------------------------
def _pool(x: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    """Max (or min) over a size x size neighbourhood of a (H, W) image, same size out.

    A square's maximum is the maximum along rows, then along columns: two thin windows cost
    2 * size comparisons per pixel instead of size * size.
    """
    sign = 1 if mode == "max" else -1
    y = sign * x[None, None]
    y = F.max_pool2d(y, (1, size), stride=1, padding=(0, size // 2))
    y = F.max_pool2d(y, (size, 1), stride=1, padding=(size // 2, 0))
    return sign * y[0, 0, : x.shape[0], : x.shape[1]]


def shrunk(image: np.ndarray, size: int) -> np.ndarray:
    """At most `size` pixels across, each pixel the average of those it covers (no detail a digit needs is lost)."""
    scale = size / max(image.shape)
    if scale >= 1:
        return image.astype(np.float32)
    t = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    return F.interpolate(t, size=tuple(max(1, round(side * scale)) for side in image.shape), mode="area")[0, 0].numpy()


def without_desk(gray: np.ndarray) -> tuple[np.ndarray, bool]:
    """A photo of a sheet of paper lying on a darker desk: everything off the sheet painted the colour
    of the paper, so the desk's edge is not taken for a stroke. (picture, whether a desk was found)

    Only a sheet that is plainly a sheet is found (`find_sheet`); any other picture is returned as it is.
    """
    small = shrunk(gray, DESK_SIZE)
    sheet = find_sheet(small)
    if sheet is None:
        return gray, False
    framed = F.pad(torch.from_numpy(sheet.astype(np.float32)), (2, 2, 2, 2))  # where the sheet meets the photo's
    inside = _pool(framed, 5, "min")[2:-2, 2:-2].numpy() > 0  # edge is an edge too: a sliver of desk may lie there
    t = torch.from_numpy(small)
    paper = inside & ((_pool(_pool(t, 7, "max"), 7, "min") - t).numpy() < DESK_CONTRAST / 2)  # not a dark stroke
    if not paper.any():
        return gray, False
    surface = spread(small, paper)  # off the sheet, the colour of the nearest paper
    full = [torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None, None] for x in (surface, inside)]
    surface = F.interpolate(full[0], size=gray.shape, mode="bilinear", align_corners=True)[0, 0].numpy()
    keep = F.interpolate(full[1], size=gray.shape, mode="bilinear", align_corners=True)[0, 0].numpy() > 0.5
    return np.where(keep, gray, np.clip(surface, 0, 1)).astype(np.float32), True


def spread(values: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Every unknown pixel given the average of its known neighbours, ring by ring outwards."""
    v = torch.from_numpy(np.where(known, values, 0).astype(np.float32))[None, None]
    k = torch.from_numpy(known.astype(np.float32))[None, None]
    while k.min() == 0:
        total, count = F.avg_pool2d(v * k, 3, 1, 1), F.avg_pool2d(k, 3, 1, 1)
        new = (k == 0) & (count > 0)
        v, k = torch.where(new, total / count.clamp_min(1e-6), v), torch.where(new, 1.0, k)
    return v[0, 0].numpy()


def find_sheet(small: np.ndarray) -> np.ndarray | None:
    """Where a sheet of paper lies on a darker desk, as a mask of `small`; None when the picture is not that.

    The sheet is a bright region, filled out to its convex outline; the desk is the darker rest that
    reaches a corner of the photo. Uneven light leaves part of the sheet darker than the rest, so several
    brightness thresholds are tried, from Otsu's down, and the outline with the sharpest edge is kept.
    """
    otsu = otsu_threshold(small)
    found = [sheet_at(small, otsu - step) for step in SHEET_STEPS]
    found = [candidate for candidate in found if candidate is not None]
    return max(found, key=lambda candidate: candidate[1])[0] if found else None


def sheet_at(small: np.ndarray, threshold: float) -> tuple[np.ndarray, float] | None:
    """The largest region brighter than `threshold`, as a sheet on a desk, and how sharp its edge is; None
    unless everything agrees: the desk covers a fair share of the photo and of its edge, is clearly darker,
    the sheet is nearly convex (paper is flat and straight-edged), its edge is a sharp step (a shadow or
    a vignette fades gradually), and the strokes are on the sheet, not on the "desk" (then shaded paper).
    A small sheet on a large desk looks much like a bold digit, light on a dark page, so it must also
    show four corners and no dark notches wider than a pen's stroke (a 2's or a 5's). So must a blank
    sheet (no strokes on it): then it is found on any desk, however patterned, if it lies wholly inside
    the photo; otherwise the desk must show no strokes either (else the "sheet" may be the lit part of a
    page whose digit lies in a shadow).
    """
    bright = small > threshold
    border = np.concatenate([bright[0], bright[-1], bright[:, 0], bright[:, -1]])
    if bright.mean() < 1 - DESK_SHARE[1] or border.mean() > 0.9:  # too little paper, or too little desk at the edge
        return None
    labels, count = connected_components(bright)
    sheet = labels == np.bincount(labels.ravel())[1:].argmax() + 1
    rest, _ = connected_components(~sheet)
    corners = [(0, 0), (0, -1), (-1, 0), (-1, -1)]  # the edge of a straight-edged sheet leaves the desk in a
    dark = [rest[c] for c in corners if not bright[c]]  # dark corner of the photo; ink touching its edge is no desk
    desk = np.isin(rest, [label for label in dark if label > 0])
    on_edge = np.concatenate([desk[0], desk[-1], desk[:, 0], desk[:, -1]]).mean()
    if not DESK_SHARE[0] <= desk.mean() <= DESK_SHARE[1] or on_edge < 0.1:
        return None
    contrast = float(np.median(small[sheet]) - np.median(small[desk]))
    hull = convex_hull(sheet)
    if contrast < DESK_CONTRAST or sheet.sum() < 0.8 * hull.sum():
        return None
    t = torch.from_numpy(hull.astype(np.float32))
    closed = _pool(_pool(torch.from_numpy(small), 5, "max"), 5, "min").numpy()  # thin dark strokes filled in

    def four_cornered() -> bool:  # no dark notch wider than a stroke (a 2's, a 5's), and not a rounded outline
        wide_dark = (hull & ~sheet & (closed - small < 0.06)).sum() / hull.sum()
        return wide_dark <= SMALL_SHEET[1] and quadrilateral_share(hull) >= SMALL_SHEET[2]

    if desk.mean() > SMALL_SHEET[0] and not four_cornered():  # a small bright patch: maybe a bold glyph, light
        return None  # on a dark page, instead
    within = _pool(t, 5, "min").numpy() > 0  # the sheet, less its outermost two pixels
    inner = hull & ~within  # two pixels inside the outline ...
    outer = desk & (_pool(t, 5, "max").numpy() > 0) & ~hull  # ... and two outside it
    if not (inner.any() and outer.any()):
        return None
    sharpness = float(np.median(small[inner]) - np.median(small[outer])) / contrast
    strokes = (closed - small) > max(0.06, 0.3 * contrast)  # thin and dark
    on_sheet = (strokes & hull).sum()
    off_sheet = (strokes & desk & ~(_pool(t, 7, "max").numpy() > 0)).sum()
    inside_photo = not np.concatenate([hull[0], hull[-1], hull[:, 0], hull[:, -1]]).any()
    blank = not (strokes & within).any() and (off_sheet == 0 or inside_photo) and four_cornered()  # any desk
    ok = sharpness >= 0.5 and (blank or (on_sheet > 0 and off_sheet <= OFF_SHEET * on_sheet))
    return (hull, sharpness) if ok else None


def quadrilateral_share(mask: np.ndarray) -> float:
    """How much of a mask's convex outline the largest four-cornered shape inside it covers: about 1 for
    a sheet of paper, however turned or tilted, less for a rounded or notched outline (a bold glyph)."""
    outline = hull_polygon(mask)
    best = 0.0
    for angle in np.radians(np.arange(0, 90, 3)):  # the four corners: the points furthest out along four
        directions = np.array([[np.cos(angle + k * np.pi / 2), np.sin(angle + k * np.pi / 2)] for k in range(4)])
        best = max(best, polygon_area(outline[(outline @ directions.T).argmax(0)]))  # directions at right angles
    return best / max(polygon_area(outline), 1e-6)


def polygon_area(points: np.ndarray) -> float:
    """The area inside a polygon given by its corners in order, (N, 2) (the shoelace formula)."""
    x, y = points[:, 0], points[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def hull_polygon(mask: np.ndarray) -> np.ndarray:
    """The corners of the smallest convex polygon around a mask's pixels, in order, (N, 2) as (x, y)
    (Andrew's monotone chain)."""
    rows = np.flatnonzero(mask.any(1))  # only each row's first and last pixel can be a corner
    first, last = mask[rows].argmax(1), mask.shape[1] - 1 - mask[rows][:, ::-1].argmax(1)
    points = sorted(set(zip(first.tolist() + last.tolist(), rows.tolist() * 2)))
    if len(points) < 3:
        return np.array(points, dtype=float).reshape(-1, 2)

    def half(points):
        chain = []
        for p in points:
            while len(chain) >= 2 and ((chain[-1][0] - chain[-2][0]) * (p[1] - chain[-2][1])
                                       - (chain[-1][1] - chain[-2][1]) * (p[0] - chain[-2][0])) <= 0:
                chain.pop()
            chain.append(p)
        return chain[:-1]

    return np.array(half(points) + half(points[::-1]), dtype=float)


def convex_hull(mask: np.ndarray) -> np.ndarray:
    """The smallest convex polygon around a mask's pixels, filled."""
    from PIL import Image, ImageDraw

    outline = hull_polygon(mask)
    if len(outline) < 3:
        return mask.copy()
    image = Image.new("1", (mask.shape[1], mask.shape[0]))
    ImageDraw.Draw(image).polygon([tuple(p) for p in outline], fill=1, outline=1)
    return np.asarray(image, dtype=bool)


def to_ink(gray: np.ndarray, light_paper: bool | None = None) -> np.ndarray:
    """Bright ink on a dark background at working size: light paper is inverted, large photos shrunk.

    Whether the paper is light is read from the picture's border (mostly paper) unless already known.
    """
    if light_paper is None:
        light_paper = np.median(np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])) > 0.5
    return shrunk(1 - gray if light_paper else gray, WORKING_SIZE)


def _quadratic_terms(height: int, width: int) -> np.ndarray:
    """1, x, y, x^2, xy, y^2 at every pixel of a -1..1 grid: (height * width, 6)."""
    y, x = np.meshgrid(np.linspace(-1, 1, height), np.linspace(-1, 1, width), indexing="ij")
    return np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], -1).reshape(-1, 6)


def paper_surface(ink: np.ndarray, rounds: int = 4) -> np.ndarray:
    """The paper's own brightness as a smooth surface, fitted only where there is no ink.

    A shadow or uneven light changes slowly across the page, so a gently curved surface
    (a quadratic in x and y) describes it. Fit it to every pixel, call whatever stands well
    above it ink, fit again to the rest, and repeat: the ink never pulls the surface up, however
    wide its strokes are.
    """
    small = torch.from_numpy(np.ascontiguousarray(ink, dtype=np.float32))[None, None]
    small = F.interpolate(small, size=(min(64, ink.shape[0]), min(64, ink.shape[1])), mode="area")[0, 0].numpy()
    a, values = _quadratic_terms(*small.shape), small.ravel().astype(np.float64)
    paper = np.ones(values.shape, dtype=bool)
    for _ in range(rounds):
        coef = np.linalg.lstsq(a[paper], values[paper], rcond=None)[0]
        above = values - a @ coef
        paper = above < max(otsu_threshold(np.clip(above, 0, None)), FAINT) / 2  # well below the ink
        if paper.sum() < 6:  # almost nothing but ink: the darkest pixels are the paper
            paper = values <= np.quantile(values, 0.1)
    return (_quadratic_terms(*ink.shape) @ coef).reshape(ink.shape).astype(np.float32)


def remove_background(ink: np.ndarray) -> np.ndarray:
    """Subtract the paper's own brightness: first its smooth surface, then what is left of it nearby.

    After the smooth surface, an "opening" (the darkest value nearby, then the brightest of those)
    takes away what still varies on a smaller scale: grain, a crease, a sharp-edged shadow. An
    opening erases every stroke narrower than its window and keeps the rest as background, so the
    window is made wider than the widest stroke, measured: no stroke, however heavy, is taken
    for paper.
    """
    x = (torch.from_numpy(ink) - torch.from_numpy(paper_surface(ink))).clamp_min(0)
    widest = stroke_width(x.numpy() > max(otsu_threshold(x.numpy()), FAINT))
    window = max(15, max(ink.shape) // 4, round(2 * widest) + 5) | 1  # odd, and wider than any stroke
    background = _pool(_pool(x, window, "min"), window, "max")
    background = F.avg_pool2d(background[None, None], 9, stride=1, padding=4, count_include_pad=False)[0, 0]
    return (x - background).clamp_min(0).numpy()


def otsu_threshold(values: np.ndarray) -> float:
    """Otsu's threshold: the brightness that best splits the values into two groups (ink, paper)."""
    counts, edges = np.histogram(values, bins=128, range=(0, max(float(values.max()), 1e-6)))
    centres = (edges[:-1] + edges[1:]) / 2
    weight = np.cumsum(counts)
    mean = np.cumsum(counts * centres)
    total, total_mean = weight[-1], mean[-1]
    split = (weight > 0) & (weight < total)  # thresholds that leave pixels on both sides
    between = np.full(len(counts), -1.0)
    between[split] = (total_mean * weight[split] / total - mean[split]) ** 2 / (weight[split] * (total - weight[split]))
    return float(centres[between.argmax()])


def ink_mask(clean: np.ndarray) -> np.ndarray:
    """Which pixels are ink: above Otsu's threshold (and clearly above the paper)."""
    if clean.max() < FAINT:
        return np.zeros_like(clean, dtype=bool)
    return clean > max(otsu_threshold(clean), FAINT)


def connected_components(mask: np.ndarray, coarse: int = 96) -> tuple[np.ndarray, int]:
    """Label the 8-connected blobs of a boolean mask: (labels, count), label 0 = background.

    The labels spread on a copy at most `coarse` pixels across (each coarse pixel is ink if any
    pixel under it is), then come back to full size: far fewer steps, and blobs a pixel or two
    apart, which no one would call separate strokes, count as one.
    """
    factor = max(1, -(-max(mask.shape) // coarse))
    full = torch.from_numpy(mask.astype(np.float32))
    inside = F.max_pool2d(full[None, None], factor, ceil_mode=True)[0, 0] > 0 if factor > 1 else full > 0
    h, w = inside.shape
    labels = torch.where(inside, torch.arange(1, h * w + 1, dtype=torch.float32).reshape(h, w), 0)
    while True:  # every ink pixel takes the largest label around it, until nothing changes ...
        grown = torch.where(inside, _pool(labels, 3, "max"), 0)
        # ... and jumps ahead: label n began at pixel n - 1, which by now holds a larger label of the same
        # blob, from further away still. Each round reaches twice as far as the last: a few dozen rounds at most.
        ahead = grown.numpy().ravel()[(grown.numpy().astype(np.int64) - 1).clip(0)]  # numpy: small, quick
        grown = torch.maximum(grown, torch.from_numpy(ahead) * inside)
        if torch.equal(grown, labels):
            break
        labels = grown
    labels = labels.repeat_interleave(factor, 0).repeat_interleave(factor, 1)[: mask.shape[0], : mask.shape[1]]
    labels = torch.where(full > 0, labels, 0)
    unique, relabelled = torch.unique(labels, return_inverse=True)
    background = int(unique[0] == 0)  # 0 when every pixel is ink: then the first blob must not become label 0
    return relabelled.numpy() + 1 - background, len(unique) - background


def keep_strokes(mask: np.ndarray) -> np.ndarray:
    """Drop what is not the digit: ruling (a thin line across the whole page, such as a notebook's
    margin), what runs off the picture's edge far from the digit (a pen lying beside the sheet, a
    corner of the desk) and specks (blobs far smaller than the largest stroke: a dot of dirt)."""
    labels, count = connected_components(mask)
    if count == 0:
        return mask
    rows, cols = np.nonzero(labels)
    which = labels[rows, cols] - 1
    areas = np.bincount(which, minlength=count)
    ruling = inside_ruling(mask, which, cols, count) | inside_ruling(mask.T, which, rows, count)
    candidates = ~ruling & ~off_the_page(mask.shape, which, rows, cols, areas)
    largest = areas[candidates].max(initial=0)
    keep = np.flatnonzero(candidates & (areas >= SPECK_SHARE * largest)) + 1
    return np.isin(labels, keep)


def off_the_page(shape: tuple[int, int], which: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                 areas: np.ndarray) -> np.ndarray:
    """(count,) which blobs run off the picture's edge well away from a digit-sized blob lying wholly
    inside it: the end of a pen, a corner of the desk, a shadow, not part of the digit. `which`, `rows`
    and `cols` give each ink pixel's blob and place, `areas` each blob's size."""
    height, width = shape
    count = len(areas)
    edge = np.zeros(count, dtype=bool)
    edge[np.unique(which[(rows == 0) | (rows == height - 1) | (cols == 0) | (cols == width - 1)])] = True
    inner = ~edge & (areas >= INNER_SHARE * areas.max())
    if not inner.any():
        return np.zeros(count, dtype=bool)
    top, left = np.full(count, height), np.full(count, width)
    bottom, right = np.zeros(count, dtype=int), np.zeros(count, dtype=int)
    np.minimum.at(top, which, rows), np.minimum.at(left, which, cols)
    np.maximum.at(bottom, which, rows), np.maximum.at(right, which, cols)
    gap = GAP * max(height, width)
    apart = ((bottom < top[inner].min() - gap) | (right < left[inner].min() - gap)
             | (top > bottom[inner].max() + gap) | (left > right[inner].max() + gap))
    return edge & apart


def inside_ruling(mask: np.ndarray, which: np.ndarray, cols: np.ndarray, count: int) -> np.ndarray:
    """(count,) which blobs lie wholly inside a narrow band of columns whose ink runs from the top of
    the page to its bottom: a ruled line, even where a faint one breaks into pieces. `which` and
    `cols` give each ink pixel's blob and column; for rows, pass the mask transposed and the rows."""
    height, width = mask.shape
    inked = mask.any(0)
    top, bottom = mask.argmax(0), height - 1 - mask[::-1].argmax(0)
    across = inked & (top <= 0.03 * height) & (bottom >= 0.97 * height)  # columns inked edge to edge
    band = np.convolve(across, np.ones(2 * round(RULING * width) + 1), "same") > 0  # such columns and their near ones
    low, high = np.full(count, width), np.zeros(count, dtype=int)
    np.minimum.at(low, which, cols)
    np.maximum.at(high, which, cols)
    in_band = np.zeros(count, dtype=bool)
    for start, stop in runs(band):
        if stop - start <= 3 * RULING * width:  # a band no wider than a ruled line and its margins
            in_band |= (low >= start) & (high < stop)
    return in_band


def runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of each run of True values in a 1-D boolean array."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flags.astype(int), [0]])))
    return list(zip(edges[::2], edges[1::2]))


def crop_to_ink(clean: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The box around the kept strokes, with everything outside them (specks, smudges) set to 0."""
    near = _pool(torch.from_numpy(mask.astype(np.float32)), 3, "max").numpy() > 0  # keep the strokes' soft edges
    kept = np.where(near, clean, 0)
    rows, cols = np.nonzero(kept > 0.05 * kept.max())
    return kept[rows.min():rows.max() + 1, cols.min():cols.max() + 1]


def stroke_width(mask: np.ndarray, coarse: int = 64) -> float:
    """Roughly how many pixels wide the strokes are: peel the mask one pixel layer at a time.

    The peeling runs on a copy at most `coarse` pixels across (each of its pixels is ink where
    most of the pixels under it are), so it costs the same for any size of picture.
    """
    factor = max(1, -(-max(mask.shape) // coarse))
    x = torch.from_numpy(mask.astype(np.float32))
    if factor > 1:
        x = (F.avg_pool2d(x[None, None], factor, ceil_mode=True)[0, 0] > 0.5).float()
    x = F.pad(x, (1, 1, 1, 1))  # paper all round: a stroke touching the edge is peeled from that side too
    inside, depth = x > 0, torch.zeros(x.shape)
    for _ in range(coarse):
        if x.sum() == 0:
            break
        depth += x
        x = _pool(x, 3, "min")
    depths = depth[inside]
    return 2 * factor * float(depths.quantile(0.9)) if len(depths) else 0.0


def match_stroke_width(crop: np.ndarray) -> np.ndarray:
    """Strokes as wide as MNIST's (about 2.5 pixels of the 20-pixel box): thin ones widened, heavy ones peeled.

    A 2-pixel pen line on a 600-pixel drawing would shrink to a tenth of a pixel: a faint grey
    smear the network has never seen, so it is widened first. A felt pen or a bold font does the
    opposite: shrunk to 20 pixels its strokes swallow the holes of a 6, 8 or 9, so strokes more
    than HEAVY times MNIST's width are peeled (the darkest value nearby) down to that width.
    """
    target = MNIST_STROKE * max(crop.shape) / MNIST_BOX  # MNIST's stroke width, in this crop's pixels
    width = stroke_width(crop > 0.5 * crop.max())
    t = torch.from_numpy(np.ascontiguousarray(crop, dtype=np.float32))
    peel = round((width - HEAVY * target) / 2)
    if peel >= 1:  # paper all round first, so that strokes touching the crop's edge are peeled there too
        padded = F.pad(t, (peel, peel, peel, peel))
        peeled = _pool(padded, 2 * peel + 1, "min")[peel:-peel, peel:-peel].numpy()
        if peeled.max() < 0.5 * crop.max():  # never peel a digit away (the width is only an estimate)
            return crop
        rows, cols = np.nonzero(peeled > 0.05 * peeled.max())
        return peeled[rows.min():rows.max() + 1, cols.min():cols.max() + 1]  # the box around the thinner strokes
    grow = round((target - width) / 2)
    if grow >= 1:
        return _pool(t, 2 * grow + 1, "max").numpy()
    return crop


def shrink_to_box(crop: np.ndarray) -> np.ndarray:
    """Longer side 20 pixels (averaging, so edges stay soft), then the brightest ink set to 1.0 as in MNIST."""
    height, width = crop.shape
    scale = MNIST_BOX / max(height, width)
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    t = torch.from_numpy(np.ascontiguousarray(crop, dtype=np.float32))[None, None]
    small = F.interpolate(t, size=size, mode="area" if scale < 1 else "bilinear")[0, 0].numpy()
    return small / max(float(small.max()), 1e-8)


def centre_by_mass(small: np.ndarray) -> torch.Tensor:
    """Place the 20-pixel digit in 28x28 with its centre of mass at (14, 14), as MNIST did."""
    total = small.sum()
    cy = (small.sum(1) * np.arange(small.shape[0])).sum() / total  # centre of mass, row
    cx = (small.sum(0) * np.arange(small.shape[1])).sum() / total  # centre of mass, column
    # MNIST's digits have their centre of mass at pixel (14, 14): 01_explore_mnist.py measures it
    top = int(np.clip(round(MNIST_SIZE / 2 - cy), 0, MNIST_SIZE - small.shape[0]))
    left = int(np.clip(round(MNIST_SIZE / 2 - cx), 0, MNIST_SIZE - small.shape[1]))
    canvas = np.zeros((MNIST_SIZE, MNIST_SIZE), dtype=np.float32)
    canvas[top:top + small.shape[0], left:left + small.shape[1]] = small
    return torch.from_numpy(canvas)


def solid_ink(view: torch.Tensor) -> torch.Tensor:
    """Faint ink brightened until half of it is brighter than `MNIST_INK`, as in MNIST; solid ink is left alone.

    A blurred low-resolution scan or a pale pen, shrunk, leaves a grey smear with a single bright
    pixel, which a network trained on MNIST often reads as a 1. This runs after the digit is
    placed, so the brightening never moves it: MNIST's own faint digits stay where MNIST put them.
    """
    ink = view[view > 0.1]
    gain = max(1.0, MNIST_INK / float(ink.median())) if ink.numel() else 1.0
    return (view * gain).clamp(0, 1)


def prepare_image(gray: np.ndarray, name: str = "the image") -> PreparedDigit:
    """A grayscale picture (H, W) in 0-1 -> MNIST's format, every step kept. Refuses blanks and specks."""
    height, width = gray.shape
    if min(height, width) < MIN_SIDE or max(height, width) > MAX_ASPECT * min(height, width):
        raise LearnerError(f"{name} is {width}x{height} pixels: too thin to hold a digit (give a picture at least "
                           f"{MIN_SIDE} pixels on each side and at most {MAX_ASPECT} times as long as it is wide)")
    page, on_desk = without_desk(gray)
    ink = to_ink(page, light_paper=True if on_desk else None)  # a sheet on a desk is the bright part
    clean = remove_background(ink)
    mask = ink_mask(clean)
    if mask.sum() == 0:
        raise NothingToReadError(f"{name} looks blank or too faint: no ink stands out from the paper (draw the "
                                 "digit darker, or on a plainer background)")
    mask = keep_strokes(mask)
    if mask.sum() == 0:
        raise NothingToReadError(f"{name} holds only the page's ruling, no digit: draw the digit darker or larger")
    if mask.sum() < 12 or max(np.ptp(np.nonzero(mask)[0]), np.ptp(np.nonzero(mask)[1])) < 6:
        raise NothingToReadError(f"{name} holds only a speck of ink, not a digit: draw the digit larger")
    crop = match_stroke_width(crop_to_ink(clean, mask))
    small = shrink_to_box(crop)
    notes = ["the photo shows a sheet of paper on a darker surface: only the sheet was read"] if on_desk else []
    if float(np.percentile(clean[mask], 50)) < 1.5 * FAINT:
        notes.append("the ink is faint against the paper: a darker pen or more light would help")
    return PreparedDigit(gray, ink, clean, mask, crop, small, solid_ink(centre_by_mass(small)), notes, on_desk)


def prepare_digit(path: Path) -> PreparedDigit:
    """Read an image file and prepare it as MNIST prepared its digits."""
    return prepare_image(read_image(path), str(path))


def prepare_files(paths: list[Path]) -> tuple[list[Path], list[PreparedDigit], list[Path]]:
    """Each file prepared as --image does: (the files read, their prepared digits, the files that failed).

    A file that cannot be read is one line on stderr and the others are still prepared; a lone
    file's error is raised as it is, and so is "none could be read".
    """
    good, prepared, failed = [], [], []
    for path in paths:
        try:
            prepared.append(prepare_digit(path))
            good.append(path)
        except LearnerError as why:
            if len(paths) == 1:
                raise
            print(f"error: {why}", file=sys.stderr)
            failed.append(path)
    if not prepared:
        raise LearnerError(f"none of the {len(paths)} images could be read (each is named above)")
    return good, prepared, failed


def predict_views(model, views: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """Logits (N, 10) for prepared (N, 28, 28) images in 0-1, normalized as in training."""
    device = next(model.parameters()).device
    x = ((views - mean) / std).unsqueeze(1).to(device)  # (N, 1, 28, 28)
    return predict_logits(model, x).cpu()
