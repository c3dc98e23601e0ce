"""Phase 5: going deeper with a convolutional network (CNN).

A fully-connected network treats the 784 pixels as an unordered list. A CNN slides small
3x3 filters over the image instead, so the same edge detector works everywhere, and
pooling halves the image twice (28 -> 14 -> 7) to keep the strongest responses. This
script builds the plan's CNN (mnist_common/networks.py, class CNN), trains it with Phase 3's
loop (mnist_common/training.py: `train_cnn` calls the same `fit`), and
answers the phase's three questions with measurements: how much better it is than the
simple network, how many parameters each has (and where they sit), and what the first
layer's filters detect.

Run:     python 04_improved_model.py
Writes:  models/cnn.pt, a row in models/experiments.csv, visualizations/04_*.png
Next:    python 05_understand_model.py
"""

from collections import Counter
from pathlib import Path

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from mnist_common import (
    CNN,
    DATA_DIR,
    MODELS_DIR,
    VIS_DIR,
    CNNSettings,
    SimpleNN,
    count_parameters,
    evaluate,
    friendly_errors,
    load_model,
    missing_model_message,
    plot_curves,
    print_best_runs,
    save_figure,
    save_run,
    shown,
    start_training,
    train_cnn,
)

# --- Hyperparameters (edit and re-run) ------------------------------------------------------
EPOCHS = 3  # passes over the training images (2-15); the schedule below spans all of them
BATCH_SIZE = 128  # images per step (64-512)
LEARNING_RATE = 0.005  # the PEAK of the one-cycle schedule, reached 30% of the way in (0.001-0.01)
DROPOUT = 0.25  # share of the 128 dense neurons silenced during training (0.0-0.5)
SEED = 0  # starting weights and batch order (any integer)
FEATURE_MAP_DIGIT = 0  # index of the test image whose feature maps are drawn (0-9999)

CHECKPOINT = "cnn.pt"
MLP_CHECKPOINT = "mlp.pt"


def settings_from_knobs() -> CNNSettings:
    """The constants above as one checked record; a wrong value stops here, before any work."""
    return CNNSettings(epochs=EPOCHS, batch_size=BATCH_SIZE, learning_rate=LEARNING_RATE, dropout=DROPOUT,
                       seed=SEED)


# --- Parameters, honestly -------------------------------------------------------------------
def layer_table(model: CNN) -> list[tuple[str, tuple, int]]:
    """(stage, output shape for one image, parameters) for each stage of the CNN."""
    x = torch.zeros(1, 1, 28, 28)
    rows = [("input", tuple(x.shape[1:]), 0)]
    stages = [("conv1 3x3, 32 filters + ReLU", lambda t: F.relu(model.conv1(t)), model.conv1),
              ("max-pool 2x2", lambda t: F.max_pool2d(t, 2), None),
              ("conv2 3x3, 64 filters + ReLU", lambda t: F.relu(model.conv2(t)), model.conv2),
              ("max-pool 2x2", lambda t: F.max_pool2d(t, 2), None),
              ("flatten", lambda t: t.flatten(1), None),
              ("dense 3136 -> 128 + ReLU + dropout", lambda t: F.relu(model.fc1(t)), model.fc1),
              ("dense 128 -> 10", model.fc2, model.fc2)]
    with torch.no_grad():
        for name, step, layer in stages:
            x = step(x)
            rows.append((name, tuple(x.shape[1:]), count_parameters(layer) if layer else 0))
    return rows


def print_parameters(model: CNN, mlp_parameters: int) -> dict:
    rows = layer_table(model)
    print(f"{'stage':<36} {'output shape':<14} {'parameters':>10}")
    for name, shape, params in rows:
        print(f"{name:<36} {shape!s:<14} {params:>10,}")
    conv = count_parameters(model.conv1) + count_parameters(model.conv2)
    total = count_parameters(model)
    print(f"\n{'':<22}{'CNN':>10} {'MLP (784-128-10)':>18}")
    print(f"{'all parameters':<22}{total:>10,} {mlp_parameters:>18,}")
    print(f"{'convolutional layers':<22}{conv:>10,}")
    print(f"{'dense 3136 -> 128':<22}{count_parameters(model.fc1):>10,}")
    print(f"the CNN has {total / mlp_parameters:.1f}x the MLP's parameters, not fewer: its two convolutional "
          f"layers need only {conv:,} (each 3x3 filter is reused at every position),\nbut flattening "
          f"64 maps of 7x7 gives 3,136 numbers, and the dense layer after them holds "
          f"{count_parameters(model.fc1) / total:.0%} of all parameters.")
    return {"total": total, "conv": conv, "fc1": count_parameters(model.fc1)}


