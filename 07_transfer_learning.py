"""Next step 3: teach it something new, with transfer learning.

Your CNN spent its training learning to see strokes, curves and corners. Are those worth
anything for pictures that are not digits? This script measures it, then uses it.

1. **What transfers, measured.** The CNN trained on MNIST (04's, and 06's DeepCNN when present)
   as the starting point for Fashion-MNIST's clothes, with 1, 5, 10, 50, 100 and 1,000 labelled
   images per class (the same seeded images for every method), three ways: a new last layer on
   the frozen features ("head only"), the whole network fine-tuned, and the same network from
   scratch, each stopped on validation images. It says where pretraining stops helping, asks
   whether the convolutions transfer better than the last dense layer (a new last layer on
   their output), and tries the reverse (a Fashion-MNIST CNN as the start for digits) in one line.
2. **Your own classes.** A folder of your own images, one subfolder per class (torchvision's
   ImageFolder layout), every image prepared exactly as `05_understand_model.py --image` does.
   A seeded share of each class is held out; both ways of transferring are trained on the rest
   and scored on it. The better one is saved with its class names and its "none of these" rule,
   and `--image` then answers with your classes.

The lessons live in mnist_common/transfer.py: `train_head`, `fine_tune` and `from_scratch`
share one loop, `fit_with_patience`; `read_image_folder` reads your folder; `OpenSetRule` says
"none of these". The example symbols are drawn by mnist_common/symbols.py.

Run:     python 07_transfer_learning.py                    (both parts, on the example symbols;
                                                             make transfer; about 15 minutes on one core)
         python 07_transfer_learning.py --dataset DIR      (part 2 on your own folder)
         python 07_transfer_learning.py --image a.png b.png (answer with your classes)
         python 07_transfer_learning.py --export-example-dataset DIR  (the example symbols, as files)
Needs:   models/cnn.pt (python 04_improved_model.py); models/ensemble/deepcnn_seed0.pt (06) when present
Writes:  models/transfer_<folder>.pt, visualizations/07_what_transfers.png,
         visualizations/07_confusion_<folder>.png, example_symbols/ (the default dataset)
"""

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from mnist_common import (
    DATA_DIR,
    FASHION,
    MNIST,
    MODELS_DIR,
    ROOT,
    VIS_DIR,
    CNNSettings,
    LearnerError,
    check_knob,
    current_dataset,
    ensure_writable,
    friendly_errors,
    is_list_of,
    is_number,
    is_whole,
    load_mnist,
    load_model,
    log_scale,
    normalize,
    pick_device,
    plural,
    predict_logits,
    random_affine,
    save_figure,
    say,
    shown,
    train_cnn,
)
from mnist_common.handwriting import prepare_files
from mnist_common.rejection import percent
from mnist_common.symbols import export_example_dataset
from mnist_common.transfer import (
    StopRule,
    accuracy,
    answer_pictures,
    attach_head,
    body_features,
    class_folders,
    features_read_by,
    fine_tune,
    fit_open_set_rule,
    from_scratch,
    load_transfer_model,
    normalized,
    per_class_subset,
    read_image_folder,
    save_transfer_model,
    stratified_split,
    train_head,
    transfer_arch,
    with_new_head,
)

