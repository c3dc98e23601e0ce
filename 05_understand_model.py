"""Phase 6: understanding what you built.

A trained network is not a black box if you know where to look. This script opens the CNN
from Phase 5 (and the simple network from Phase 3, for comparison) and asks it questions:
which digits does it get right with confidence, and which wrong; which pairs it confuses;
what its filters and channels respond to; where in the image it looks; whether its
confidence can be trusted (and how a single temperature fixes it); how small a change to
the pixels fools it; and what it makes of a digit you wrote yourself.

Run:     python 05_understand_model.py                       (the full analysis)
         python 05_understand_model.py --image my_7.png       (your own digits: PNG or JPEG)
         python 05_understand_model.py --export-test-digits my_digits   (test digits to try at once)
Needs:   models/cnn.pt (python 04_improved_model.py); models/mlp.pt is used when present
Writes:  visualizations/05_*.png (listed at the end); models/cnn_taught.pt (the CNN shown what is not
         a digit, made once per models/cnn.pt: about a minute)
"""

import argparse
import contextlib
import math
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.cm import ScalarMappable
from matplotlib.colors import ListedColormap, Normalize
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, MaxNLocator

from mnist_common import (
    CLASS_NAMES,
    DATA_DIR,
    DATASET_ENV,
    MODEL_COLORS,
    MODELS_DIR,
    VIS_DIR,
    LearnerError,
    batches,
    check_knob,
    current_dataset,
    dead_channels,
    ensure_writable,
    evaluate,
    friendly_errors,
    is_list_of,
    is_number,
    is_whole,
    load_mnist,
    load_model,
    log_scale,
    missing_model_message,
    model_colors,
    pick_device,
    plural,
    predict_logits,
    read_experiments,
    rejection,
    save_figure,
    say,
    set_seed,
)
from mnist_common.handwriting import PreparedDigit, prepare_files, prepare_image
from mnist_common.pictures import FONT_DIR, not_digits, typed_digit
from mnist_common.rejection import (
    KEEP,
    WEAK,
    Verdict,
    auroc,
    energy,
    fit_rejection_rule,
    judge,
    logits_and_features,
    percent,
    taught_model,
)
from mnist_common.saliency import smoothgrad

# --- Things to explore (edit and re-run) ---------------------------------------------------
GALLERY_SIZE = 16  # images in each prediction gallery (8-32)
SALIENCY_MISTAKES = 8  # mistakes in the saliency figure, most confident first (4-10)
SMOOTHGRAD_SAMPLES = 32  # noisy copies averaged for each saliency map (16-64)
SMOOTHGRAD_NOISE = 0.5  # their noise, in normalized pixel units (about 0.15 of the 0-1 range)
SMOOTHGRAD_BLUR = 1.0  # the finished map is blurred over about this many pixels (0.5-2)
CALIBRATION_BINS = 10  # confidence bins of the reliability diagram (5-20)
EPSILONS = [0.0, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3]  # FGSM pixel budgets (0-1 scale)
FOOLED_EPSILON = 0.1  # the budget shown in the gallery of fooled digits
SEED = 0  # which examples are picked for the figures

NOT_DIGIT_SAMPLES = 40  # pictures of each kind of non-digit in section 7 (10-200)
PAGE_ROWS = 6  # pictures per page of 05_your_digits*.png
EXPORT_FONTS = ["DejaVuSans-Bold.ttf", "STIXGeneral.ttf", "cmss10.ttf"]  # for --export-typed-digits

PLAN_GUESSES = [(4, 9), (3, 5), (7, 1)]  # the plan's guesses at the most confused pairs


# --- 1-2. Predictions and confusions ----------------------------------------------------------
def confusion_matrix(labels: torch.Tensor, predictions: torch.Tensor) -> torch.Tensor:
    """(10, 10) counts: row = true digit, column = predicted digit."""
    return torch.bincount(labels * 10 + predictions, minlength=100).reshape(10, 10)


def confused_pairs(matrix: torch.Tensor) -> list[tuple[int, int, int]]:
    """Unordered pairs of digits with their mistakes in both directions, most confused first."""
    pairs = [(matrix[a, b].item() + matrix[b, a].item(), a, b) for a in range(10) for b in range(a + 1, 10)]
    return sorted(pairs, reverse=True)


def plot_gallery(images, labels, probs, title, indices, classes=CLASS_NAMES):
    """Images with the network's top answer and the probability it gave the TRUE label."""
    cols = 8
    rows = (len(indices) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.75, rows * 2.3), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, indices):
        label, (answer, runner_up) = labels[i].item(), probs[i].topk(2).indices.tolist()
        ax.imshow(images[i].squeeze().cpu().numpy(), cmap="gray")
        if answer == label:
            caption = (f"{classes[label]}: {percent(probs[i, label])}\n"
                       f"next {classes[runner_up]}: {percent(probs[i, runner_up])}")
        else:
            caption = (f"true {classes[label]}: {percent(probs[i, label])}\n"
                       f"answer {classes[answer]}: {percent(probs[i, answer])}")
        ax.set_title(caption, fontsize=8.5 if len(classes[0]) == 1 else 7,
                     color="darkgreen" if answer == label else "darkred")
    fig.suptitle(title)
    return fig


def plot_confusion(matrix, classes=CLASS_NAMES):
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    off_diagonal = matrix.clone().float()
    off_diagonal.fill_diagonal_(float("nan"))
    # the diagonal (NaN above) is drawn grey, as the title says: the correct answers are not on the red scale
    im = ax.imshow(off_diagonal.numpy(), cmap=plt.get_cmap("Reds").with_extremes(bad="silver"))
    darkest = off_diagonal.nan_to_num(0).max().item()
    for t in range(10):
        for p in range(10):
            count = matrix[t, p].item()
            ink = "black" if t == p else ("white" if count > 0.6 * darkest else "black")  # readable on dark red
            ax.text(p, t, str(count), ha="center", va="center", fontsize=8, color=ink)
    ax.set_xticks(range(10), classes, rotation=0 if len(classes[0]) == 1 else 45,
                  ha="center" if len(classes[0]) == 1 else "right")
    ax.set_yticks(range(10), classes)
    ax.set_xlabel("predicted label")
    ax.set_ylabel("true label")
    ax.set_title("Confusion matrix on the 10,000 test images\n(diagonal: correct, grey; red: mistakes)")
    fig.colorbar(im, ax=ax, shrink=0.8, label="mistakes")
    return fig


# --- 3. Learned features --------------------------------------------------------------------
@torch.no_grad()
def channel_means_per_digit(model, images, labels, batch_size=500) -> torch.Tensor:
    """(10, 64): the average activation of each second-layer channel over each digit's images."""
    sums = torch.zeros(10, model.conv2.out_channels, device=labels.device)
    for x, y in batches(images, labels, batch_size=batch_size):
        _, second = model.feature_maps(x)  # (B, 64, 14, 14)
        sums.index_add_(0, y, second.mean((2, 3)))
    return (sums / torch.bincount(labels, minlength=10)[:, None]).cpu()


