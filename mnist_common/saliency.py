"""Where a network looks: SmoothGrad saliency maps (used by 05's figure and the drawing page)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """A (1, 1, k, k) blur: the maps are read region by region, not pixel by pixel."""
    radius = max(1, round(2 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    bump = torch.exp(-x**2 / (2 * sigma**2))
    kernel = bump[:, None] * bump[None, :]
    return (kernel / kernel.sum())[None, None]


def smoothgrad(model, images, targets, samples: int = 32, noise: float = 0.5, blur: float = 1.0) -> torch.Tensor:
    """d score_target / d pixel, averaged over noisy copies of each image (SmoothGrad): (N, 28, 28).

    A single gradient is speckled, because the network's answer is bumpy at the scale of one
    pixel; averaging over `samples` copies with a little noise (in normalized pixel units),
    then blurring over about `blur` pixels, keeps what is true of a neighbourhood.
    Positive: more ink here would raise the target's score; negative: it would lower it.
    """
    model.eval()
    total = torch.zeros_like(images)
    generator = torch.Generator(device=images.device).manual_seed(0)
    for _ in range(samples):
        noisy = images + noise * torch.randn(images.shape, generator=generator, device=images.device)
        noisy.requires_grad_(True)
        score = model(noisy).gather(1, targets[:, None]).sum()
        total += torch.autograd.grad(score, noisy)[0]
    average = total / samples  # (N, 1, 28, 28)
    return F.conv2d(average, gaussian_kernel(blur).to(average), padding="same").squeeze(1)
