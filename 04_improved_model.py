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
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from matplotlib.colors import PowerNorm
from matplotlib.ticker import FuncFormatter

from mnist_common import (
    CNN,
    DATA_DIR,
    MODELS_DIR,
    VIS_DIR,
    CNNSettings,
    SimpleNN,
    check_knob,
    check_shifts,
    count_parameters,
    dead_channels,
    evaluate,
    friendly_errors,
    is_whole,
    load_model,
    missing_model_message,
    model_colors,
    parse_no_options,
    plot_curves,
    plural,
    print_best_runs,
    save_figure,
    save_run,
    say,
    shown,
    start_training,
    train_cnn,
)
from mnist_common.robustness import shifted_accuracy

# --- Hyperparameters (edit and re-run) ------------------------------------------------------
EPOCHS = 3  # passes over the training images (2-15); the schedule below spans all of them
BATCH_SIZE = 128  # images per step (64-512)
LEARNING_RATE = 0.005  # the PEAK of the one-cycle schedule, reached 30% of the way in (0.001-0.01)
DROPOUT = 0.25  # share of the 128 dense neurons silenced during training (0.0-0.5)
SEED = 0  # starting weights and batch order (any integer)
FEATURE_MAP_DIGIT = 0  # index of the test image whose feature maps are drawn (0-9999)
SHIFTS = [0, 2, 4, 6]  # pixels to move the test digits by, to test "recognises a 7 anywhere" (0-8)

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
    say(f"the CNN has {total / mlp_parameters:.1f}x the MLP's parameters, not fewer: its two convolutional "
        f"layers need only {conv:,} (each 3x3 filter is reused at every position), but flattening "
        f"64 maps of 7x7 gives 3,136 numbers, and the dense layer after them holds "
        f"{count_parameters(model.fc1) / total:.0%} of all parameters.")
    return {"total": total, "conv": conv, "fc1": count_parameters(model.fc1)}


# --- What the first layer learned -----------------------------------------------------------
TEMPLATES = {  # classic 3x3 patterns, and what a positive and a negative match mean
    "vertical edge": ([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], "bright on the right", "bright on the left"),
    "horizontal edge": ([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], "bright below", "bright above"),
    "diagonal edge /": ([[0, 1, 2], [-1, 0, 1], [-2, -1, 0]], "bright top right", "bright bottom left"),
    "diagonal edge \\": ([[2, 1, 0], [1, 0, -1], [0, -1, -2]], "bright top left", "bright bottom right"),
    "spot": ([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], "bright centre", "dark centre"),
    "blob": ([[1, 1, 1], [1, 1, 1], [1, 1, 1]], "responds to brightness", "responds to darkness"),
}
RANDOM_FILTER_SEEDS = 200  # untrained first layers to compare the trained one with


@dataclass
class FilterMatch:
    """The classic pattern a 3x3 filter resembles most, and how closely."""

    pattern: str  # a key of TEMPLATES
    polarity: str  # which way round: "bright on the right" or its opposite
    similarity: float  # |cosine| between filter and pattern: 1 = the same shape, 0 = nothing alike

    @property
    def is_edge(self) -> bool:
        return "edge" in self.pattern


def describe_filters(weights: torch.Tensor) -> list[FilterMatch]:
    """For each (1, 3, 3) filter: the template it resembles most (by |cosine|), with its sign."""
    templates = F.normalize(torch.tensor([t for t, _, _ in TEMPLATES.values()], dtype=torch.float32).flatten(1), dim=1)
    cosine = F.normalize(weights.flatten(1), dim=1) @ templates.T  # (n, 6), signed
    best = cosine.abs().max(1)
    names = list(TEMPLATES)
    return [FilterMatch(names[i], TEMPLATES[names[i]][1 if cosine[f, i] > 0 else 2], s)
            for f, (i, s) in enumerate(zip(best.indices.tolist(), best.values.tolist()))]


def filter_summary(matches: list[FilterMatch]) -> dict:
    return {"edges": sum(m.is_edge for m in matches),
            "similarity": sum(m.similarity for m in matches) / len(matches)}