def channel_selectivity(means: torch.Tensor) -> torch.Tensor:
    """(10, 64): how much more (>1) or less (<1) each channel fires for a digit than on average.

    Each digit's activations are first scaled to the same total, so digits with more ink (0, 8)
    do not win every channel just by being brighter. A channel that (almost) never fires is NaN.
    """
    pattern = means / means.sum(1, keepdim=True).clamp_min(1e-8)  # each row sums to 1
    average = pattern.mean(0, keepdim=True)
    selectivity = pattern / average.clamp_min(1e-12)
    selectivity[:, dead_channels(means.mean(0))] = float("nan")  # a ratio of (almost) nothing means nothing
    return selectivity


def plot_channel_selectivity(selectivity, classes=CLASS_NAMES):
    """Preference on a log scale centred on 1: red = fires more for that digit, blue = less."""
    fig, ax = plt.subplots(figsize=(15, 4.8))
    limit = 3.0  # a rare channel can reach 9x; beyond 3x (or below 1/3) the colour saturates
    # channels in their own order (0-63) make a checkerboard: group them by the label each prefers most
    # (as section 3 counts them), the most selective first within a group, dead channels last
    favourite = selectivity.nan_to_num(0).argmax(0)  # (64,)
    strength = selectivity.nan_to_num(0).max(0).values  # (64,)
    alive = ~torch.isnan(selectivity[0])
    order = sorted(range(selectivity.shape[1]),
                   key=lambda c: (not alive[c], favourite[c].item() if alive[c] else 0, -strength[c].item()))
    log_pref = torch.log2(selectivity[:, order].clamp(1 / 64, 64))
    im = ax.imshow(log_pref.numpy(), cmap=plt.get_cmap("RdBu_r").with_extremes(bad="lightgray"), aspect="auto",
                   vmin=-np.log2(limit), vmax=np.log2(limit))
    dead = [c for c in order if not alive[c]]
    for c in dead:
        ax.text(order.index(c), 4.5, "dead", rotation=90, ha="center", va="center", fontsize=8)
    groups = [[x for x, c in enumerate(order) if alive[c] and favourite[c] == d] for d in range(10)]
    for d, xs in enumerate(groups):
        if xs:
            ax.axvline(xs[-1] + 0.5, color="black", lw=0.8)  # a line after each group
            ax.add_patch(plt.Rectangle((xs[0] - 0.5, d - 0.5), len(xs), 1, fill=False, edgecolor="black", lw=1.2))
    top = ax.secondary_xaxis("top")
    top.set_xticks([sum(xs) / len(xs) for xs in groups if xs], [classes[d] for d, xs in enumerate(groups) if xs],
                   fontsize=9)
    top.tick_params(length=0)
    top.set_xlabel("the label the channels below prefer most (boxed)", fontsize=9)
    ax.set_xticks(range(len(order)), [str(c) for c in order], fontsize=6, rotation=90)
    ax.set_yticks(range(10), classes)
    ax.set_ylabel("label")
    ax.set_xlabel("second-layer channel (its number), grouped by preferred label, most selective first")
    dead_note = f"; grey: {plural(len(dead), 'dead channel')}, one that (almost) never fires" if dead else ""
    ax.set_title(f"How strongly each second-layer channel prefers each label (white = as much as for the average "
                 f"label{dead_note})")
    bar = fig.colorbar(im, ax=ax, shrink=0.9, label="fires this many times as much as on average")
    ticks = [1 / 3, 1 / 2, 1, 2, 3]
    bar.set_ticks(np.log2(ticks), labels=["1/3 or less", "1/2", "1", "2", "3 or more"])
    return fig


# --- 4. Where the network looks ---------------------------------------------------------------
def show_overlay(ax, image, saliency_map, limit: float, title: str, colour: str = "black") -> None:
    """The digit in light grey on white, with red where ink would raise the score and blue where it would lower it."""
    ink = image.squeeze().cpu()
    ink = (ink - ink.min()) / (ink.max() - ink.min()).clamp_min(1e-8)  # 0 background, 1 ink
    ax.imshow(1 - 0.35 * ink.numpy(), cmap="gray", vmin=0, vmax=1)
    values = saliency_map.cpu().numpy()
    overlay = np.zeros((*values.shape, 4))
    overlay[..., :3] = np.where(values[..., None] > 0, SALIENCY_RED, SALIENCY_BLUE)  # pure red or blue ...
    overlay[..., 3] = np.clip(np.abs(values) / limit, 0, 1)  # ... as opaque as the value is large: a linear fade
    ax.imshow(overlay)
    ax.set_title(title, fontsize=8, color=colour)
    ax.axis("off")


SALIENCY_RED, SALIENCY_BLUE = (0.85, 0.0, 0.0), (0.0, 0.2, 0.9)


def saliency_colour_bar(fig, axes, limit: float, percentile: float):
    """The colours show_overlay draws, as they look on the white background, under `axes`."""
    v = np.linspace(-1, 1, 256)[:, None]
    colours = (1 - np.abs(v)) + np.abs(v) * np.where(v > 0, SALIENCY_RED, SALIENCY_BLUE)  # faded over white
    mappable = ScalarMappable(Normalize(-limit, limit), ListedColormap(colours))
    bar = fig.colorbar(mappable, ax=axes, location="bottom", shrink=0.5, aspect=50, extend="both", pad=0.02)
    bar.set_label(f"how much more ink there would change the score (SmoothGrad), one scale for the whole figure: "
                  f"full colour at ±{limit:.2g} and beyond,\nthe {percentile:g}th percentile of |value| over every "
                  f"map drawn (so {100 - percentile:.2g}% of the pixels saturate)", fontsize=9)
    return bar


def plot_saliency(right_examples: dict, wrong_examples: dict, classes=CLASS_NAMES, percentile: float = 99.9):
    """Top: one digit of each kind and its map. Bottom: mistakes, mapped for the answer and for the truth.

    One colour scale for every map, set by a high percentile of |value| so that a few extreme pixels
    do not wash out the rest, and only the top (100 - percentile)% saturate.
    """
    fig = plt.figure(figsize=(16, 9.2), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1, 1.4])
    every = torch.cat([right_examples["maps"].flatten(), wrong_examples["maps_answer"].flatten(),
                       wrong_examples["maps_truth"].flatten()]).abs()
    limit = max(np.percentile(every.cpu().numpy(), percentile).item(), 1e-12)
    axes = top.subplots(2, 10)
    for i in range(10):
        axes[0, i].imshow(right_examples["images"][i].squeeze().cpu().numpy(), cmap="gray")
        name = classes[right_examples["labels"][i].item()]
        axes[0, i].set_title(f"a {name}", fontsize=9)
        axes[0, i].axis("off")
        show_overlay(axes[1, i], right_examples["images"][i], right_examples["maps"][i], limit, f"map for {name}")
    top.suptitle("Read correctly: red = more ink here would raise that digit's score, blue = it would lower it "
                 "(SmoothGrad; one colour scale for the whole figure, at the bottom)", fontsize=11)
    n = len(wrong_examples["images"])
    axes = bottom.subplots(2, max(n, 1), squeeze=False)
    for i in range(n):
        answer, truth = classes[wrong_examples["answers"][i].item()], classes[wrong_examples["labels"][i].item()]
        show_overlay(axes[0, i], wrong_examples["images"][i], wrong_examples["maps_answer"][i], limit,
                     f"read as {answer}: map for {answer}", "darkred")
        show_overlay(axes[1, i], wrong_examples["images"][i], wrong_examples["maps_truth"][i], limit,
                     f"true {truth}: map for {truth}", "darkgreen")
    saliency_colour_bar(bottom, axes, limit, percentile)
    bottom.suptitle("Read wrongly: the map for the network's answer (top) against the map for the true digit (bottom)",
                    fontsize=11)
    return fig