# --- Hyperparameters (edit and re-run) ------------------------------------------------------
# 1. What transfers
SIZES = [1, 5, 10, 50, 100, 1000]  # labelled Fashion-MNIST images per class to learn from (1-5,000 each)
SEEDS = 3  # random subsets (and starting weights) per size; the figure shows their spread (1-5)
VALIDATION_PER_CLASS = 50  # Fashion-MNIST validation images per class that decide when to stop (10-600)
BATCH_SIZE = 32  # images per step, fewer when there are fewer (8-128)
MIN_STEPS = 20  # steps per round when one pass over the images is shorter than that (5-100)
MAX_ROUNDS = 30  # rounds at most; one round is a pass over the images, or MIN_STEPS steps (5-100)
PATIENCE = 5  # stop after this many rounds without a better validation accuracy (2-10)
HEAD_RATE = 0.01  # Adam's learning rate for a new last layer (0.001-0.05)
HEAD_WEIGHT_DECAY = 0.0001  # keeps the new layer's weights small: fewer images, more needed (0-0.01)
BODY_RATE = 0.0003  # fine-tuning: the trained layers move gently, so they keep what they know (0.0001-0.001)
TUNED_HEAD_RATE = 0.003  # fine-tuning: the new last layer's learning rate (0.001-0.01)
SCRATCH_RATE = 0.001  # from scratch: Adam's usual learning rate (0.0003-0.003)
HELPS_BY = 1.0  # pretraining "helps" while a pretrained start beats scratch by more than this many points (0.5-3)
CONV_SIZES = [10, 100]  # sizes at which a new last layer also reads the frozen convolutions' output (1-5,000)
REVERSE_PER_CLASS = 10  # the reverse (Fashion-MNIST -> MNIST) is measured at this size only (1-1,000)
REVERSE_EPOCHS = 2  # epochs of 04's recipe on Fashion-MNIST, for the reverse's starting point (1-5)
# 2. Your own classes
HOLD_OUT = 0.3  # share of each class held out to score the model, never learned from (0.1-0.5)
SPLIT_SEED = 0  # which images are held out (any integer)
OWN_ROUNDS = 15  # rounds of MIN_STEPS steps for your own classes: no early stop, the held-out part decides nothing
AUGMENTED_COPIES = 8  # head only: features of this many randomly moved copies of each image (1-32)
ROTATION, SCALE, SHIFT = 10, 0.1, 1.5  # how far the copies are turned (degrees), resized, moved (pixels)
RULE_MARGIN = 0.1  # "none of these" below (the least typical training image's similarity - this) (0-0.3)
EXAMPLE_PER_CLASS = 20  # drawings per symbol in the example dataset (4-200)
EXAMPLE_SEED = 2025  # which drawings those are

EXAMPLE_DIR = ROOT / "example_symbols"  # the default dataset, written on first use
DIGIT_CHECK = 1000  # MNIST test digits shown to your model: how many it calls "none of these"
METHODS = ("head only", "fine-tuned", "from scratch")
COLOURS = {"head only": "tab:green", "fine-tuned": "tab:blue", "from scratch": "tab:gray"}


@dataclass(frozen=True)
class Settings:
    """The constants above as one record, so tests can run everything with small values."""

    sizes: tuple = tuple(SIZES)
    seeds: int = SEEDS
    validation_per_class: int = VALIDATION_PER_CLASS
    stop: StopRule = field(default_factory=lambda: StopRule(batch_size=BATCH_SIZE, min_steps=MIN_STEPS,
                                                            max_rounds=MAX_ROUNDS, patience=PATIENCE))
    own_stop: StopRule = field(default_factory=lambda: StopRule(batch_size=BATCH_SIZE, min_steps=MIN_STEPS,
                                                                max_rounds=OWN_ROUNDS, patience=OWN_ROUNDS))
    conv_sizes: tuple = tuple(CONV_SIZES)
    reverse_per_class: int = REVERSE_PER_CLASS
    reverse_epochs: int = REVERSE_EPOCHS
    hold_out: float = HOLD_OUT
    augmented_copies: int = AUGMENTED_COPIES
    example_per_class: int = EXAMPLE_PER_CLASS


