"""Phase 1: images are just numbers.

Before any learning, look at the data the way the network will: every image is a 28x28
grid of brightness values from 0 to 255, and every label is one digit. This script loads
real MNIST (verified by checksum), prints the size, type and range of each split and how
many of each digit there are, prints a "7" as the 784 numbers a network sees, computes the
normalization constants that every later script uses, and draws pictures that hint at
which digits will be hard to tell apart, and at how one might tell a 0 from an 8 by hand.

Run:     python 01_explore_mnist.py
Writes:  visualizations/01_*.png (the list is printed at the end)
Next:    python 02_simple_nn.py
"""

from pathlib import Path

import matplotlib.pyplot as plt
import torch

from mnist_common import (
    DATA_DIR,
    VIS_DIR,
    check_knob,
    ensure_writable,
    friendly_errors,
    is_whole,
    load_mnist,
    parse_no_options,
    pixel_stats,
    save_figure,
    say,
)

# --- Things to explore (edit and re-run) ---------------------------------------------
DIGIT_TO_PRINT = 7  # which digit to print as numbers in the terminal (0-9)
SAMPLES_PER_DIGIT = 10  # columns in the sample grid (5-20)
CENTRE_BOX = 6  # side, in pixels, of the central square used by the 0-versus-8 rule (2-12)
INK_LEVEL = 128  # a pixel brighter than this counts as ink (50-200)


# --- Looking at the numbers ------------------------------------------------------------
def describe_splits(data) -> None:
    """Print size, shape, dtype and value range of each split."""
    say(f"{'split':<6} {'images':>7}  {'shape':<16} {'dtype':<12} {'min':>4} {'max':>4}  labels")
    for name, (images, labels) in (("train", data.train), ("val", data.val), ("test", data.test)):
        say(f"{name:<6} {len(images):>7,}  {tuple(images.shape)!s:<16} {images.dtype!s:<12} "
            f"{images.min().item():>4} {images.max().item():>4}  {labels.dtype}, "
            f"{labels.min().item()}-{labels.max().item()}")
    total = sum(len(split[1]) for split in (data.train, data.val, data.test))
    say(f"total  {total:>7,}  ({len(data.train[1]) / total:.0%} train, "
        f"{len(data.val[1]) / total:.0%} validation, {len(data.test[1]) / total:.0%} test)")


def digit_counts(labels: torch.Tensor) -> torch.Tensor:
    """How many images of each digit 0-9."""
    return torch.bincount(labels, minlength=10)


def print_counts(data) -> None:
    width = max(5, *(len(name) for name in data.classes))
    print(f"\n{data.dataset.item:>{width}} {'train':>6} {'val':>5} {'test':>5}")
    counts = [digit_counts(split[1]) for split in (data.train, data.val, data.test)]
    for digit, name in enumerate(data.classes):
        print(f"{name:>{width}} {counts[0][digit]:>6,} {counts[1][digit]:>5,} {counts[2][digit]:>5,}")


def ink_box(image: torch.Tensor) -> tuple[slice, slice]:
    """The rows and columns of a (28, 28) image that hold any ink (MNIST keeps digits in 20x20)."""
    rows, cols = torch.nonzero(image, as_tuple=True)
    return slice(rows.min().item(), rows.max().item() + 1), slice(cols.min().item(), cols.max().item() + 1)


def print_as_numbers(image: torch.Tensor, label: int) -> None:
    """Print the inked part of a uint8 (28, 28) image as numbers; zeros as dots for legibility."""
    rows, cols = ink_box(image)
    print()
    say(f'A "{label}" as the network sees it: 784 numbers from 0 (black) to 255 (white). Shown here: rows '
        f"{rows.start}-{rows.stop - 1} and columns {cols.start}-{cols.stop - 1}, where the ink is; every other "
        "pixel is 0 (zeros shown as '.')")
    for row in image[rows, cols].tolist():
        print(" ".join(f"{v:3d}" if v else "  ." for v in row))


