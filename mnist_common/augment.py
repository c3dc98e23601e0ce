"""Moving digits around: shifts and rotations of whole batches, on whatever device they live.

Used twice: to MEASURE robustness (does a network still read a digit moved 4 pixels to the
left? see robustness.py) and to AUGMENT training (show the network a freshly moved copy of
every image, every epoch). Everything works on normalized (N, 1, 28, 28) batches, with the background filled in
as the normalized value of a black pixel, so a moved digit looks like any other MNIST digit.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

DIRECTIONS = ((0, 1), (0, -1), (1, 0), (-1, 0))  # right, left, down, up: (rows, columns) per pixel


def shift(images: torch.Tensor, rows: int, cols: int, background: float) -> torch.Tensor:
    """Move every image `rows` pixels down and `cols` right (negative: up, left); what enters is background."""
    out = torch.full_like(images, background)
    height, width = images.shape[-2:]
    src_r, dst_r = slice(max(0, -rows), height - max(0, rows)), slice(max(0, rows), height - max(0, -rows))
    src_c, dst_c = slice(max(0, -cols), width - max(0, cols)), slice(max(0, cols), width - max(0, -cols))
    out[..., dst_r, dst_c] = images[..., src_r, src_c]
    return out


def affine(images: torch.Tensor, degrees: torch.Tensor, scale: torch.Tensor, shift_px: torch.Tensor,
           background: float, mirrored: torch.Tensor | None = None) -> torch.Tensor:
    """Rotate (degrees, anticlockwise), scale and shift (rows, cols in pixels) each image in one call,
    mirroring left to right first the images where `mirrored` (N,) is True.

    degrees and scale are (N,), shift_px is (N, 2). One affine_grid + grid_sample for the whole batch:
    no loop over images, and it runs wherever the batch is (CPU or GPU).
    """
    n, _, height, width = images.shape
    angle = degrees * math.pi / 180
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale  # the grid maps output -> input
    theta = torch.zeros(n, 2, 3, device=images.device, dtype=images.dtype)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = cos, -sin, sin, cos
    if mirrored is not None:  # read each output row from the other side: x -> -x
        theta[:, :, 0] *= 1 - 2 * mirrored.to(images.dtype)[:, None]
    theta[:, 0, 2] = -shift_px[:, 1] * 2 / width  # grid coordinates run from -1 to 1
    theta[:, 1, 2] = -shift_px[:, 0] * 2 / height
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    # grid_sample fills with 0 outside the image: shift so that 0 is the background, then back
    moved = F.grid_sample(images - background, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return moved + background


def rotate(images: torch.Tensor, degrees: float, background: float) -> torch.Tensor:
    """Every image turned by the same angle (anticlockwise, in degrees) about its centre."""
    n = len(images)
    angle = torch.full((n,), float(degrees), device=images.device)
    return affine(images, angle, torch.ones(n, device=images.device), torch.zeros(n, 2, device=images.device),
                  background)


def random_affine(rotation: float, scale: float, shift_px: float, background: float, flip: bool = False):
    """A function that gives every image of a batch its own random turn (+-rotation degrees), size
    (1 +- scale) and position (+-shift_px pixels in each direction), and with `flip` mirrors half of
    them left to right: data augmentation, on the device, one affine_grid/grid_sample call per batch
    (a mirror is a negative horizontal scale). It draws from torch's global generator (seeded)."""
    def augment(images: torch.Tensor) -> torch.Tensor:
        n, device = len(images), images.device
        degrees = (torch.rand(n, device=device) * 2 - 1) * rotation
        sizes = 1 + (torch.rand(n, device=device) * 2 - 1) * scale
        moves = (torch.rand(n, 2, device=device) * 2 - 1) * shift_px
        mirrored = torch.rand(n, device=device) < 0.5 if flip else None
        return affine(images, degrees, sizes, moves, background, mirrored)

    return augment
