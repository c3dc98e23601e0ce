"""Moving digits: shifts and rotations keep the labels' meaning and the image statistics sane."""

import pytest
import torch

from mnist_common.augment import affine, random_affine, rotate, shift

BACKGROUND = -0.4241416  # a black pixel, normalized with MNIST's training mean and spread (float32)


def centre_of_mass(images: torch.Tensor) -> torch.Tensor:
    """(N, 2): the (row, column) centre of each image's ink above the background."""
    ink = (images - BACKGROUND).clamp_min(0).squeeze(1)
    ink = torch.where(ink > 1e-5, ink, 0)  # float rounding of the black background is not ink
    rows = torch.arange(ink.shape[-2], dtype=ink.dtype)
    cols = torch.arange(ink.shape[-1], dtype=ink.dtype)
    total = ink.sum((1, 2))
    return torch.stack([(ink.sum(2) * rows).sum(1) / total, (ink.sum(1) * cols).sum(1) / total], 1)


@pytest.mark.parametrize(("rows", "cols"), [(2, 0), (0, -3), (-1, 4)])
def test_a_shift_moves_the_centre_of_mass_by_the_shift(data, rows, cols):
    assert pytest.approx(-data.mean / data.std, abs=1e-6) == BACKGROUND
    images = data.test[0][:500]
    ink = (images - BACKGROUND).squeeze(1) > 1e-5
    edges = (ink[:, :4], ink[:, -4:], ink[:, :, :4], ink[:, :, -4:])
    # keep digits with 4 empty pixels on every side: no ink falls off the edge
    images = images[~torch.stack([edge.any((1, 2)) for edge in edges]).any(0)]
    assert len(images) > 50
    moved = shift(images, rows, cols, BACKGROUND)
    assert torch.allclose(centre_of_mass(moved) - centre_of_mass(images), torch.tensor([float(rows), float(cols)]),
                          atol=1e-3)
    assert moved.shape == images.shape


def test_the_background_enters_from_the_edge(data):
    moved = shift(data.test[0][:8], 0, 5, BACKGROUND)
    assert torch.all(moved[..., :, :5] == BACKGROUND)


def test_rotation_by_zero_and_the_identity_affine_change_nothing(data):
    images = data.test[0][:16]
    assert torch.allclose(rotate(images, 0.0, BACKGROUND), images, atol=1e-5)
    n = len(images)
    same = affine(images, torch.zeros(n), torch.ones(n), torch.zeros(n, 2), BACKGROUND)
    assert torch.allclose(same, images, atol=1e-5)


def test_an_affine_shift_of_whole_pixels_equals_the_plain_shift(data):
    images = data.test[0][:16]
    n = len(images)
    moved = affine(images, torch.zeros(n), torch.ones(n), torch.tensor([[2.0, -3.0]]).expand(n, 2), BACKGROUND)
    assert torch.allclose(moved, shift(images, 2, -3, BACKGROUND), atol=1e-4)


def test_four_quarter_turns_come_back(data):
    images = data.test[0][:8]
    turned = images
    for _ in range(4):
        turned = rotate(turned, 90.0, BACKGROUND)
    assert torch.allclose(turned, images, atol=1e-3)


def test_random_augmentation_keeps_images_sane(data):
    images = data.test[0][:256]
    torch.manual_seed(0)
    moved = random_affine(12, 0.1, 2.5, BACKGROUND)(images)
    assert moved.shape == images.shape
    assert moved.min() >= BACKGROUND - 1e-4 and moved.max() <= images.max() + 1e-4  # no new extremes
    # a little ink may leave the frame or be resized, but the average brightness stays close
    assert abs(moved.mean().item() - images.mean().item()) < 0.05
    assert not torch.allclose(moved, images)  # and each image really changed


def test_flip_mirrors_about_half_the_images_and_nothing_else():
    torch.manual_seed(0)
    images = torch.rand(64, 1, 28, 28)
    out = random_affine(0, 0.0, 0.0, BACKGROUND, flip=True)(images)
    same = (out - images).abs().amax((1, 2, 3)) < 1e-5
    mirrored = (out - images.flip(-1)).abs().amax((1, 2, 3)) < 1e-5
    assert torch.all(same ^ mirrored)  # each image exactly as it was, or exactly its mirror image
    assert 16 <= int(mirrored.sum()) <= 48
    assert torch.allclose(random_affine(0, 0.0, 0.0, BACKGROUND)(images), images, atol=1e-5)  # no flip: untouched