def centre_of_mass(images: torch.Tensor) -> tuple[float, float]:
    """Average (row, column) of the ink's centre of mass: where MNIST placed each digit."""
    ink = images.float()
    total = ink.sum((1, 2))
    rows = (ink.sum(2) * torch.arange(28)).sum(1) / total
    cols = (ink.sum(1) * torch.arange(28)).sum(1) / total
    return rows.mean().item(), cols.mean().item()


def mean_images(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The average image of each digit: (10, 28, 28), values 0-1."""
    pixels = images.float() / 255
    return torch.stack([pixels[labels == d].mean(0) for d in range(10)])


def template_matching(means: torch.Tensor, images: torch.Tensor, labels: torch.Tensor):
    """Classify each image as the digit whose mean image is nearest; return accuracy per digit.

    This is the simplest "learned" classifier there is: where it fails, digits look alike.
    """
    pixels = images.float().flatten(1) / 255  # (N, 784)
    guesses = torch.cdist(pixels, means.flatten(1)).argmin(1)  # (N,) nearest mean image
    per_digit = torch.stack([(guesses[labels == d] == d).float().mean() for d in range(10)])
    return per_digit, (guesses == labels).float().mean().item()


def centre_ink(images: torch.Tensor, box: int, ink_level: int) -> torch.Tensor:
    """Fraction of the central box x box square that is ink, for each image."""
    lo = (28 - box) // 2
    centre = images[:, lo:lo + box, lo:lo + box]
    return (centre > ink_level).float().mean((1, 2))


def zero_versus_eight(data, box: int, ink_level: int) -> dict:
    """A hand-made rule: "an 8 crosses the middle, a 0 is hollow there".

    The threshold is chosen on the training split and judged on the test split.
    """
    def ink_of(split, digit):
        images, labels = split
        return centre_ink(images[labels == digit], box, ink_level)

    train_0, train_8 = ink_of(data.train, 0), ink_of(data.train, 8)
    candidates = torch.linspace(0, 1, 101)
    right = [((train_0 <= t).sum() + (train_8 > t).sum()).item() for t in candidates]
    threshold = candidates[max(range(len(right)), key=right.__getitem__)].item()
    test_0, test_8 = ink_of(data.test, 0), ink_of(data.test, 8)
    correct = (test_0 <= threshold).sum().item() + (test_8 > threshold).sum().item()
    return {"threshold": threshold, "test_accuracy": correct / (len(test_0) + len(test_8)),
            "train_0": train_0, "train_8": train_8}


# --- Pictures ---------------------------------------------------------------------------
def plot_samples(images, labels, per_digit: int, classes, title: str):
    """One mosaic image: a row of `per_digit` examples for each digit, with a thin gap between."""
    gap = 2
    tiles = torch.zeros(10, per_digit, 28 + gap, 28 + gap, dtype=torch.uint8)
    for digit in range(10):
        tiles[digit, :, :28, :28] = images[labels == digit][:per_digit]
    mosaic = tiles.permute(0, 2, 1, 3).reshape(10 * (28 + gap), per_digit * (28 + gap))
    fig, ax = plt.subplots(figsize=(per_digit * 0.8, 8.2))
    ax.imshow(mosaic.numpy(), cmap="gray")
    ax.set_yticks([digit * (28 + gap) + 14 for digit in range(10)], classes, fontsize=13 if len(classes[0]) == 1 else 9)
    ax.set_xticks([])
    ax.set_title(f"{title} training images, one row per label (on the left)")
    return fig


def plot_seven(image, label):
    """The digit with every one of its 784 values written on its pixel."""
    fig, ax = plt.subplots(figsize=(15, 15))
    ax.imshow(image.numpy(), cmap="gray", vmin=0, vmax=255)
    for (row, col), value in zip(torch.cartesian_prod(torch.arange(28), torch.arange(28)).tolist(),
                                 image.flatten().tolist()):
        ax.text(col, row, str(value), ha="center", va="center", fontsize=8,
                color="black" if value > 128 else ("white" if value else "dimgray"))
    ax.set_title(f'A "{label}" is 784 numbers: brightness 0 (black) to 255 (white)', fontsize=16)
    ax.set_xticks(range(0, 28, 4))
    ax.set_yticks(range(0, 28, 4))
    ax.set_xlabel("column", fontsize=12)
    ax.set_ylabel("row", fontsize=12)
    return fig


def plot_digit_means(means, classes):
    fig, axes = plt.subplots(1, 10, figsize=(14, 1.9))
    for digit, ax in enumerate(axes):
        ax.imshow(means[digit].numpy(), cmap="magma")
        ax.set_title(classes[digit], fontsize=10)
        ax.axis("off")
    fig.suptitle("The average training image of each label: bright where most images have ink", y=1.05)
    return fig


def plot_pixel_histogram(images):
    fig, ax = plt.subplots(figsize=(8, 4))
    counts = torch.bincount(images.flatten().long(), minlength=256)
    ax.stairs(counts.numpy(), range(257), fill=True, color="tab:blue")
    ax.set_yscale("log")
    ax.set_xlabel("pixel brightness (0 = black background, 255 = full ink)")
    ax.set_ylabel("number of pixels (log scale)")
    share_black = counts[0].item() / counts.sum().item()
    ax.set_title(f"Pixel brightness in the training split: {share_black:.0%} of all pixels are exactly 0")
    return fig


def plot_class_distribution(data):
    """The share of each label in each split."""
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.27
    for offset, (name, split) in zip((-width, 0, width),
                                     (("train", data.train), ("validation", data.val), ("test", data.test))):
        share = digit_counts(split[1]).float() / len(split[1]) * 100
        ax.bar((torch.arange(10) + offset).numpy(), share.numpy(), width, label=f"{name} ({len(split[1]):,})")
    ax.axhline(10, color="gray", linestyle=":", label="perfectly balanced (10%)")
    ax.set_xticks(range(10), data.classes, rotation=0 if data.dataset.key == "mnist" else 30)
    ax.set_xlabel(data.dataset.item)
    ax.set_ylabel("share of the split (%)")
    ax.set_ylim(0, 16)
    ax.set_title(f"How often each {data.dataset.item} appears: about a tenth each, in every split")
    ax.legend(loc="upper center", ncol=4, fontsize=8)
    return fig


def plot_similarity(distances, per_digit_accuracy, overall, classes, item: str):
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    shown_dist = distances.clone()
    shown_dist.fill_diagonal_(float("nan"))
    im = left.imshow(shown_dist.numpy(), cmap="viridis_r")
    for i in range(10):
        for j in range(10):
            if i != j:
                far = distances[i, j] > distances.max() * 0.75
                left.text(j, i, f"{distances[i, j]:.2f}", ha="center", va="center", fontsize=6,
                          color="white" if far else "black")
    rotation = 0 if len(classes[0]) == 1 else 45
    left.set_xticks(range(10), classes, rotation=rotation, ha="right" if rotation else "center")
    left.set_yticks(range(10), classes)
    left.set_xlabel(item)
    left.set_ylabel(item)
    left.set_title("Distance between mean images\n(small = the average shapes look alike)")
    fig.colorbar(im, ax=left, shrink=0.8, label="distance (square root of the summed squared pixel differences)")
    bars = right.bar(range(10), per_digit_accuracy.numpy() * 100, color="tab:green")
    right.bar_label(bars, fmt="%.0f", fontsize=8)
    right.set_xticks(range(10), classes, rotation=rotation, ha="right" if rotation else "center")
    right.set_ylim(0, 105)
    right.set_xlabel(item)
    right.set_ylabel("test images recognised (%)")
    right.set_title(f"Nearest-mean-image classifier: {overall:.1%} overall\n"
                    f"(low bars: {item}s whose shapes vary or resemble others)")
    return fig


def plot_zero_versus_eight(means, rule, box: int, classes):
    zero, eight = classes[0], classes[8]
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.8))
    lo = (28 - box) // 2
    difference = means[8] - means[0]
    panels = ((axes[0], means[0], f"mean {zero}", "magma"), (axes[1], means[8], f"mean {eight}", "magma"),
              (axes[2], difference, f"mean {eight} minus mean {zero}\n(red: more ink in {eight}s, blue: in {zero}s)",
               "bwr"))
    for ax, image, title, cmap in panels:
        limit = difference.abs().max().item() if cmap == "bwr" else None
        ax.imshow(image.numpy(), cmap=cmap, vmin=-limit if limit else None, vmax=limit)
        ax.add_patch(plt.Rectangle((lo - 0.5, lo - 0.5), box, box, fill=False, edgecolor="cyan", lw=1.5))
        ax.set_title(title)
        ax.axis("off")
    steps = box * box  # the share of ink moves in steps of 1/steps: one bin per possible value
    bins = ((torch.arange(steps + 2) - 0.5) / steps).numpy()
    axes[3].hist(rule["train_0"].numpy(), bins=bins, alpha=0.6, label=f"{zero}s", color="tab:blue")
    axes[3].hist(rule["train_8"].numpy(), bins=bins, alpha=0.6, label=f"{eight}s", color="tab:red")
    axes[3].axvline(rule["threshold"], color="black", linestyle="--", label="threshold")
    axes[3].set_xlabel(f"share of ink in the central {box}x{box} square")
    axes[3].set_ylabel("training images")
    axes[3].set_title(f'Rule "ink in the middle means {eight}":\n{rule["test_accuracy"]:.1%} right on test {zero}s '
                      f'and {eight}s')
    axes[3].set_xlim(-0.03, 1.03)
    axes[3].legend()
    return fig


# --- The story --------------------------------------------------------------------------
def show_the_numbers(data, digit_to_print: int) -> tuple[torch.Tensor, tuple[float, float]]:
    """Splits, counts, one digit as numbers, and where MNIST centred its digits."""
    print("\n== The three splits ==")
    describe_splits(data)
    print_counts(data)
    train_images, train_labels = data.train
    example = train_images[train_labels == digit_to_print][0]
    print_as_numbers(example, data.classes[digit_to_print])
    row, col = centre_of_mass(train_images)
    if data.dataset.key == "mnist":
        say(f"MNIST scaled each digit to fit 20x20 pixels and centred its ink's centre of mass: on average at "
            f"row {row:.2f}, column {col:.2f} of the 28x28 grid (05 prepares your own digits the same way)")
    else:
        say(f"the centre of mass of {data.dataset.title}'s images lies on average at row {row:.2f}, column "
            f"{col:.2f} of the 28x28 grid")
    return example, (row, col)


def show_normalization(train_images) -> tuple[float, float]:
    """The mean and spread of the training pixels, which every later script removes."""
    mean, std = pixel_stats(train_images)
    print("\n== Normalization constants (computed from the training split) ==")
    print(f"mean brightness {mean:.4f}, standard deviation {std:.4f} (on the 0-1 scale)")
    say(f"later scripts feed the network (pixel/255 - {mean:.4f}) / {std:.4f}: "
        "inputs centred on 0 with spread 1, which makes training easier")
    return mean, std


def show_hard_digits(data, means) -> dict:
    """Which average digits look alike, and how far matching against the averages gets."""
    distances = torch.cdist(means.flatten(1), means.flatten(1))  # (10, 10)
    per_digit, overall = template_matching(means, *data.test)
    masked = distances + torch.eye(10) * 1e9
    closest = sorted((masked[i, j].item(), i, j) for i in range(10) for j in range(i + 1, 10))[:3]
    print(f"\n== Why some {data.dataset.item}s are harder ==")
    say("closest pairs of mean images: " + ", ".join(f"{data.classes[i]} and {data.classes[j]} ({d:.2f})"
                                                     for d, i, j in closest))
    names = data.classes
    say(f"nearest-mean-image classifier on the test split: {overall:.1%} overall; per {data.dataset.item}: "
        + ", ".join(f"{names[d]}: {acc:.0%}" for d, acc in enumerate(per_digit.tolist())))
    say(f"hardest for it: {', '.join(names[d] for d in per_digit.argsort()[:3].tolist())}; easiest: "
        f"{names[per_digit.argmax().item()]}. A network must learn more than one average shape per "
        f"{data.dataset.item}.")
    return {"distances": distances, "per_digit": per_digit, "overall": overall, "closest": closest}


def show_zero_versus_eight(data, centre_box: int, ink_level: int) -> dict:
    """The plan's question 3, answered with a one-sentence rule and its measured accuracy."""
    rule = zero_versus_eight(data, centre_box, ink_level)
    zero, eight = data.classes[0], data.classes[8]
    print(f"\n== Telling {zero} from {eight} by hand ==")
    say(f'rule: "if more than {rule["threshold"]:.0%} of the central {centre_box}x{centre_box} square is '
        f'ink, it is {eight}, else {zero}" -> {rule["test_accuracy"]:.1%} right on the test {zero}s and {eight}s')
    say("a hand-written rule gets far, but every rule has exceptions; a network finds its own rules")
    return rule


def check_knobs() -> None:
    """The constants above, checked before any work (one line naming a bad one)."""
    check_knob("DIGIT_TO_PRINT", DIGIT_TO_PRINT, is_whole(DIGIT_TO_PRINT, 0, 9), "use a whole number from 0 to 9")
    check_knob("SAMPLES_PER_DIGIT", SAMPLES_PER_DIGIT, is_whole(SAMPLES_PER_DIGIT, 1, 40),
               "use a whole number from 1 to 40")
    check_knob("CENTRE_BOX", CENTRE_BOX, is_whole(CENTRE_BOX, 1, 28), "use a whole number of pixels from 1 to 28")
    check_knob("INK_LEVEL", INK_LEVEL, is_whole(INK_LEVEL, 0, 254), "use a whole number from 0 to 254")


def main(out_dir: Path = VIS_DIR, data_dir: Path = DATA_DIR, digit_to_print: int = DIGIT_TO_PRINT,
         samples_per_digit: int = SAMPLES_PER_DIGIT, centre_box: int = CENTRE_BOX,
         ink_level: int = INK_LEVEL) -> dict:
    ensure_writable(out_dir, "figures")
    data = load_mnist(normalized=False, data_dir=data_dir)  # raw uint8 pixels, 0-255
    train_images, train_labels = data.train
    example, centre = show_the_numbers(data, digit_to_print)
    mean, std = show_normalization(train_images)
    means = mean_images(train_images, train_labels)
    hard = show_hard_digits(data, means)
    rule = show_zero_versus_eight(data, centre_box, ink_level)

    print("\n== Figures ==")
    written = [
        save_figure(plot_samples(train_images, train_labels, samples_per_digit, data.classes, data.dataset.title),
                    out_dir, "01_samples.png"),
        save_figure(plot_seven(example, data.classes[digit_to_print]), out_dir, "01_digit_as_numbers.png"),
        save_figure(plot_digit_means(means, data.classes), out_dir, "01_digit_means.png"),
        save_figure(plot_pixel_histogram(train_images), out_dir, "01_pixel_histogram.png"),
        save_figure(plot_class_distribution(data), out_dir, "01_class_distribution.png"),
        save_figure(plot_similarity(hard["distances"], hard["per_digit"], hard["overall"], data.classes,
                                    data.dataset.item), out_dir, "01_digit_similarity.png"),
        save_figure(plot_zero_versus_eight(means, rule, centre_box, data.classes), out_dir, "01_zero_vs_eight.png"),
    ]
    print(f"\nwrote {len(written)} figures. Next: python 02_simple_nn.py")
    return {"data": data, "mean": mean, "std": std, "centre": centre, "template_accuracy": hard["overall"],
            "closest_pairs": hard["closest"], "per_digit_accuracy": hard["per_digit"],
            "rule_threshold": rule["threshold"], "rule_accuracy": rule["test_accuracy"], "figures": written}


if __name__ == "__main__":
    with friendly_errors():
        parse_no_options(__doc__)
        check_knobs()
        main()