def settings_from_knobs() -> Settings:
    """The constants, checked once: a wrong value stops here, before any work, in one line."""
    for name, value in (("SIZES", SIZES), ("CONV_SIZES", CONV_SIZES)):
        check_knob(name, value, is_list_of(value, lambda n: is_whole(n, 1, 5000)),
                   "use a list of whole numbers from 1 to 5,000, such as [1, 10, 100]")
    for name, value, low, high in (("SEEDS", SEEDS, 1, 10), ("VALIDATION_PER_CLASS", VALIDATION_PER_CLASS, 1, 600),
                                   ("BATCH_SIZE", BATCH_SIZE, 1, 4096), ("MIN_STEPS", MIN_STEPS, 1, 10_000),
                                   ("MAX_ROUNDS", MAX_ROUNDS, 1, 1000), ("PATIENCE", PATIENCE, 1, 1000),
                                   ("REVERSE_PER_CLASS", REVERSE_PER_CLASS, 1, 5000),
                                   ("REVERSE_EPOCHS", REVERSE_EPOCHS, 1, 20), ("OWN_ROUNDS", OWN_ROUNDS, 1, 1000),
                                   ("AUGMENTED_COPIES", AUGMENTED_COPIES, 1, 64),
                                   ("EXAMPLE_PER_CLASS", EXAMPLE_PER_CLASS, 2, 1000), ("SPLIT_SEED", SPLIT_SEED, None,
                                                                                     None)):
        check_knob(name, value, is_whole(value, low, high),
                   "use a whole number" + (f" from {low} to {high:,}" if low is not None else ""))
    for name, value, low, high in (("HEAD_RATE", HEAD_RATE, 1e-6, 1), ("BODY_RATE", BODY_RATE, 0, 1),
                                   ("TUNED_HEAD_RATE", TUNED_HEAD_RATE, 1e-6, 1),
                                   ("SCRATCH_RATE", SCRATCH_RATE, 1e-6, 1),
                                   ("HEAD_WEIGHT_DECAY", HEAD_WEIGHT_DECAY, 0, 1),
                                   ("HELPS_BY", HELPS_BY, 0, 100), ("HOLD_OUT", HOLD_OUT, 0.01, 0.9),
                                   ("RULE_MARGIN", RULE_MARGIN, 0, 2), ("ROTATION", ROTATION, 0, 45),
                                   ("SCALE", SCALE, 0, 0.5), ("SHIFT", SHIFT, 0, 6)):
        check_knob(name, value, is_number(value, low, high), f"use a number from {low:g} to {high:g}")
    return Settings()


# --- 1. What transfers ------------------------------------------------------------------------------
def load_bases(models_dir: Path, device) -> dict:
    """The MNIST networks to start from: 04's CNN (required) and 06's first DeepCNN (when present)."""
    bases = {"CNN (04)": load_model(Path(models_dir) / "cnn.pt", "04_improved_model.py")}
    deep = Path(models_dir) / "ensemble" / "deepcnn_seed0.pt"
    if deep.exists():
        bases["DeepCNN (06)"] = load_model(deep, "06_beyond_99.py")
    else:
        say(f"{shown(deep)} not found: measuring 04's CNN only (python 06_beyond_99.py --models 1 makes one)")
    return {name: (model.to(device), checkpoint["normalization"]) for name, (model, checkpoint) in bases.items()}


def one_size(base, norm, raw, per_class: int, seed: int, val, test_features, test, settings: Settings, device) -> dict:
    """The three methods on the same `per_class` images per class: {method: (test accuracy, seconds)}."""
    images, labels = raw.train
    idx = per_class_subset(labels, per_class, seed)
    x, y = normalize(images[idx], norm["mean"], norm["std"]).to(device), labels[idx].to(device)
    classes = len(raw.classes)
    results = {}
    start = time.perf_counter()
    features = body_features(base, x)  # the frozen body sees each image once
    head = train_head(features, y, val["features"], val["labels"], classes, settings.stop, HEAD_RATE,
                      HEAD_WEIGHT_DECAY, seed)
    results["head only"] = (accuracy(head.model, *test_features), time.perf_counter() - start)
    tuned = fine_tune(with_new_head(base, classes, seed), (x, y), (val["images"], val["labels"]), settings.stop,
                      BODY_RATE, TUNED_HEAD_RATE, seed)
    results["fine-tuned"] = (accuracy(tuned.model, *test), tuned.seconds)
    scratch = from_scratch(base.arch, classes, (x, y), (val["images"], val["labels"]), settings.stop, SCRATCH_RATE,
                           seed)
    results["from scratch"] = (accuracy(scratch.model, *test), scratch.seconds)
    return results


def warm_up(base, x, y, classes: int) -> None:
    """One tiny run of each method, not timed: the first call of anything in PyTorch pays for setting it up."""
    tiny = StopRule(batch_size=8, min_steps=2, max_rounds=1, patience=1)
    features = body_features(base, x)
    train_head(features, y, features, y, classes, tiny, HEAD_RATE, HEAD_WEIGHT_DECAY, 0)
    fine_tune(with_new_head(base, classes, 0), (x, y), (x, y), tiny, BODY_RATE, TUNED_HEAD_RATE, 0)