def random_filter_baseline(seeds: int = RANDOM_FILTER_SEEDS) -> dict:
    """The same description applied to untrained first layers: what the labels give by chance."""
    edges, similarity = [], []
    generator = torch.Generator()
    for seed in range(seeds):
        generator.manual_seed(seed)
        bound = 1 / 3  # PyTorch's default for a 3x3 filter over one channel: uniform in +-1/sqrt(9)
        weights = (torch.rand(32, 1, 3, 3, generator=generator) * 2 - 1) * bound
        summary = filter_summary(describe_filters(weights))
        edges.append(summary["edges"])
        similarity.append(summary["similarity"])
    return {"edges": edges, "edges_mean": sum(edges) / seeds, "similarity_mean": sum(similarity) / seeds,
            "similarity_max": max(similarity)}


def plot_filters(weights: torch.Tensor, matches: list[FilterMatch], chance: dict | None = None,
                 named_from: float = 0.5):
    """The first layer's filters as 3x3 images: red weights add brightness, blue subtract it.

    A filter is named after its closest pattern only from a similarity of `named_from`: below it the
    resemblance is no more than random filters show. `chance` (random_filter_baseline's record) puts
    the count of edges beside what untrained filters reach, so the title cannot be read as a discovery.
    """
    n, cols = len(weights), 8
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 2.0, rows * 2.6 + 0.8), layout="constrained")
    limit = weights.abs().max().item()
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            image = ax.imshow(weights[i, 0].cpu().numpy(), cmap="bwr", vmin=-limit, vmax=limit)
            m = matches[i]
            if m.similarity >= named_from:
                ax.set_title(f"{i}: {m.pattern}\n{m.polarity}\nsimilarity {m.similarity:.2f}", fontsize=9,
                             color="black" if round(m.similarity, 2) >= 0.75 else "dimgray")  # as printed
            else:
                ax.set_title(f"{i}: no clear pattern\n(closest: {m.pattern})\nsimilarity {m.similarity:.2f}",
                             fontsize=9, color="darkgray")
    fig.colorbar(image, ax=axes, shrink=0.6, pad=0.01,
                 label="weight (red: ink here raises the response; blue: lowers it)")
    summary = filter_summary(matches)
    unnamed = sum(m.similarity < named_from for m in matches)
    if chance:
        count = (f"{summary['edges']} of {n} are closest to an edge, against {chance['edges_mean']:.1f} for random "
                 f"(untrained) filters; mean similarity {summary['similarity']:.2f}, against "
                 f"{chance['similarity_mean']:.2f} for random ones")
    else:
        count = (f"mean similarity {summary['similarity']:.2f} (four of the six patterns are edges, so even "
                 "random filters are often closest to one)")
    fig.suptitle(f"First-layer filters, one colour scale for all, with the classic pattern each resembles most.\n"
                 f"Similarity: how alike the shapes are, from 0 to 1 (the cosine, sign ignored); grey below 0.75, "
                 f"unnamed below {named_from:g} ({unnamed} of {n}).\n{count}", fontsize=11)
    return fig


