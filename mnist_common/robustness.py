"""Robustness: accuracy on test digits that are moved or turned, as a function of how far."""

from __future__ import annotations

from .augment import DIRECTIONS, rotate, shift
from .runtime import check_knob, is_list_of, is_whole
from .training import predict_logits

MAX_SHIFT = 12  # pixels: moved further, most of a 28x28 digit has left the image


def check_shifts(shifts) -> None:
    """The SHIFTS knob of 04 and 06: whole pixels from 0 to MAX_SHIFT, or one line saying so."""
    check_knob("SHIFTS", shifts, is_list_of(shifts, lambda n: is_whole(n, 0, MAX_SHIFT)),
               f"use a list of whole numbers of pixels from 0 to {MAX_SHIFT}, such as [0, 2, 4, 6]")


def accuracy(model, images, labels) -> float:
    return (predict_logits(model, images).argmax(1) == labels).float().mean().item()


def shifted_accuracy(model, images, labels, pixels: int, background: float) -> float:
    """Accuracy on the images moved `pixels` in each of the four directions, averaged."""
    if pixels == 0:
        return accuracy(model, images, labels)
    return sum(accuracy(model, shift(images, dr * pixels, dc * pixels, background), labels)
               for dr, dc in DIRECTIONS) / len(DIRECTIONS)


def rotated_accuracy(model, images, labels, degrees: float, background: float) -> float:
    """Accuracy on the images turned by `degrees` clockwise and anticlockwise, averaged."""
    if degrees == 0:
        return accuracy(model, images, labels)
    return sum(accuracy(model, rotate(images, sign * degrees, background), labels) for sign in (1, -1)) / 2


def robustness_table(models: dict, data, shifts, rotations, count: int | None = None) -> dict:
    """{name: {"shift": [accuracy per shift], "rotation": [accuracy per angle]}} on the first `count`
    test digits (all of them by default)."""
    background = -data.mean / data.std  # a black pixel, normalized
    images, labels = data.test[0][:count], data.test[1][:count]
    return {name: {"shift": [shifted_accuracy(model, images, labels, px, background) for px in shifts],
                   "rotation": [rotated_accuracy(model, images, labels, deg, background) for deg in rotations]}
            for name, model in models.items()}