def measure_transfer(base, norm, raw, sizes, seeds: int, settings: Settings, device, label: str) -> dict:
    """{method: {size: [(test accuracy, seconds) per seed]}} for one starting network on one target dataset."""
    images, labels = raw.val
    pick = per_class_subset(labels, settings.validation_per_class, seed=10_000)
    val = {"images": normalize(images[pick], norm["mean"], norm["std"]).to(device), "labels": labels[pick].to(device)}
    warm_up(base, val["images"][:16], val["labels"][:16], len(raw.classes))
    val["features"] = body_features(base, val["images"])
    test = (normalize(raw.test[0], norm["mean"], norm["std"]).to(device), raw.test[1].to(device))
    test_features = (body_features(base, test[0]), test[1])
    table = {method: {} for method in METHODS}
    for per_class in sizes:
        for seed in range(seeds):
            results = one_size(base, norm, raw, per_class, seed, val, test_features, test, settings, device)
            for method, result in results.items():
                table[method].setdefault(per_class, []).append(result)
        print(f"  {label}, {plural(per_class, 'image')} per class: " + ", ".join(
            f"{method} {mean([a for a, _ in table[method][per_class]]):.1%}" for method in METHODS))
    return table


def mean(values) -> float:
    return sum(values) / len(values)


def print_table(table: dict, title: str) -> None:
    """Test accuracy (mean, and the lowest and highest seed) and training seconds per method and size."""
    print(f"\n{title}")
    print(f"{'per class':>9}  " + "  ".join(f"{method:>26}" for method in METHODS))
    for size in table["head only"]:
        cells = []
        for method in METHODS:
            runs = table[method][size]
            accs, secs = [a for a, _ in runs], [s for _, s in runs]
            spread = f"{min(accs):.1%}-{max(accs):.1%}" if len(runs) > 1 else ""
            cells.append(f"{mean(accs):>6.1%} {spread:>11} {mean(secs):>5.1f} s")
        print(f"{size:>9}  " + "  ".join(f"{cell:>26}" for cell in cells))


def where_pretraining_stops(table: dict, helps_by: float) -> dict:
    """The gap, per size, between the better pretrained start and scratch; and the size from which it stays small."""
    gaps = {size: (max(mean([a for a, _ in table[m][size]]) for m in ("head only", "fine-tuned"))
                   - mean([a for a, _ in table["from scratch"][size]])) * 100 for size in table["head only"]}
    stops = None
    for size in sorted(gaps):
        if all(gaps[later] <= helps_by for later in gaps if later >= size):
            stops = size
            break
    return {"gaps": gaps, "stops_at": stops}


def say_where(verdict: dict, helps_by: float) -> None:
    gaps = verdict["gaps"]
    say("better pretrained start minus scratch, in points: "
        + ", ".join(f"{size}/class {gap:+.1f}" for size, gap in gaps.items()))
    if verdict["stops_at"] is None:
        say(f"pretraining still helps at the largest size tried ({max(gaps)} per class: {gaps[max(gaps)]:+.1f} "
            f"points, more than the {helps_by:g} point that counts as help)")
    elif verdict["stops_at"] == min(gaps):
        say(f"pretraining never helped by more than {helps_by:g} point here, even at {min(gaps)} per class")
    else:
        say(f"pretraining stops helping at about {verdict['stops_at']} images per class: from there on scratch "
            f"is within {helps_by:g} point of the better pretrained start")


def plot_transfer(tables: dict, helps: dict):
    """Test accuracy and training seconds against images per class (log axes), one row per starting network."""
    fig, axes = plt.subplots(len(tables), 2, figsize=(12.5, 4.6 * len(tables)), squeeze=False, layout="constrained")
    for (name, table), (acc_ax, time_ax) in zip(tables.items(), axes):
        for method in METHODS:
            sizes = list(table[method])
            accs = [[a * 100 for a, _ in table[method][s]] for s in sizes]
            secs = [mean([s for _, s in table[method][size]]) for size in sizes]
            colour = COLOURS[method]
            acc_ax.plot(sizes, [mean(a) for a in accs], "o-", color=colour, label=f"{method} (mean of seeds)")
            acc_ax.fill_between(sizes, [min(a) for a in accs], [max(a) for a in accs], color=colour, alpha=0.18)
            for size, runs in zip(sizes, accs):
                acc_ax.scatter([size] * len(runs), runs, color=colour, s=10, alpha=0.6)
            time_ax.plot(sizes, secs, "o-", color=colour, label=method)
        stops = helps[name]["stops_at"]
        if stops is not None and stops != min(table["head only"]):
            acc_ax.axvline(stops, color="black", linestyle=":", label="pretraining stops helping")
        acc_ax.set_ylabel("Fashion-MNIST test accuracy (%)")
        acc_ax.set_title(f"starting from the MNIST {name}: seeds' spread shaded", fontsize=10)
        time_ax.set_ylabel("training seconds (mean of seeds)")
        time_ax.set_title("what it cost on this machine", fontsize=10)
        for ax in (acc_ax, time_ax):
            log_scale(ax, "x")
            ax.set_xlabel("labelled images per class (log scale)")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        log_scale(time_ax, "y")
    fig.suptitle("What transfers from digits to clothes: a new last layer on frozen features, fine-tuning, "
                 "or the same network from scratch")
    return fig