# --- What the first layer learned -----------------------------------------------------------
EDGE_TEMPLATES = {  # 3x3 patterns each filter is compared with (sign ignored)
    "vertical edge": [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
    "horizontal edge": [[-1, -2, -1], [0, 0, 0], [1, 2, 1]],
    "diagonal edge /": [[0, 1, 2], [-1, 0, 1], [-2, -1, 0]],
    "diagonal edge \\": [[2, 1, 0], [1, 0, -1], [0, -1, -2]],
    "spot (centre vs surround)": [[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]],
    "brightness (blob)": [[1, 1, 1], [1, 1, 1], [1, 1, 1]],
}


def describe_filters(weights: torch.Tensor) -> list[tuple[str, float]]:
    """For each (1, 3, 3) filter: the template it resembles most, and how closely (|cosine|)."""
    templates = torch.tensor(list(EDGE_TEMPLATES.values()), dtype=torch.float32).flatten(1)
    templates = templates / templates.norm(dim=1, keepdim=True)
    filters = weights.flatten(1)
    similarity = (F.normalize(filters, dim=1) @ templates.T).abs()  # (32, 6)
    best = similarity.max(1)
    names = list(EDGE_TEMPLATES)
    return [(names[i], s) for i, s in zip(best.indices.tolist(), best.values.tolist())]


def plot_filters(weights: torch.Tensor, descriptions=None):
    """The first layer's filters as 3x3 images: red weights add brightness, blue subtract it."""
    n = len(weights)
    cols = 8
    fig, axes = plt.subplots((n + cols - 1) // cols, cols, figsize=(cols * 1.6, (n // cols) * 1.9))
    limit = weights.abs().max().item()
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(weights[i, 0].cpu().numpy(), cmap="bwr", vmin=-limit, vmax=limit)
            if descriptions:
                ax.set_title(f"{i}: {descriptions[i][0]}", fontsize=6.5)
    title = "First-layer filters (red = positive weight, blue = negative)"
    if descriptions:
        edges = sum("edge" in kind for kind, _ in descriptions)
        title += f": {edges} of {n} look most like an edge detector"
    fig.suptitle(title)
    return fig


def plot_feature_maps(image: torch.Tensor, maps: torch.Tensor, title: str, cols: int = 8):
    """One image and what each filter of a layer responds to in it (brighter = stronger).

    The (n, h, w) maps are tiled into one mosaic, each scaled to its own maximum.
    """
    n, h, w = maps.shape
    rows, gap = -(-n // cols), max(1, h // 14)
    scaled = (maps / maps.flatten(1).amax(1).clamp_min(1e-8)[:, None, None]).cpu()  # each map in 0-1
    tiles = torch.full((rows * cols, h + gap, w + gap), float("nan"))  # NaN: the gaps between maps
    tiles[:n, :h, :w] = scaled
    mosaic = tiles.reshape(rows, cols, h + gap, w + gap).permute(0, 2, 1, 3).reshape(rows * (h + gap), -1)
    fig, (left, right) = plt.subplots(1, 2, figsize=(cols * 1.25 + 1.5, rows * 1.3),
                                      gridspec_kw={"width_ratios": [1, cols]})
    left.imshow(image.squeeze().cpu().numpy(), cmap="gray")
    left.set_title("input", fontsize=9)
    right.imshow(mosaic.numpy(), cmap=plt.get_cmap("viridis").with_extremes(bad="white"))
    for i in range(n):
        right.text((i % cols) * (w + gap), (i // cols) * (h + gap), str(i), color="white", fontsize=6, va="top")
    for ax in (left, right):
        ax.axis("off")
    fig.suptitle(title)
    return fig


# --- Comparison with the simple network -------------------------------------------------------
def load_mlp_summary(models_dir: Path, data):
    """Test accuracy, parameters and training time of models/mlp.pt, or None when it is missing."""
    path = Path(models_dir) / MLP_CHECKPOINT
    if not path.exists():
        print(f"{missing_model_message(path, '03_train_model.py')} to compare with the simple network; "
              "carrying on with the CNN alone")
        return None
    model, checkpoint = load_model(path, "03_train_model.py")
    model = model.to(data.test[1].device)
    _, accuracy = evaluate(model, *data.test)
    return {"test_acc": accuracy, "parameters": count_parameters(model),
            "train_seconds": checkpoint["train_seconds"]}


def plot_comparison(rows: dict):
    names = list(rows)
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.6))
    measures = [("test accuracy (%)", lambda r: r["test_acc"] * 100, "{:.2f}"),
                ("test errors (of 10,000)", lambda r: round((1 - r["test_acc"]) * 10_000), "{:.0f}"),
                ("parameters", lambda r: r["parameters"], "{:,.0f}"),
                ("training seconds", lambda r: r["train_seconds"], "{:.0f}")]
    for ax, (label, get, fmt) in zip(axes, measures):
        values = [get(rows[name]) for name in names]
        bars = ax.bar(names, values, color=["tab:orange", "tab:blue"][: len(names)])
        ax.bar_label(bars, labels=[fmt.format(v) for v in values], fontsize=9)
        ax.set_title(label)
        ax.margins(y=0.15)
    axes[0].set_ylim(min(r["test_acc"] for r in rows.values()) * 100 - 1, 100)
    fig.suptitle("Simple network (MLP) against the CNN, on the same 10,000 test images", y=1.04)
    return fig


# --- The story --------------------------------------------------------------------------------
def train_and_report(settings: CNNSettings, data, device, precision):
    """Train the CNN with Phase 3's loop and judge it once on the test set."""
    print(f"\n== Training: {settings.epochs} epochs, batch {settings.batch_size}, Adam with a one-cycle schedule "
          f"peaking at {settings.learning_rate:g} ==")
    run = train_cnn(settings, data, device, precision)
    run.test_loss, run.test_acc = evaluate(run.model, *data.test)
    seconds = run.history.train_seconds
    print(f"\ntest accuracy {run.test_acc:.2%} ({round((1 - run.test_acc) * len(data.test[1]))} of "
          f"{len(data.test[1]):,} wrong) after {seconds:.1f} s of training "
          f"({seconds / max(run.history.epochs_run, 1):.1f} s per epoch)")
    return run


def compare_with_mlp(run, parameters: dict, data, models_dir: Path) -> dict:
    """Key question 1: the CNN against the simple network, on the same test images."""
    print("\n== Compared with the simple network ==")
    rows = {"CNN": {"test_acc": run.test_acc, "parameters": parameters["total"],
                    "train_seconds": run.history.train_seconds}}
    mlp = load_mlp_summary(models_dir, data)
    if mlp:
        rows = {"MLP": mlp, **rows}
    print(f"{'':<5} {'test acc':>8} {'errors':>7} {'parameters':>11} {'train s':>8}")
    for name, row in rows.items():
        print(f"{name:<5} {row['test_acc']:>8.2%} {round((1 - row['test_acc']) * 10_000):>7} "
              f"{row['parameters']:>11,} {row['train_seconds']:>8.1f}")
    if mlp:
        print(f"the CNN makes {(1 - mlp['test_acc']) / max(1 - run.test_acc, 1e-4):.1f}x fewer mistakes")
    return rows


def show_filters(model: CNN) -> tuple[torch.Tensor, list]:
    """Key question 3: what the first layer's filters resemble."""
    print("\n== What the first layer's filters detect ==")
    weights = model.conv1.weight.detach().float().cpu()  # (32, 1, 3, 3)
    descriptions = describe_filters(weights)
    kinds = Counter(kind for kind, _ in descriptions)
    print("closest classic pattern for each of the 32 filters: "
          + ", ".join(f"{kind} {count}" for kind, count in kinds.most_common()))
    print("what to look for: a filter with red on one side and blue on the other responds where "
          "brightness changes in that direction (an edge);\nin the feature maps, each bright area shows where "
          "in the digit that filter fired. The second layer combines edges into strokes, curves and corners.")
    return weights, descriptions


def main(settings: CNNSettings | None = None, feature_map_digit: int = FEATURE_MAP_DIGIT, out_dir: Path = VIS_DIR,
         models_dir: Path = MODELS_DIR, data_dir: Path = DATA_DIR) -> dict:
    settings = settings or settings_from_knobs()
    device, precision, data = start_training(models_dir, out_dir, data_dir)

    print("\n== The CNN, layer by layer ==")
    parameters = print_parameters(CNN(settings.dropout), count_parameters(SimpleNN()))
    run = train_and_report(settings, data, device, precision)
    path = save_run(run, data, Path(models_dir) / CHECKPOINT, "04_improved_model.py")
    if path:
        print(f"saved {shown(path)}")
    rows = compare_with_mlp(run, parameters, data, models_dir)
    weights, descriptions = show_filters(run.model)
    image = data.test[0][feature_map_digit:feature_map_digit + 1]
    first, second = run.model.feature_maps(image)
    label = data.test[1][feature_map_digit].item()

    print("\n== Figures ==")
    written = [
        save_figure(plot_curves(run.history, f"CNN: test accuracy {run.test_acc:.2%}"), out_dir,
                    "04_training_curves.png"),
        save_figure(plot_filters(weights, descriptions), out_dir, "04_filters.png"),
        save_figure(plot_feature_maps(image[0], first[0], f"First layer: 32 feature maps (28x28) of a {label}"),
                    out_dir, "04_feature_maps_conv1.png"),
        save_figure(plot_feature_maps(image[0], second[0], f"Second layer: 64 feature maps (14x14) of a {label}"),
                    out_dir, "04_feature_maps_conv2.png"),
        save_figure(plot_comparison(rows), out_dir, "04_mlp_vs_cnn.png"),
    ]
    print_best_runs(models_dir)
    print("\nNext: python 05_understand_model.py")
    return {"run": run, "model": run.model, "history": run.history, "test_acc": run.test_acc,
            "test_loss": run.test_loss, "checkpoint": path, "parameters": parameters, "comparison": rows,
            "figures": written, "precision": precision}


if __name__ == "__main__":
    with friendly_errors():
        main()