# --- 5. Confidence and calibration --------------------------------------------------------------
@dataclass
class CalibrationBin:
    """One confidence bin of a reliability diagram."""

    low: float
    high: float
    confidence: float  # mean top probability of the predictions in the bin
    accuracy: float  # share of them that are right
    count: int


def expected_calibration_error(probs, labels, bins: int) -> tuple[float, list[CalibrationBin]]:
    """ECE: the gap between confidence and accuracy, averaged over confidence bins by size."""
    confidence, predictions = probs.max(1)
    correct = (predictions == labels).float()
    edges = torch.linspace(0, 1, bins + 1)
    ece, table = 0.0, []
    for lo, hi in pairwise(edges):
        inside = (confidence > lo) & (confidence <= hi)
        if inside.any():
            gap = (confidence[inside].mean() - correct[inside].mean()).abs().item()
            ece += inside.float().mean().item() * gap
            table.append(CalibrationBin(lo.item(), hi.item(), confidence[inside].mean().item(),
                                        correct[inside].mean().item(), int(inside.sum())))
    return ece, table


def fit_temperature(logits, labels) -> float:
    """The T that minimises the validation loss of softmax(logits / T): Phase 2's temperature."""
    log_t = torch.zeros(1, requires_grad=True)  # T = e^log_t stays positive
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=100, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    return log_t.exp().item()


@dataclass
class Calibration:
    """How well the confidences match reality, at one temperature."""

    temperature: float
    val_nll: float  # NLL, the negative log-likelihood: the average cross-entropy loss
    test_nll: float
    test_ece: float
    table: list[CalibrationBin]


def calibration_report(val_logits, val_labels, test_logits, test_labels, bins) -> dict[str, Calibration]:
    """Calibration before temperature scaling, and after it with T fitted on validation."""
    report = {}
    for name, t in (("before", 1.0), ("after", fit_temperature(val_logits, val_labels))):
        ece, table = expected_calibration_error(torch.softmax(test_logits / t, 1), test_labels, bins)
        report[name] = Calibration(t, F.cross_entropy(val_logits / t, val_labels).item(),
                                   F.cross_entropy(test_logits / t, test_labels).item(), ece, table)
    return report


def plot_confidence(probs, labels):
    """How sure the network was, for its right answers and for its wrong ones, side by side."""
    confidence, predictions = probs.max(1)
    right = predictions == labels
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2), layout="constrained")
    bins = np.linspace(0.1, 1, 10)  # 10% wide
    for ax, group, colour, name in ((axes[0], right, "tab:green", "right"), (axes[1], ~right, "tab:red", "wrong")):
        counts, _, bars = ax.hist(confidence[group].numpy(), bins=bins, color=colour, edgecolor="black")
        ax.bar_label(bars, labels=[f"{int(c):,}" if c else "" for c in counts], fontsize=8)
        if name == "right":
            log_scale(ax)  # labelled 1, 10, 100, 1,000 rather than powers of ten
        ax.set_xlabel("top probability (the network's confidence)")
        ax.set_ylabel("answers" + (" (log scale)" if name == "right" else ""))
        sure = (confidence[group] > 0.9).float().mean().item()
        ax.set_title(f"{int(group.sum()):,} {name} answers: {sure:.0%} of them above 90% confidence")
        ax.margins(y=0.15)
    fig.suptitle("Right answers are nearly always sure; many mistakes are sure too, so confidence is no guarantee")
    return fig


def plot_reliability(report: dict[str, Calibration]):
    fig, axes = plt.subplots(1, 2, figsize=(12, 6), layout="constrained")
    for ax, name in zip(axes, ("before", "after")):
        r = report[name]
        centres = [(b.low + b.high) / 2 for b in r.table]
        width = r.table[0].high - r.table[0].low
        bars = ax.bar(centres, [b.accuracy for b in r.table], width=width * 0.9, color=MODEL_COLORS["CNN"], alpha=0.7,
                      edgecolor="black", label="accuracy in the bin")
        for bar, b in zip(bars, r.table):  # how many predictions each bar rests on, written at its foot
            ax.text(bar.get_x() + bar.get_width() / 2, 0.02, f"n={b.count:,}", rotation=90, ha="center", va="bottom",
                    fontsize=8, color="white" if b.accuracy > 0.25 else "black")
        ax.plot([0, 1], [0, 1], "k--", label="perfect calibration")
        ax.plot([b.confidence for b in r.table], [b.accuracy for b in r.table], "o", color="black", mfc="white",
                label="mean confidence against accuracy", clip_on=False)  # the top bin's dot sits at the corner
        ax.set_title(f"{name} temperature scaling (T = {r.temperature:.2f})\nECE {r.test_ece:.4f}, "
                     f"test NLL {r.test_nll:.4f}")
        ax.set_xlabel("confidence")
        ax.set_ylabel("accuracy")
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.02)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncol=3, fontsize=9)
    top = report["before"].table[-1]
    fig.suptitle(f"Reliability diagram of the CNN on the test set; n = predictions in each bin\n"
                 f"({top.count:,} of {sum(b.count for b in report['before'].table):,} sit in the top bin, "
                 "so the other bars rest on few images)")
    return fig


# --- 6. Adversarial examples (FGSM) ----------------------------------------------------------------
def gradient_signs(model, images, labels, batch_size=500) -> torch.Tensor:
    """Fast Gradient Sign Method, step 1: the sign (+1 or -1) of d loss / d pixel for every
    pixel, the direction that hurts the network most. It does not depend on epsilon."""
    model.eval()
    model.requires_grad_(False)  # gradients for the pixels only
    signs = []
    for x, y in batches(images, labels, batch_size=batch_size):
        x = x.clone().requires_grad_(True)
        loss = F.cross_entropy(model(x), y)
        signs.append(torch.autograd.grad(loss, x)[0].sign())
    model.requires_grad_(True)
    return torch.cat(signs)


def perturb(images, signs, epsilon: float, mean: float, std: float) -> torch.Tensor:
    """FGSM, step 2: move every pixel by epsilon (0-1 brightness scale) along `signs`, keeping
    it inside [0, 1]."""
    low, high = (0 - mean) / std, (1 - mean) / std  # the pixel range in normalized units
    return (images + epsilon / std * signs).clamp(low, high)