def conv_head_line(base, norm, raw, table: dict, settings: Settings, device) -> dict:
    """A new last layer on what the first dense layer reads (the convolutions' output), at CONV_SIZES.

    Early layers see edges and strokes, which most pictures share; the last ones answer the old
    task's own questions. This asks whether the convolutions carry more that clothes can use.
    """
    dense = [m for m in base.modules() if isinstance(m, torch.nn.Linear)]
    if len(dense) < 2:  # the head is the only dense layer: its input is what "head only" already read
        return {}
    images, labels = raw.val
    pick = per_class_subset(labels, settings.validation_per_class, seed=10_000)
    val_x = normalize(images[pick], norm["mean"], norm["std"]).to(device)
    val_features, val_labels = features_read_by(dense[0], base, val_x), labels[pick].to(device)
    test_features = features_read_by(dense[0], base, normalize(raw.test[0], norm["mean"], norm["std"]).to(device))
    sizes = [n for n in settings.conv_sizes if n in table["head only"]]
    found = {}
    for per_class in sizes:
        accs = []
        for seed in range(settings.seeds):
            idx = per_class_subset(raw.train[1], per_class, seed)
            x = normalize(raw.train[0][idx], norm["mean"], norm["std"]).to(device)
            head = train_head(features_read_by(dense[0], base, x), raw.train[1][idx].to(device), val_features,
                              val_labels, len(raw.classes), settings.stop, HEAD_RATE, HEAD_WEIGHT_DECAY, seed)
            accs.append(accuracy(head.model, test_features, raw.test[1].to(device)))
        found[per_class] = mean(accs)
    if found:
        def at(method):
            return ", ".join(f"{mean([a for a, _ in table[method][n]]):.1%}" for n in sizes)

        say(f"a new last layer on the frozen convolutions' output instead ({dense[0].in_features:,} numbers, what "
            f"the first dense layer reads), at {', '.join(map(str, sizes))} images per class: "
            + ", ".join(f"{a:.1%}" for a in found.values())
            + f" (on the last layer's features: {at('head only')}; from scratch: {at('from scratch')})")
    return found


def reverse_line(settings: Settings, device, data_dir: Path) -> dict:
    """A CNN trained on Fashion-MNIST (04's recipe, briefly) as the starting point for digits, at one size."""
    fashion = load_mnist(data_dir=data_dir, dataset=FASHION).to(device)
    say(f"\nthe reverse: 04's CNN trained on Fashion-MNIST for {plural(settings.reverse_epochs, 'epoch')} "
        "(04's recipe), then used as the starting point for MNIST")
    recipe = CNNSettings(epochs=settings.reverse_epochs, batch_size=128, learning_rate=0.005, dropout=0.25, seed=0)
    base = train_cnn(recipe, fashion, device, "fp32").model.eval()
    norm = {"mean": fashion.mean, "std": fashion.std}
    del fashion
    raw = load_mnist(normalized=False, data_dir=data_dir, dataset=MNIST)
    table = measure_transfer(base, norm, raw, [settings.reverse_per_class], settings.seeds, settings, device,
                             "Fashion-MNIST's CNN -> MNIST")
    accs = {method: mean([a for a, _ in table[method][settings.reverse_per_class]]) for method in METHODS}
    say(f"the reverse (Fashion-MNIST's CNN as the start for MNIST, {settings.reverse_per_class} images per class, "
        f"mean of {plural(settings.seeds, 'seed')}): head only {accs['head only']:.1%}, fine-tuned "
        f"{accs['fine-tuned']:.1%}, from scratch {accs['from scratch']:.1%}")
    return accs