def plot_feature_maps(image: torch.Tensor, maps: torch.Tensor, title: str, dead: torch.Tensor, cols: int = 8,
                      note: str = ""):
    """One image and what each filter of a layer responds to in it, all on ONE brightness scale.

    The (n, h, w) maps are tiled into one mosaic; a map that is zero everywhere is marked
    "silent" (ReLU cut every value for this digit), and a channel that (almost) never fires on
    any test digit "dead". The thin frame some first-layer maps show is the zero padding around
    the image: after normalization 0 is brighter than the black background (-0.42), so a filter
    sees an edge there.
    """
    n, h, w = maps.shape
    rows, gap = -(-n // cols), max(1, h // 14)
    tiles = torch.full((rows * cols, h + gap, w + gap), float("nan"))  # NaN: the gaps between maps
    tiles[:n, :h, :w] = maps.cpu()
    mosaic = tiles.reshape(rows, cols, h + gap, w + gap).permute(0, 2, 1, 3).reshape(rows * (h + gap), -1)
    fig, (left, right) = plt.subplots(1, 2, figsize=(cols * 1.25 + 3, rows * 1.3 + 0.6),
                                      gridspec_kw={"width_ratios": [1, cols]}, layout="constrained")
    left.imshow(image.squeeze().cpu().numpy(), cmap="gray")
    left.set_title("input", fontsize=9)
    # one scale for every map, square-root spaced so that weak responses stay visible beside strong ones
    scale = PowerNorm(gamma=0.5, vmin=0, vmax=max(maps.max().item(), 1e-8))
    shown_maps = right.imshow(mosaic.numpy(), cmap=plt.get_cmap("viridis").with_extremes(bad="white"), norm=scale)
    silent = maps.flatten(1).amax(1) <= 0
    for i in range(n):
        y, x = (i // cols) * (h + gap), (i % cols) * (w + gap)
        right.text(x, y, str(i), color="white", fontsize=6, va="top")
        if silent[i] or dead[i]:
            right.text(x + w / 2, y + h / 2, "dead" if dead[i] else "silent", color="white", fontsize=7,
                       ha="center", va="center")
    for ax in (left, right):
        ax.axis("off")
    fig.colorbar(shown_maps, ax=right, shrink=0.8, label="activation after ReLU, one scale for all maps\n(square-root "
                 "spaced: a quarter of the top sits halfway up)")
    only_silent = int((silent & ~dead).sum())  # a dead channel is silent too, but is counted as dead
    detail = (f"{only_silent} of {n} silent for this digit" if only_silent
              else "every map of a live (not dead) channel responds somewhere")
    if dead.any():
        detail += f"; {plural(int(dead.sum()), 'dead channel')} (almost never fires on 1,000 test digits)"
    fig.suptitle(f"{title}: {detail}" + (f"\n{note}" if note else ""), fontsize=10)
    return fig


@torch.no_grad()
def dead_in_each_layer(model: CNN, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Channels of each layer that (almost) never fire on these images (mnist_common's dead_channels)."""
    first, second = model.feature_maps(images)
    return dead_channels(first.mean((0, 2, 3))), dead_channels(second.mean((0, 2, 3)))


# --- Comparison with the simple network -------------------------------------------------------
def load_mlp(models_dir: Path, data):
    """models/mlp.pt on the data's device, with its checkpoint, or (None, None) when it is missing."""
    path = Path(models_dir) / MLP_CHECKPOINT
    if not path.exists():
        say(f"{missing_model_message(path, '03_train_model.py')} to compare with the simple network; "
            "carrying on with the CNN alone")
        return None, None
    model, checkpoint = load_model(path, "03_train_model.py")
    return model.to(data.test[1].device), checkpoint


def load_mlp_summary(models_dir: Path, data):
    """Test accuracy, parameters, training time and recipe of models/mlp.pt, or None when it is missing."""
    model, checkpoint = load_mlp(models_dir, data)
    if model is None:
        return None
    _, accuracy = evaluate(model, *data.test)
    return {"test_acc": accuracy, "parameters": count_parameters(model), "train_seconds": checkpoint["train_seconds"],
            "recipe": recipe_of(checkpoint["settings"]), "model": model}


def recipe_of(settings: dict) -> str:
    """How a model was trained, in a few words (from its checkpoint's settings)."""
    if "optimizer" in settings:  # 03's MLP: a constant learning rate
        schedule = f"{settings['optimizer']} at {settings['learning_rate']:g}"
    else:  # 04's CNN: Adam with a one-cycle schedule
        schedule = f"adam, one-cycle peaking at {settings['learning_rate']:g}"
    return f"{settings['epochs']} epochs, batch {settings['batch_size']}, {schedule}"


def plot_comparison(rows: dict):
    names = list(rows)
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.3), layout="constrained")  # room for the tick labels
    measures = [("test errors (of 10,000): fewer is better", lambda r: round((1 - r["test_acc"]) * 10_000), "{:.0f}"),
                ("parameters", lambda r: r["parameters"], "{:,.0f}"),
                ("training seconds", lambda r: r["train_seconds"], "{:.0f}")]
    for ax, (label, get, fmt) in zip(axes, measures):
        values = [get(rows[name]) for name in names]
        bars = ax.bar(names, values, color=[model_colors(names)[name] for name in names])
        ax.bar_label(bars, labels=[fmt.format(v) for v in values], fontsize=9)
        ax.set_title(label)
        ax.set_ylim(0, max(values) * 1.18)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    recipes = "; ".join(f"{name}: {row['recipe']}" for name, row in rows.items())
    fig.suptitle(f"Simple network (MLP) against the CNN, on the same 10,000 test images\n({recipes})")
    return fig


def plot_shifts(shifts: list[int], table: dict):
    fig, ax = plt.subplots(figsize=(7, 4))
    colours = model_colors(table)
    for name, accuracies in table.items():
        ax.plot(shifts, [a * 100 for a in accuracies], "o-", color=colours[name], label=name)
    ax.set_xticks(shifts)
    ax.set_xlabel("pixels the test digits are moved (up, down, left and right, averaged)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 105)  # headroom: a marker at 99% is drawn whole, not cut by the frame
    ax.set_yticks(range(0, 101, 20))
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("Does the network recognise a digit that is not centred?")
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


def compare_with_mlp(run, parameters: dict, mlp: dict | None) -> dict:
    """Key question 1: the CNN against the simple network (load_mlp_summary's record), on the same test images."""
    print("\n== Compared with the simple network ==")
    rows = {"CNN": {"test_acc": run.test_acc, "parameters": parameters["total"],
                    "train_seconds": run.history.train_seconds, "recipe": recipe_of(run.settings.as_record()),
                    "model": run.model}}
    if mlp:
        rows = {"MLP": mlp, **rows}
    print(f"{'':<5} {'test acc':>8} {'errors':>7} {'parameters':>11} {'train s':>8}  recipe")
    for name, row in rows.items():
        say(f"{name:<5} {row['test_acc']:>8.2%} {round((1 - row['test_acc']) * 10_000):>7} "
            f"{row['parameters']:>11,} {row['train_seconds']:>8.1f}  {row['recipe']}")
    if mlp:
        say(f"the CNN makes {(1 - mlp['test_acc']) / max(1 - run.test_acc, 1e-4):.1f}x fewer mistakes. The recipes "
            "differ (each is its script's default), so this compares the two scripts as shipped, not the two "
            "architectures under one recipe")
    return rows


def shift_test(rows: dict, data, shifts: list[int]) -> dict:
    """The plan says a CNN "recognizes a 7 anywhere": move the test digits and measure it."""
    print("\n== Does the CNN recognise a digit anywhere? ==")
    background = -data.mean / data.std  # a black pixel, normalized
    table = {name: [shifted_accuracy(row["model"], *data.test, px, background) for px in shifts]
             for name, row in rows.items()}
    print(f"{'shifted by':>10}  " + "  ".join(f"{px:>4} px" for px in shifts))
    for name, accuracies in table.items():
        print(f"{name:>10}  " + "  ".join(f"{a:>6.1%}" for a in accuracies))
    say("not anywhere: convolutions reuse each filter at every position, and pooling forgives a pixel or two, "
        "but the dense layer after them learned where things sit in a centred digit. Training on moved digits "
        "(06_beyond_99.py) is what teaches a network to read them")
    return table


def show_filters(model: CNN) -> tuple[torch.Tensor, list[FilterMatch], dict]:
    """Key question 3: what the first layer's filters resemble, against untrained filters."""
    print("\n== What the first layer's filters detect ==")
    weights = model.conv1.weight.detach().float().cpu()  # (32, 1, 3, 3)
    matches = describe_filters(weights)
    kinds = Counter(m.pattern for m in matches)
    say("closest classic pattern for each of the 32 filters: "
        + ", ".join(f"{kind} {count}" for kind, count in kinds.most_common()))
    trained, chance = filter_summary(matches), random_filter_baseline()
    reach = sum(e >= trained["edges"] for e in chance["edges"]) / len(chance["edges"])
    say(f"trained: {trained['edges']} of 32 closest to an edge, mean similarity {trained['similarity']:.2f}. "
        f"Untrained (random) filters, {RANDOM_FILTER_SEEDS} draws: {chance['edges_mean']:.1f} edges on average "
        f"(from {min(chance['edges'])} to {max(chance['edges'])}; {reach:.0%} of draws reach {trained['edges']}), "
        f"mean similarity {chance['similarity_mean']:.2f}")
    say(f"what the evidence supports: training leans the filters towards edges ({trained['edges']} against "
        f"{chance['edges_mean']:.1f} by chance; four of the six patterns are edges, so random filters are often "
        f"called edges too), but their shapes match the classic patterns only a little more closely than random "
        f"ones do ({trained['similarity']:.2f} against {chance['similarity_mean']:.2f}): they are rough, mixed "
        "detectors, not clean textbook edges. The feature maps show best what each one does.")
    say("what to look for: a filter with red on one side and blue on the other responds where brightness "
        "changes in that direction (an edge); in the feature maps, each bright area shows where in the digit that "
        "filter fired. The second layer combines edges into strokes, curves and corners.")
    return weights, matches, {"trained": trained, "random": chance}


def check_knobs() -> None:
    """The constants above, checked before any work (one line naming a bad one)."""
    settings_from_knobs()  # the training knobs, checked by their settings record
    check_knob("FEATURE_MAP_DIGIT", FEATURE_MAP_DIGIT, is_whole(FEATURE_MAP_DIGIT, 0, 9_999),
               "use a whole number from 0 to 9,999 (a test image)")
    check_shifts(SHIFTS)


def main(settings: CNNSettings | None = None, feature_map_digit: int = FEATURE_MAP_DIGIT,
         shifts: list[int] = SHIFTS, out_dir: Path = VIS_DIR, models_dir: Path = MODELS_DIR,
         data_dir: Path = DATA_DIR) -> dict:
    settings = settings or settings_from_knobs()
    device, precision, data = start_training(models_dir, out_dir, data_dir)
    mlp = load_mlp_summary(models_dir, data)  # before training: a broken mlp.pt should not cost a minute

    print("\n== The CNN, layer by layer ==")
    parameters = print_parameters(CNN(settings.dropout), count_parameters(SimpleNN()))
    run = train_and_report(settings, data, device, precision)
    path = save_run(run, data, Path(models_dir) / CHECKPOINT, "04_improved_model.py")
    if path:
        print(f"saved {shown(path)}")
    rows = compare_with_mlp(run, parameters, mlp)
    shifted = shift_test(rows, data, shifts)
    weights, matches, filters = show_filters(run.model)
    print("\n== Figures ==")
    written = [
        save_figure(plot_curves(run.history, f"CNN: test accuracy {run.test_acc:.2%}", "CNN"), out_dir,
                    "04_training_curves.png"),
        save_figure(plot_comparison(rows), out_dir, "04_mlp_vs_cnn.png"),
        save_figure(plot_shifts(shifts, shifted), out_dir, "04_shifted_digits.png"),
        save_figure(plot_filters(weights, matches, chance=filters["random"]), out_dir, "04_filters.png"),
        *draw_feature_maps(run.model, data, feature_map_digit, out_dir),
    ]
    print_best_runs(models_dir, "04_improved_model.py", settings.as_record())
    print("\nNext: python 05_understand_model.py")
    return {"run": run, "model": run.model, "history": run.history, "test_acc": run.test_acc,
            "test_loss": run.test_loss, "checkpoint": path, "parameters": parameters,
            "comparison": {name: {k: v for k, v in row.items() if k != "model"} for name, row in rows.items()},
            "shifted": shifted, "filters": filters, "figures": written, "precision": precision}


def draw_feature_maps(model: CNN, data, index: int, out_dir: Path) -> list[Path]:
    """Both layers' feature maps for one test digit, with silent and dead channels marked."""
    image, label = data.test[0][index:index + 1], data.classes[data.test[1][index].item()]
    first, second = model.feature_maps(image)
    dead1, dead2 = dead_in_each_layer(model, data.test[0][:1000])
    padding = (f"the frame around many maps: the zero padding outside the image is brighter than the normalized "
               f"paper ({-data.mean / data.std:.2f}), so edge filters see a faint line all round")
    return [save_figure(plot_feature_maps(image[0], first[0], f"First layer: 32 feature maps (28x28) of a {label}",
                                          dead1.cpu(), note=padding), out_dir, "04_feature_maps_conv1.png"),
            save_figure(plot_feature_maps(image[0], second[0], f"Second layer: 64 feature maps (14x14) of a {label}",
                                          dead2.cpu()), out_dir, "04_feature_maps_conv2.png")]


if __name__ == "__main__":
    with friendly_errors():
        parse_no_options(__doc__)
        check_knobs()
        main()