def fgsm_sweep(models: dict, signs: dict, images, labels, epsilons, mean, std) -> dict:
    """Test accuracy of each model under FGSM at every epsilon, from its precomputed signs."""
    return {name: [evaluate(model, perturb(images, signs[name], epsilon, mean, std), labels)[1]
                   for epsilon in epsilons]
            for name, model in models.items()}


def plot_fgsm_curve(epsilons, results):
    fig, ax = plt.subplots(figsize=(8, 4.5))
    colours = model_colors(results)
    for name, accuracies in results.items():
        ax.plot(epsilons, [a * 100 for a in accuracies], "o-", color=colours[name], label=name)
    ax.set_xlabel("epsilon: the most any pixel may change (0-1 brightness scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("FGSM: accuracy when every pixel is nudged against the network")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def plot_fooled(clean, attacked, labels, attacked_pred, probs, epsilon, flipped_share: float, classes=CLASS_NAMES):
    """Digits the CNN reads right (top) and, after FGSM, reads wrong (bottom)."""
    n = len(clean)
    fig, axes = plt.subplots(2, n, figsize=(n * 1.6, 4), squeeze=False)
    for i in range(n):
        axes[0, i].imshow(clean[i].squeeze().cpu().numpy(), cmap="gray")
        axes[0, i].set_title(f"{classes[labels[i].item()]}, read right", fontsize=9)
        axes[1, i].imshow(attacked[i].squeeze().cpu().numpy(), cmap="gray")
        axes[1, i].set_title(f"read as {classes[attacked_pred[i].item()]} ({percent(float(probs[i]))})", fontsize=9,
                             color="darkred")
        axes[0, i].axis("off")
        axes[1, i].axis("off")
    for ax, row in ((axes[0, 0], "as the CNN\nsaw them"),
                    (axes[1, 0], f"after FGSM,\nε = {epsilon:g}\n(±{epsilon * 255:.0f} of 255\nper pixel)")):
        ax.text(-0.08, 0.5, row, transform=ax.transAxes, ha="right", va="center", fontsize=9)
    fig.suptitle(f"Ten test digits the attack flips (at epsilon {epsilon} it flips {flipped_share:.1%} of the "
                 "test images the CNN got right).\nTop: as the CNN saw them. Bottom: after FGSM, "
                 "with the new answer and its probability")
    return fig


# --- 7. Your own digit, and "that is not a digit" ---------------------------------------------------
def plot_your_digits(names: list[str], prepared: list[PreparedDigit], verdicts: list[Verdict]):
    """One page: each picture, what the network sees (on a fixed 0-1 scale), and its top three answers."""
    n = len(names)
    fig, axes = plt.subplots(n, 3, figsize=(11, 2.6 * n + 0.4), squeeze=False, layout="constrained",
                             gridspec_kw={"width_ratios": [1, 1, 2.2]})
    for i, (name, p, v) in enumerate(zip(names, prepared, verdicts)):
        axes[i, 0].imshow(p.original, cmap="gray", vmin=0, vmax=1)
        axes[i, 0].set_title(name, fontsize=9)
        axes[i, 1].imshow(p.view.numpy(), cmap="gray", vmin=0, vmax=1)
        axes[i, 1].set_title("what the network sees (28x28)", fontsize=9)
        for ax in axes[i, :2]:
            ax.axis("off")
        top = v.probs.topk(3)
        bars = axes[i, 2].barh([str(d) for d in reversed(top.indices.tolist())],
                               list(reversed((top.values * 100).tolist())), color=MODEL_COLORS["CNN"])
        axes[i, 2].bar_label(bars, fmt="%.1f%%", fontsize=8)
        axes[i, 2].set_xlim(0, 115)
        axes[i, 2].set_xlabel("probability (%), top three digits", fontsize=8)
        colour = {"digit": "darkgreen", "not sure": "darkorange", "not a digit": "darkred"}[v.kind]
        axes[i, 2].set_title(v.text, fontsize=11, color=colour)
    return fig


def plot_preparation(name: str, p: PreparedDigit):
    """Every step of the preparation of one picture, all on the same fixed 0-1 scale."""
    ink = "desk painted over,\nink bright on dark" if p.on_desk else "ink bright on dark"
    steps = [("original", p.original), (ink, p.ink), ("background removed", p.clean),
             ("ink mask (specks dropped)", p.mask.astype(float)), ("cropped, pen matched to MNIST", p.crop),
             ("longer side 20 px", p.small), ("centred in 28x28", p.view.numpy())]
    fig, axes = plt.subplots(1, len(steps), figsize=(2.3 * len(steps), 2.9), layout="constrained")
    for ax, (title, image) in zip(axes, steps):
        ax.imshow(image, cmap="gray", vmin=0, vmax=1)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.suptitle(f"How {name} is prepared the way MNIST prepared its digits (every panel on the same 0-1 scale)")
    return fig


def edges_through(low: float, high: float, first: float, second: float, about: int = 50) -> np.ndarray:
    """About `about` equal histogram bins over low..high, placed so that `first` and `second` are edges."""
    width = (second - first) / max(1, round((second - first) * about / (high - low)))
    start = first - math.ceil((first - low) / width) * width
    return np.arange(start, high + width, width)


def plot_not_digits(scores: dict, rules: dict):
    """The rule's score for test digits and for each kind of non-digit: one small panel per kind (rows)
    and network (columns), on one shared x-axis, with the rule's three verdicts shaded behind."""
    names, kinds = list(scores), list(next(iter(scores.values())))
    empty = [kind for kind in kinds if not any(len(scores[name][kind]) for name in names)]  # all refused
    kinds = [kind for kind in kinds if kind not in empty]
    colours = model_colors(names)
    fig, axes = plt.subplots(len(kinds), len(names), figsize=(5.5 * len(names), 1.45 * len(kinds) + 1.9),
                             layout="constrained", squeeze=False, sharex=True, sharey="row")
    every = torch.cat([v.float() for by_kind in scores.values() for v in by_kind.values() if len(v)]).clamp(-30, 30)
    low, high = math.floor(every.min().item()), math.ceil(every.max().item())
    weak = math.log(WEAK / (1 - WEAK))
    peaks = [0.0] * len(kinds)  # the tallest bar in each row, in %
    for col, name in enumerate(names):
        accept = rules[name].accept
        refuse = math.log(accept / (1 - accept))
        bins = edges_through(low, high, refuse, weak)  # no bar straddles a line: each is in one verdict
        for row, kind in enumerate(kinds):
            ax, kind_scores = axes[row, col], scores[name][kind]
            ax.axvspan(low, refuse, color="tab:red", alpha=0.1, lw=0)
            ax.axvspan(refuse, weak, color="gold", alpha=0.18, lw=0)
            ax.axvline(refuse, color="black", linestyle="--", lw=1.4)
            ax.axvline(weak, color="black", linestyle=":", lw=1.4)
            if len(kind_scores):
                counts, _ = np.histogram(kind_scores.float().clamp(-30, 30).numpy(), bins=bins)
                ax.stairs(counts / len(kind_scores) * 100, bins, fill=True, color=colours[name], alpha=0.85)
                peaks[row] = max(peaks[row], counts.max() / len(kind_scores) * 100)
            ax.text(0.995, 0.9, f"{kind} ({len(kind_scores):,})", transform=ax.transAxes, ha="right", va="top",
                    fontsize=9, fontweight="bold" if kind == kinds[0] else "normal")
            ax.grid(axis="x", alpha=0.3)
            if col == 0:
                ax.set_ylabel("share (%)", fontsize=8)
            ax.tick_params(labelsize=8)
        axes[0, col].set_title(f"{name}: refuses below {percent(accept)} (dashed),\nnot sure below {percent(WEAK)} "
                               "(dotted)", color=colours[name], fontsize=11)
        axes[-1, col].set_xlabel("the rule's score: log-odds that the picture is a digit\n(a score beyond "
                                 "+-30 is drawn at +-30)")
    axes[0, 0].set_xlim(low, high)
    for row, peak in zip(axes, peaks):  # room above the tallest bar for the label; no tick above 100%
        row[0].set_ylim(0, min(max(peak, 1) * 1.3, 115))
        row[0].yaxis.set_major_locator(FixedLocator([t for t in MaxNLocator(4).tick_values(0, peak) if t <= 100]))
    keys = [Patch(color="tab:red", alpha=0.2, label="left of the dashed line: \"this does not look like a digit\""),
            Patch(color="gold", alpha=0.35, label="between the lines: \"not sure\" (weak evidence)"),
            Patch(facecolor="white", edgecolor="lightgray", label="right of the dotted line: a digit (\"not sure\" "
                  "which one when the network's top answer is weak)")]
    fig.legend(handles=keys, loc="outside lower center", ncol=3, fontsize=9)
    refused = f"; {', '.join(empty)}: all refused by the preparation itself" if empty else ""
    fig.suptitle("Digits against things that are not digits: where each kind of picture scores, per network\n"
                 f"(each bar: the share of that kind; pictures the preparation refused are not drawn{refused})")
    return fig


def export_test_digits(data_raw, out_dir: Path, count: int = 10) -> list[Path]:
    """Save one test image of each digit as a large dark-on-light PNG, to try --image at once."""
    from PIL import Image

    out_dir = ensure_writable(out_dir, "digits")
    images, labels = data_raw.test
    written = []
    for digit in range(min(count, 10)):
        image = images[(labels == digit).nonzero()[0, 0]].numpy()
        picture = Image.fromarray(255 - image).resize((140, 140), Image.BILINEAR)  # dark ink, light paper
        written.append(out_dir / f"test_digit_{digit}.png")
        picture.save(written[-1])
    return written


def export_typed_digits(out_dir: Path, seed: int = SEED) -> list[Path]:
    """Typed digits in three fonts, made to look like photos of printed paper, as PNG files."""
    from PIL import Image

    out_dir = ensure_writable(out_dir, "digits")
    rng = np.random.default_rng(seed)
    written = []
    for font_name in EXPORT_FONTS:
        for digit in range(10):
            photo = typed_digit(digit, font_name, rng)
            written.append(out_dir / f"typed_{Path(font_name).stem}_{digit}.png")
            Image.fromarray((photo * 255).astype(np.uint8)).save(written[-1])
    return written


# --- The story: one function per section ------------------------------------------------------
def section_predictions(cnn, data, generator, out_dir) -> dict:
    """1. What the CNN gets right, and its most confident mistakes."""
    print("\n== 1. Predictions ==")
    images, labels = data.test
    probs = torch.softmax(predict_logits(cnn, images), 1)  # (10000, 10)
    confidence, predictions = probs.max(1)
    right = predictions == labels
    accuracy = right.float().mean().item()
    say(f"the CNN gets {int(right.sum()):,} of {len(labels):,} test images right ({accuracy:.2%})")
    confident = torch.nonzero(right).squeeze(1)
    confident = confident[torch.randperm(len(confident), generator=generator)[:GALLERY_SIZE].to(labels.device)]
    wrong = torch.nonzero(~right).squeeze(1)
    wrong = wrong[confidence[wrong].argsort(descending=True)][:GALLERY_SIZE]  # most confident mistakes first
    figures = [
        save_figure(plot_gallery(images, labels, probs, "Correct predictions (random picks): the answer's probability "
                                 "and the runner-up's", confident.tolist(), data.classes), out_dir,
                    "05_correct_predictions.png"),
        save_figure(plot_gallery(images, labels, probs, "Wrong predictions, most confident first: many are "
                                 "ambiguous even to people", wrong.tolist(), data.classes), out_dir,
                    "05_wrong_predictions.png"),
    ]
    second = (probs[~right].topk(2).indices[:, 1] == labels[~right]).float().mean().item()
    say(f"look for: the mistakes are mostly odd or ambiguous {data.dataset.item}s; in {second:.0%} of them the true "
        "label is the network's second choice")
    return {"accuracy": accuracy, "probs": probs, "predictions": predictions, "right": right, "figures": figures}


def section_confusions(labels, predictions, out_dir, classes=CLASS_NAMES) -> dict:
    """2. Which pairs of labels the CNN mixes up, against the plan's guesses."""
    print("\n== 2. Confusions ==")
    matrix = confusion_matrix(labels.cpu(), predictions.cpu())
    pairs = confused_pairs(matrix)
    say("most confused pairs (mistakes both ways): "
        + ", ".join(f"{classes[a]}/{classes[b]}: {n}" for n, a, b in pairs[:5]))
    rank = {(a, b): i + 1 for i, (_, a, b) in enumerate(pairs)}
    if tuple(classes) == tuple(CLASS_NAMES):  # the plan guessed pairs of digits
        say("the plan's guesses: " + ", ".join(
            f"{a}/{b}: {matrix[a, b] + matrix[b, a]} mistakes (rank {rank[tuple(sorted((a, b)))]} of 45)"
            for a, b in PLAN_GUESSES))
    figure = save_figure(plot_confusion(matrix, classes), out_dir, "05_confusion_matrix.png")
    return {"confusion": matrix, "confused_pairs": pairs, "figures": [figure]}


def section_features(cnn, images, labels, out_dir, classes=CLASS_NAMES) -> dict:
    """3. What the second layer's channels respond to."""
    print("\n== 3. Learned features ==")
    say("the first layer's filters and both layers' feature maps are drawn by 04_improved_model.py: "
        "visualizations/04_filters.png, 04_feature_maps_conv1.png and 04_feature_maps_conv2.png")
    selectivity = channel_selectivity(channel_means_per_digit(cnn, images, labels))
    favourite = selectivity.nan_to_num(0).argmax(0)  # (64,) the digit each channel prefers
    alive = ~torch.isnan(selectivity[0])
    print("second-layer channels that fire relatively most for each label:")
    width = max(6, *(len(name) for name in classes))
    print("  label    " + " ".join(f"{name:>{width}}" for name in classes))
    print("  channels " + " ".join(f"{int(((favourite == d) & alive).sum()):>{width}}" for d in range(10)))
    strongest = selectivity.nan_to_num(0).max(0).values.argsort(descending=True)[:3].tolist()
    say("most selective channels: " + ", ".join(
        f"{c} fires {selectivity[favourite[c], c]:.1f}x as much for {classes[favourite[c].item()]}s"
        for c in strongest))
    dead = int(torch.isnan(selectivity[0]).sum())
    if dead:
        say(f"{plural(dead, 'channel')} (almost) never fire{'s' if dead == 1 else ''} on the 10,000 test images: "
            "nearly every value computed there "
            "is negative, so ReLU zeroes it (a \"dead\" channel, drawn grey)")
    say("look for: channels that fire mostly for one or two labels are detectors of parts "
        + ("(a closed loop, a long diagonal, a horizontal top bar)" if tuple(classes) == tuple(CLASS_NAMES)
           else "(a sleeve, a heel, a strap)"))
    figure = save_figure(plot_channel_selectivity(selectivity, classes), out_dir, "05_channel_activity.png")
    return {"selectivity": selectivity, "figures": [figure]}


def section_saliency(cnn, images, labels, predictions, probs, out_dir, classes=CLASS_NAMES) -> dict:
    """4. Where in the image the CNN looks: SmoothGrad maps for right and for wrong answers."""
    print("\n== 4. Where the network looks ==")
    right_picks = torch.stack([torch.nonzero((labels == d) & (predictions == d)).squeeze(1)[0] for d in range(10)])
    wrong = torch.nonzero(predictions != labels).squeeze(1)
    wrong = wrong[probs[wrong].max(1).values.argsort(descending=True)][:SALIENCY_MISTAKES]
    def maps(images, targets):  # mnist_common/saliency.py holds the method
        return smoothgrad(cnn, images, targets, SMOOTHGRAD_SAMPLES, SMOOTHGRAD_NOISE, SMOOTHGRAD_BLUR)

    right_examples = {"images": images[right_picks], "labels": labels[right_picks],
                      "maps": maps(images[right_picks], labels[right_picks])}
    wrong_examples = {"images": images[wrong], "labels": labels[wrong], "answers": predictions[wrong],
                      "maps_answer": maps(images[wrong], predictions[wrong]),
                      "maps_truth": maps(images[wrong], labels[wrong])}
    figure = save_figure(plot_saliency(right_examples, wrong_examples, classes), out_dir, "05_saliency.png")
    example = ("(closing the top of a 4 makes a 9)" if tuple(classes) == tuple(CLASS_NAMES)
               else "(longer sleeves make a shirt a pullover)")
    say("look for: red along the strokes that make the image what it is, and blue in the places where ink "
        f"would make it something else {example}. In the mistakes, compare the two maps: the answer's map shows "
        "which strokes argued for it")
    return {"figures": [figure]}


def section_calibration(cnn, data, probs, right, out_dir) -> dict:
    """5. Whether the CNN's confidence can be trusted, and temperature scaling."""
    print("\n== 5. Confidence and calibration ==")
    confidence = probs.max(1).values
    wrong_conf, right_conf = confidence[~right], confidence[right]
    summary = {"right_mean": right_conf.mean().item(), "wrong_mean": wrong_conf.mean().item(),
               "wrong_over_90": (wrong_conf > 0.9).float().mean().item()}
    say(f"mean confidence: {summary['right_mean']:.1%} when right, {summary['wrong_mean']:.1%} when wrong; "
        f"{summary['wrong_over_90']:.0%} of mistakes are made with more than 90% confidence")
    val_logits = predict_logits(cnn, data.val[0]).cpu()
    test_logits = predict_logits(cnn, data.test[0]).cpu()
    report = calibration_report(val_logits, data.val[1].cpu(), test_logits, data.test[1].cpu(), CALIBRATION_BINS)
    t = report["after"].temperature
    say(f"temperature fitted on the validation set: T = {t:.2f} (T {'>' if t > 1 else '<'} 1: on validation "
        f"images the network was {'over' if t > 1 else 'under'}-confident)")
    say("ECE: the expected calibration error (how far confidence is from accuracy, averaged over bins); "
        "NLL: the negative log-likelihood, the average cross-entropy loss (lower is better for both)")
    for name, r in report.items():
        say(f"  {name:<6} ECE {r.test_ece:.4f}  test NLL {r.test_nll:.4f}  validation NLL {r.val_nll:.4f}")
    figures = [save_figure(plot_confidence(probs.cpu(), data.test[1].cpu()), out_dir, "05_confidence.png"),
               save_figure(plot_reliability(report), out_dir, "05_reliability.png")]
    return {"confidence": summary, "calibration": report, "figures": figures}


def section_adversarial(models: dict, data, right, epsilons, out_dir) -> dict:
    """6. How small a change to the pixels fools each network (FGSM)."""
    print("\n== 6. Adversarial examples (FGSM) ==")
    images, labels = data.test
    signs = {name: gradient_signs(model, images, labels) for name, model in models.items()}
    sweep = fgsm_sweep(models, signs, images, labels, epsilons, data.mean, data.std)
    print(f"{'epsilon':>7}  " + "  ".join(f"{name:>6}" for name in sweep))
    for i, epsilon in enumerate(epsilons):
        print(f"{epsilon:>7g}  " + "  ".join(f"{sweep[name][i]:>6.1%}" for name in sweep))
    figures = [save_figure(plot_fgsm_curve(epsilons, sweep), out_dir, "05_fgsm_accuracy.png")]
    cnn = models["CNN"]
    attacked = perturb(images, signs["CNN"], FOOLED_EPSILON, data.mean, data.std)  # all 10,000, as in the table
    attacked_probs = torch.softmax(predict_logits(cnn, attacked), 1)
    flipped = right & (attacked_probs.argmax(1) != labels)
    fooled = torch.nonzero(flipped).squeeze(1)[:10]
    share = flipped.sum().item() / max(right.sum().item(), 1)
    figures.append(save_figure(plot_fooled(images[fooled], attacked[fooled], labels[fooled],
                                           attacked_probs[fooled].argmax(1), attacked_probs[fooled].max(1).values,
                                           FOOLED_EPSILON, share, data.classes), out_dir, "05_fgsm_examples.png"))
    say(f"look for: at epsilon {FOOLED_EPSILON} the changes are a faint speckle, and a person still reads each "
        "digit, yet the answers change")
    return {"fgsm": {"epsilons": list(epsilons), **sweep}, "figures": figures}


def prepare_pictures(pictures: dict) -> dict:
    """Each kind's pictures through the --image preparation; the ones it refuses (blank, a speck) are left out."""
    prepared = {}
    for kind, images in pictures.items():
        views = []
        for image in images:
            with contextlib.suppress(LearnerError):  # refused by the preparation itself: counted as rejected
                views.append(prepare_image(image).view)
        prepared[kind] = torch.stack(views) if views else torch.zeros(0, 28, 28)
    return prepared


def rejection_report(model, data, pictures: dict, prepared: dict, data_dir: Path) -> tuple[dict, dict, object]:
    """AUROC of the rule and of the energy score alone, and the share of each kind the rule refuses."""
    rule = fit_rejection_rule(model, data, data_dir)
    logits, features = logits_and_features(model, data.test[0])
    digits, digits_energy = rule.digit_logit(features), energy(logits)
    by_kind, by_kind_energy, refused_by_kind = {}, {}, {}
    for kind, views in prepared.items():
        if len(views):
            kind_logits, kind_features = logits_and_features(model, ((views - data.mean) / data.std).unsqueeze(1))
            by_kind[kind], by_kind_energy[kind] = rule.digit_logit(kind_features), energy(kind_logits)
            verdicts = rule.verdicts(kind_logits, kind_features)
        else:
            by_kind[kind] = by_kind_energy[kind] = torch.zeros(0)
            verdicts = []
        refused_by_kind[kind] = (len(pictures[kind]) - len(views) + sum(v.kind == "not a digit" for v in verdicts),
                                 sum(v.kind == "not sure" for v in verdicts), len(pictures[kind]))
    refused = sum(len(pictures[kind]) - len(views) for kind, views in prepared.items())
    lowest = torch.full((refused,), -1e9, dtype=torch.float64)  # refused by the preparation: lowest score
    test_verdicts = rule.verdicts(logits, features)
    report = {"auroc": auroc(digits, torch.cat([*by_kind.values(), lowest])),
              "auroc_energy": auroc(digits_energy, torch.cat([*by_kind_energy.values(), lowest.float()])),
              "refused": refused_by_kind, "accept": rule.accept,
              "test_digits_kept": sum(v.kind != "not a digit" for v in test_verdicts) / len(test_verdicts)}
    return report, {"test digits": digits, **by_kind}, rule


def section_not_digits(models: dict, data, out_dir, data_dir: Path, models_dir: Path) -> dict:
    """7. Your own digit, and "that is not a digit": how well the rule tells digits from the rest, on the
    networks as trained and on the CNN after it was shown non-digits (outlier exposure)."""
    print("\n== 7. Your own digit, and \"that is not a digit\" ==")
    if data.dataset.key != "mnist":
        say(f"this section is about handwritten digits: it runs with MNIST only (this run uses {data.dataset.title})")
        return {"figures": []}
    say("a network trained on digits answers every picture with a digit. The rule that says \"this does not look "
        "like a digit\" (mnist_common/rejection.py) is a small classifier, a logistic regression, on what the "
        "network's last layer reads. It is fitted on pictures the project makes: digits typed in 12 fonts at every "
        "weight, drawn by a jittery hand, and MNIST's validation digits moved, turned, thickened and thinned, "
        "against letters, symbols, shapes, scribbles and textures drawn with the same fonts and pens. Both sides "
        "share every style, so it learns shapes, not styles; the test set is never used")
    cnn = models["CNN"]
    taught = taught_model(cnn, Path(models_dir) / "cnn.pt", data, data_dir)
    say(f"but a network that only ever saw digits was never asked to say \"none of these\": a diamond can sit "
        f"right beside the 0s in what its last layer reads. So a copy of the CNN is shown non-digits: "
        f"{rejection.EXPOSURE_STEPS} more steps on its training digits and the made digits, plus made non-digits whose "
        f"target is \"every digit equally likely\" (outlier exposure, Hendrycks et al. 2019). Test accuracy "
        f"{evaluate(cnn, *data.test)[1]:.2%} before, {evaluate(taught, *data.test)[1]:.2%} after; it is kept as "
        f"{Path(models_dir).name}/cnn_taught.pt, and --image and the drawing page read with it")
    models = {**models, "CNN taught": taught}
    pictures = not_digits(NOT_DIGIT_SAMPLES, SEED)
    prepared = prepare_pictures(pictures)
    results, scores, rules = {}, {}, {}
    for name, model in models.items():
        results[name], scores[name], rules[name] = rejection_report(model, data, pictures, prepared, data_dir)
        r = results[name]
        say(f"{name}: AUROC {r['auroc']:.3f} for the rule, {r['auroc_energy']:.3f} for the energy score alone "
            f"(1 = every digit scores above every non-digit). It refuses below {percent(r['accept'])} (the "
            f"probability that {KEEP:.1%} of held-back validation digits reach): it answers "
            f"{r['test_digits_kept']:.1%} of the test digits; of the non-digits it refuses + doubts (\"not sure\"): "
            + ", ".join(f"{kind} {no / n:.0%} + {unsure / n:.0%}" for kind, (no, unsure, n) in r["refused"].items()))
    say("softmax confidence is not knowledge: it only compares the ten scores with each other. Try yours: "
        "python 05_understand_model.py --image my_digit.png (add --explain to see every step of the preparation)")
    figure = save_figure(plot_not_digits(scores, rules), out_dir, "05_not_a_digit.png")
    return {"not_digits": results, "figures": [figure]}


def best_runs_by_script(models_dir: Path) -> dict:
    best = {}
    for row in read_experiments(models_dir):  # best validation accuracy first
        best.setdefault(row["script"], row)
    return best


def section_reflection(results: dict, models_dir: Path, epsilons, classes=CLASS_NAMES) -> None:
    """8. The numbers behind the reflection questions, for the learner's own models."""
    print("\n== 8. Reflection: what the numbers say (your models, your run) ==")
    for script, row in best_runs_by_script(models_dir).items():
        say(f"best logged run of {script} (by validation): {row['test_acc']:.2%} test accuracy "
            f"({int(row['parameters']):,} parameters, {row['train_seconds']:.0f} s)")
    pairs, report = results["confused_pairs"], results["calibration"]
    say(f"this CNN: {results['accuracy']:.2%}; most confused: "
        + ", ".join(f"{classes[a]} and {classes[b]} ({n})" for n, a, b in pairs[:3]))
    before, after = report["before"].test_ece, report["after"].test_ece
    say(f"when wrong it is still {results['confidence']['wrong_mean']:.0%} sure on average; temperature scaling "
        f"(T = {report['after'].temperature:.2f}) takes the test calibration error from {before:.4f} to {after:.4f}"
        + (" (better)" if after < before else " (slightly worse on the test set: the network was already well "
                                              "calibrated)"))
    below_half = next((e for e, a in zip(epsilons, results["fgsm"]["CNN"]) if a < 0.5), None)
    say("the smallest FGSM budget in the sweep that takes the CNN below 50%: "
        + (f"epsilon {below_half:g}, a change of {below_half * 255:.0f} of 255 brightness levels per pixel"
           if below_half is not None else "none up to the largest tried"))


def load_models(models_dir: Path, device, with_mlp: bool = True):
    """The CNN (required) and, for comparisons, the MLP when it exists."""
    cnn, cnn_checkpoint = load_model(Path(models_dir) / "cnn.pt", "04_improved_model.py")
    mlp_path = Path(models_dir) / "mlp.pt"
    mlp = None
    if with_mlp and mlp_path.exists():
        mlp = load_model(mlp_path, "03_train_model.py")[0].to(device)
    elif with_mlp:
        say(f"{missing_model_message(mlp_path, '03_train_model.py')} to compare with the simple network; "
            "carrying on with the CNN alone")
    return cnn.to(device), cnn_checkpoint, mlp


def analyse(models_dir: Path, out_dir: Path, data_dir: Path, epsilons=EPSILONS, seed: int = SEED) -> dict:
    """The full analysis: a table of contents, one section per question."""
    device = pick_device()
    generator = set_seed(seed)
    cnn, checkpoint, mlp = load_models(models_dir, device)
    say(f"precision: every number below is computed in fp32 (the CNN was trained in "
        f"{checkpoint.get('precision', 'fp32')})")
    data = load_mnist(data_dir=data_dir).to(device)
    images, labels = data.test
    results = section_predictions(cnn, data, generator, out_dir)
    predictions, right = results["predictions"], results["right"]
    models = {"CNN": cnn} if mlp is None else {"MLP": mlp, "CNN": cnn}
    for section in (section_confusions(labels, predictions, out_dir, data.classes),
                    section_features(cnn, images, labels, out_dir, data.classes),
                    section_saliency(cnn, images, labels, predictions, results["probs"], out_dir, data.classes),
                    section_calibration(cnn, data, results["probs"], right, out_dir),
                    section_adversarial(models, data, right, epsilons, out_dir),
                    section_not_digits(models, data, out_dir, data_dir, models_dir)):
        results["figures"] += section.pop("figures")
        results |= section
    section_reflection(results, models_dir, epsilons, data.classes)
    return results


def your_digits(paths, models_dir: Path, out_dir: Path, data_dir: Path, explain: bool = False) -> dict:
    """Predict the learner's own image files; a bad file is reported, the rest predicted."""
    good, prepared, failed = prepare_files(paths)  # bad files fail here, before any model loads
    device = pick_device()
    cnn, checkpoint, _ = load_models(models_dir, device, with_mlp=False)
    data = load_mnist(data_dir=data_dir).to(device)
    cnn = taught_model(cnn, Path(models_dir) / "cnn.pt", data, data_dir)  # the CNN shown what is not a digit
    rule = fit_rejection_rule(cnn, data, data_dir)
    norm = checkpoint["normalization"]
    verdicts = judge(cnn, rule, torch.stack([p.view for p in prepared]), norm["mean"], norm["std"])
    print()
    for path, p, verdict in zip(good, prepared, verdicts):
        print(f"{path}: {verdict.text}" + "".join(f" (note: {note})" for note in p.notes))  # one line per file
    names = [Path(path).name for path in good]
    pages = [save_figure(plot_your_digits(names[i:i + PAGE_ROWS], prepared[i:i + PAGE_ROWS],
                                          verdicts[i:i + PAGE_ROWS]), out_dir,
                         "05_your_digits.png" if i == 0 else f"05_your_digits_{i // PAGE_ROWS + 1}.png")
             for i in range(0, len(prepared), PAGE_ROWS)]
    if explain:
        pages.append(save_figure(plot_preparation(names[0], prepared[0]), out_dir, "05_preparation_steps.png"))
    return {"predictions": [v.digit for v in verdicts], "verdicts": verdicts, "figures": pages,
            "figure": pages[0], "failed": failed}


def main(image_paths=None, export_dir=None, typed_dir=None, explain: bool = False, out_dir: Path = VIS_DIR,
         models_dir: Path = MODELS_DIR, data_dir: Path = DATA_DIR, epsilons=EPSILONS, seed: int = SEED) -> dict:
    if export_dir or typed_dir:
        written = (export_test_digits(load_mnist(normalized=False, data_dir=data_dir), export_dir) if export_dir
                   else export_typed_digits(typed_dir, seed))
        folder = Path(export_dir or typed_dir)
        print(f"wrote {len(written)} pictures of digits to {folder}/; now try:\n"
              f"  python 05_understand_model.py --image {folder / '*.png'}")
        return {"exported": written}
    ensure_writable(out_dir, "figures")
    if image_paths:
        if current_dataset().key != "mnist":
            raise LearnerError(f"--image reads handwritten digits with the MNIST models: unset {DATASET_ENV} "
                               f"(it is set to {current_dataset().key})")
        return your_digits(image_paths, models_dir, out_dir, data_dir, explain)
    results = analyse(models_dir, out_dir, data_dir, epsilons, seed)
    print(f"\nwrote {len(results['figures'])} figures. Try your own digit: "
          "python 05_understand_model.py --image PATH")
    return results


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image", nargs="+", metavar="PATH", help="PNG or JPEG files of digits to recognise")
    parser.add_argument("--explain", action="store_true", help="with --image: draw every preparation step")
    parser.add_argument("--export-test-digits", metavar="DIR", help="save one test digit per class as PNG files")
    parser.add_argument("--export-typed-digits", metavar="DIR",
                        help="save typed digits in three fonts, made to look like photos, as PNG files")
    args = parser.parse_args()
    if args.explain and not args.image:
        parser.error("--explain shows how --image prepares a file: give it with --image PATH")
    if args.image and (args.export_test_digits or args.export_typed_digits):
        parser.error("--image and --export-... do different things: run them one after the other")
    return args


def check_knobs() -> None:
    """The constants above, checked before any work (one line naming a bad one)."""
    for name, value, low in (("GALLERY_SIZE", GALLERY_SIZE, 1), ("SALIENCY_MISTAKES", SALIENCY_MISTAKES, 1),
                             ("SMOOTHGRAD_SAMPLES", SMOOTHGRAD_SAMPLES, 1), ("CALIBRATION_BINS", CALIBRATION_BINS, 2),
                             ("NOT_DIGIT_SAMPLES", NOT_DIGIT_SAMPLES, 2), ("PAGE_ROWS", PAGE_ROWS, 1)):
        check_knob(name, value, is_whole(value, low), f"use a whole number of at least {low}")
    for name, value in (("SMOOTHGRAD_NOISE", SMOOTHGRAD_NOISE), ("SMOOTHGRAD_BLUR", SMOOTHGRAD_BLUR)):
        check_knob(name, value, is_number(value, 0), "use a number of at least 0")
    check_knob("EPSILONS", EPSILONS, is_list_of(EPSILONS, lambda e: is_number(e, 0, 1)),
               "use a list of pixel budgets from 0 to 1, such as [0.0, 0.1, 0.2]")
    check_knob("FOOLED_EPSILON", FOOLED_EPSILON, is_number(FOOLED_EPSILON, 0.001, 1), "use a number from 0.001 to 1")
    check_knob("SEED", SEED, is_whole(SEED), "use a whole number")
    check_knob("EXPORT_FONTS", EXPORT_FONTS, is_list_of(EXPORT_FONTS, lambda name: (FONT_DIR / str(name)).is_file()),
               f"use names of font files in {FONT_DIR}, such as 'DejaVuSans-Bold.ttf'")


if __name__ == "__main__":
    with friendly_errors():
        args = parse_args()
        check_knobs()
        result = main(image_paths=args.image, export_dir=args.export_test_digits, typed_dir=args.export_typed_digits,
                      explain=args.explain)
        if result.get("failed"):
            raise SystemExit(1)  # some of the images could not be read (each was named above)