def what_transfers(settings: Settings, models_dir: Path, out_dir: Path, data_dir: Path, device) -> dict:
    print("\n== 1. What transfers from digits to clothes? ==")
    bases = load_bases(models_dir, device)
    raw = load_mnist(normalized=False, data_dir=data_dir, dataset=FASHION)
    say(f"Fashion-MNIST, {', '.join(map(str, settings.sizes))} labelled images per class, "
        f"{plural(settings.seeds, 'seed')} each (the same images for the three methods), stopped on "
        f"{settings.validation_per_class * 10:,} validation images, scored on the 10,000 test images")
    tables, helps = {}, {}
    for name, (base, norm) in bases.items():
        tables[name] = measure_transfer(base, norm, raw, settings.sizes, settings.seeds, settings, device, name)
        print_table(tables[name], f"starting from the MNIST {name}: test accuracy (mean, lowest-highest seed) "
                                  "and training seconds")
        helps[name] = where_pretraining_stops(tables[name], HELPS_BY)
        say_where(helps[name], HELPS_BY)
        helps[name]["conv_head"] = conv_head_line(base, norm, raw, tables[name], settings, device)
    figure = save_figure(plot_transfer(tables, helps), out_dir, "07_what_transfers.png")
    reverse = reverse_line(settings, device, data_dir)
    return {"tables": tables, "helps": helps, "reverse": reverse, "figure": figure}


# --- 2. Your own classes -------------------------------------------------------------------------------
def learn_head_only(base, x, y, classes: int, settings: Settings, seed: int, background: float):
    """A new last layer on the frozen CNN's features of AUGMENTED_COPIES moved copies of each image."""
    start = time.perf_counter()
    torch.manual_seed(seed)
    augment = random_affine(ROTATION, SCALE, SHIFT, background)
    copies = torch.cat([x] + [augment(x) for _ in range(settings.augmented_copies - 1)])  # (N * copies, 1, 28, 28)
    labels = y.repeat(settings.augmented_copies)
    features = body_features(base, copies)
    head = train_head(features, labels, features, labels, classes, settings.own_stop, HEAD_RATE, HEAD_WEIGHT_DECAY,
                      seed)
    model = attach_head(base, head.model)
    model.arch = transfer_arch(base.arch, classes)
    return model, time.perf_counter() - start


def learn_fine_tuned(base, x, y, classes: int, settings: Settings, seed: int, background: float):
    """Every weight trained on randomly moved copies, batch by batch, as 06 does."""
    start = time.perf_counter()
    model = with_new_head(base, classes, seed)
    model.arch = transfer_arch(base.arch, classes)
    fine_tune(model, (x, y), (x, y), settings.own_stop, BODY_RATE, TUNED_HEAD_RATE, seed,
              augment=random_affine(ROTATION, SCALE, SHIFT, background))
    return model, time.perf_counter() - start


def confusion(labels: torch.Tensor, predictions: torch.Tensor, classes: int) -> torch.Tensor:
    """(K, K) counts: row = the true class, column = the answer."""
    return torch.bincount(labels * classes + predictions, minlength=classes * classes).reshape(classes, classes)


def plot_confusion(matrix: torch.Tensor, classes: list[str], title: str):
    fig, ax = plt.subplots(figsize=(1.1 * len(classes) + 2.5, 1.0 * len(classes) + 2), layout="constrained")
    ax.imshow(matrix.numpy(), cmap="Blues")
    for i in range(len(classes)):
        for j in range(len(classes)):
            value = int(matrix[i, j])
            ax.text(j, i, value, ha="center", va="center", color="white" if value > matrix.max() / 2 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("the model's answer")
    ax.set_ylabel("true class")
    ax.set_title(title, fontsize=10)
    return fig


def refused_digits(model, rule, norm: dict, data_dir: Path) -> float:
    """The share of MNIST test digits (prepared as MNIST prepared them) that the rule calls none of your classes."""
    raw = load_mnist(normalized=False, data_dir=data_dir, dataset=MNIST)
    x = normalize(raw.test[0][:DIGIT_CHECK], norm["mean"], norm["std"])
    return 1 - rule.accepts(body_features(model, x)).float().mean().item()


def your_classes(folder: Path, settings: Settings, models_dir: Path, out_dir: Path, data_dir: Path,
                 device) -> dict:
    """Part 2: read the folder, hold out a part, learn head only and fine-tuned, score, save the better."""
    folder = Path(folder)
    start = time.perf_counter()
    data = read_image_folder(folder)
    reading = time.perf_counter() - start
    counts = torch.bincount(data.labels, minlength=len(data.classes)).tolist()
    say(f"{shown(folder)}: {plural(len(data.labels), 'image')} in {len(data.classes)} classes ("
        + ", ".join(f"{name} {count}" for name, count in zip(data.classes, counts))
        + f"), read and prepared as --image prepares a picture in {reading:.1f} s")
    if data.ignored:
        say(f"ignored {plural(len(data.ignored), 'file')} that are not PNG or JPEG (such as {shown(data.ignored[0])})")
    base, checkpoint = load_model(Path(models_dir) / "cnn.pt", "04_improved_model.py")
    base, norm = base.to(device), checkpoint["normalization"]
    x, y = normalized(data.views, norm).to(device), data.labels.to(device)
    train, held = stratified_split(data.labels, settings.hold_out, SPLIT_SEED)
    say(f"held out {len(held)} of them ({settings.hold_out:.0%} of each class, seed {SPLIT_SEED}); "
        f"learning from the other {len(train)}")
    classes = len(data.classes)
    results = {}
    for method, learn in (("head only", learn_head_only), ("fine-tuned", learn_fine_tuned)):
        model, seconds = learn(base, x[train], y[train], classes, settings, SPLIT_SEED, -norm["mean"] / norm["std"])
        right = int((predict_logits(model, x[held]).argmax(1) == y[held]).sum())
        results[method] = {"model": model, "seconds": seconds, "right": right, "accuracy": right / len(held)}
        say(f"  {method + ':':<12} held-out {right / len(held):6.1%} ({right} of {len(held)}), learned in "
            f"{seconds:.1f} s" + (" (frozen CNN features, new last layer)" if method == "head only"
                                  else " (every weight, the body gently)"))
    chosen = max(results, key=lambda m: (results[m]["accuracy"], m == "head only"))  # a tie goes to the cheaper
    model = results[chosen]["model"].eval()
    print(f"held-out accuracy: {results[chosen]['accuracy'] * 100:.1f}% ({len(held)} images)")
    tie = results["head only"]["accuracy"] == results["fine-tuned"]["accuracy"]
    say(f"kept: {chosen} ({'as good as the other, and cheaper' if tie else 'the better on the held-out images'})")
    rule = fit_open_set_rule(body_features(model, x[train]), y[train], RULE_MARGIN)
    held_in = int(rule.accepts(body_features(model, x[held])).sum())
    refused = refused_digits(model, rule, norm, data_dir)
    say(f"\"none of these\" rule: accepts {held_in} of the {len(held)} held-out images as one of your classes, and "
        f"calls {refused:.1%} of {DIGIT_CHECK:,} MNIST test digits none of them")
    predictions = predict_logits(model, x[held]).argmax(1)
    name = folder.resolve().name
    matrix = confusion(y[held].cpu(), predictions.cpu(), classes)
    figure = save_figure(plot_confusion(matrix, data.classes, f"{name}: the {len(held)} held-out images "
                                        f"({chosen}, {results[chosen]['accuracy']:.1%})"), out_dir,
                         f"07_confusion_{name}.png")
    path = save_transfer_model(Path(models_dir) / f"transfer_{name}.pt", model.cpu(), data.classes, norm, rule,
                               method=chosen, dataset=MNIST.key, base="models/cnn.pt",
                               metrics={m: {"held_out_accuracy": r["accuracy"], "seconds": r["seconds"]}
                                        for m, r in results.items()},
                               held_out=len(held), hold_out=settings.hold_out, split_seed=SPLIT_SEED)
    print(f"  wrote {shown(path)}; now try: python 07_transfer_learning.py --image {shown(data.paths[held[0]])}")
    return {"results": {m: {k: v for k, v in r.items() if k != "model"} for m, r in results.items()},
            "chosen": chosen, "held_out": len(held), "accuracy": results[chosen]["accuracy"], "model_path": path,
            "figure": figure, "confusion": matrix, "refused_digits": refused, "held_in": held_in,
            "classes": data.classes, "skipped": data.skipped, "reading_seconds": reading}


def newest_model(models_dir: Path) -> Path:
    found = sorted(Path(models_dir).glob("transfer_*.pt"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise LearnerError(f"no models/transfer_*.pt in {shown(models_dir)}/: run `python 07_transfer_learning.py "
                           "--dataset DIR` first")
    return found[-1]


def answer_files(paths, model_path: Path | None, models_dir: Path) -> dict:
    """One line per file: one of your classes, or none of them; a file that cannot be read is named, the rest kept."""
    model_path = Path(model_path) if model_path else newest_model(models_dir)
    model, checkpoint, rule = load_transfer_model(model_path)
    classes = checkpoint["classes"]
    say(f"{shown(model_path)}: {', '.join(classes)} ({checkpoint.get('method', '?')})")
    good, prepared, failed = prepare_files(paths)
    answers = answer_pictures(model, rule, torch.stack([p.view for p in prepared]), checkpoint["normalization"],
                              classes)
    for path, answer in zip(good, answers):
        print(f"{path}: {answer.name} ({percent(answer.probability)})" if answer.name else
              f"{path}: none of these ({', '.join(classes)})")
    return {"answers": answers, "failed": failed, "model_path": model_path}


# --- The story --------------------------------------------------------------------------------------------
def main(settings: Settings | None = None, dataset_dir=None, image_paths=None, model_path=None, export_dir=None,
         out_dir: Path = VIS_DIR, models_dir: Path = MODELS_DIR, data_dir: Path = DATA_DIR,
         example_dir: Path = EXAMPLE_DIR) -> dict:
    settings = settings or settings_from_knobs()
    if current_dataset().key != MNIST.key:
        raise LearnerError("07 starts from the MNIST models and chooses its own datasets: unset MNIST_DATASET")
    if export_dir:
        written = export_example_dataset(export_dir, settings.example_per_class, EXAMPLE_SEED)
        say(f"wrote {plural(len(written), 'drawing')} of {len({p.parent for p in written})} symbols to "
            f"{export_dir}/; now try: python 07_transfer_learning.py --dataset {export_dir}")
        return {"exported": written}
    if image_paths:
        return answer_files(image_paths, model_path, models_dir)
    if dataset_dir is not None:
        class_folders(dataset_dir)  # a missing, empty or one-class folder stops here, before any work
    ensure_writable(models_dir, "checkpoints")
    ensure_writable(out_dir, "figures")
    device = pick_device()
    results = {}
    if dataset_dir is None:
        results["transfer"] = what_transfers(settings, models_dir, out_dir, data_dir, device)
        if not Path(example_dir).exists():
            export_example_dataset(example_dir, settings.example_per_class, EXAMPLE_SEED)
            say(f"\nwrote the example dataset to {shown(example_dir)}/ (hand-drawn-looking symbols, "
                f"{settings.example_per_class} a class)")
        dataset_dir = example_dir
    print(f"\n== 2. Your own classes: {shown(dataset_dir)} ==")
    results["own"] = your_classes(dataset_dir, settings, models_dir, out_dir, data_dir, device)
    return results


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", metavar="DIR", help="a folder with one subfolder of images per class")
    parser.add_argument("--image", nargs="+", metavar="FILE", help="PNG or JPEG files to answer with your classes")
    parser.add_argument("--model", metavar="FILE", help="with --image: which models/transfer_*.pt (default: newest)")
    parser.add_argument("--export-example-dataset", metavar="DIR", help="write the example symbols as PNG files")
    args = parser.parse_args()
    if args.model and not args.image:
        parser.error("--model chooses the model --image uses: give it with --image FILE")
    if sum(bool(a) for a in (args.dataset, args.image, args.export_example_dataset)) > 1:
        parser.error("--dataset, --image and --export-example-dataset do different things: run them one at a time")
    return args


if __name__ == "__main__":
    with friendly_errors():
        args = parse_args()
        result = main(settings_from_knobs(), dataset_dir=args.dataset, image_paths=args.image, model_path=args.model,
                      export_dir=args.export_example_dataset)
        if result.get("failed"):
            raise SystemExit(1)  # some of the images could not be read (each was named above)
