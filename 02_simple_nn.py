"""Phase 2: your first neural network, before it has learned anything.

Builds the plan's network, 784 inputs -> 128 hidden neurons (ReLU) -> 10 outputs, and
takes it apart: what each layer does to a real batch, where its 101,770 parameters are,
every value of a forward pass through it for one image,
why an untrained network's guesses sit near 10%, how softmax turns scores into
probabilities (the plan's worked example, computed), what temperature does, how the
activation functions and their gradients look, and why two layers without an activation
between them are no better than one.

The network itself lives in mnist_common/networks.py (class SimpleNN), because Phase 3
trains it and later phases compare with it: read it there, it is twenty lines.

Run:     python 02_simple_nn.py
Writes:  visualizations/02_*.png (listed at the end)
Next:    python 03_train_model.py (trains this very network)
"""

from itertools import pairwise
from pathlib import Path

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from matplotlib.patches import Patch
from torch import nn

from mnist_common import (
    ACTIVATIONS,
    DATA_DIR,
    IMAGE_PIXELS,
    NUM_CLASSES,
    VIS_DIR,
    SimpleNN,
    check_knob,
    count_parameters,
    ensure_writable,
    friendly_errors,
    is_list_of,
    is_number,
    is_whole,
    load_mnist,
    parse_no_options,
    save_figure,
    say,
    set_seed,
)

# --- Things to explore (edit and re-run) ---------------------------------------------
HIDDEN_SIZES = [128]  # neurons per hidden layer; try [64], [512, 256], [256, 128, 64]
ACTIVATION = "relu"  # "relu", "leaky_relu", "tanh", "sigmoid" or "none"
SEED = 0  # which random starting weights and which test digit (any integer)
PLAN_LOGITS = [0.5, 2.0, 0.3, 0.1, 0.2, 0.4, 0.2, 3.5, 0.6, 0.3]  # the plan's softmax example
SCORES = [2.0, 3.5, 1.0]  # the plan's "normalization versus softmax" example
TEMPERATURES = [0.5, 1.0, 2.0, 5.0]  # softmax temperatures to compare (try 0.1 or 20)
RELU_EXAMPLES = [5.0, -3.0, 0.5, -0.1]  # the plan's ReLU examples
SHOW_HIDDEN = 8  # how many hidden neurons' values to print in the forward pass (4-16)


# --- Looking inside ----------------------------------------------------------------------
def print_layers(model: SimpleNN, batch: torch.Tensor) -> None:
    """Each layer's output shape for a real batch, and its parameters."""
    print(f"{'layer':<34} {'output shape':<14} {'weights':>9} {'biases':>7} {'total':>9}")
    x = batch.flatten(1)
    print(f"{'input, flattened':<34} {tuple(x.shape)!s:<14}")
    for layer in model.layers:
        x = layer(x)
        weights = layer.weight.numel() if getattr(layer, "weight", None) is not None else 0
        biases = layer.bias.numel() if getattr(layer, "bias", None) is not None else 0
        name = (f"Linear {layer.in_features} -> {layer.out_features}" if isinstance(layer, nn.Linear)
                else type(layer).__name__)
        print(f"{name:<34} {tuple(x.shape)!s:<14} {weights:>9,} {biases:>7,} {weights + biases:>9,}")
    sizes = [IMAGE_PIXELS, *model.arch["hidden_sizes"], NUM_CLASSES]
    by_hand = " + ".join(f"({a}x{b} + {b})" for a, b in pairwise(sizes))
    print(f"total parameters: {count_parameters(model):,} = {by_hand}")


@torch.no_grad()
def forward_pass(model: SimpleNN, image: torch.Tensor) -> dict:
    """Every intermediate value for one image (1, 1, 28, 28): the layers' maths, step by step."""
    x = image.flatten(1)  # (1, 784)
    values = {"input": x[0]}
    for i, layer in enumerate(model.layers):
        x = layer(x)
        values[f"{i}: {type(layer).__name__}"] = x[0]
    values["softmax"] = torch.softmax(x[0], 0)  # (10,) probabilities
    return values


def softmax_steps(logits: list[float]) -> dict:
    """The plan's three steps, with torch: exponentiate, sum, divide."""
    z = torch.tensor(logits, dtype=torch.float64)
    exps = z.exp()
    return {"logits": z, "exps": exps, "sum": exps.sum().item(), "probs": exps / exps.sum()}


def softmax_with_temperature(logits: list[float], temperature: float) -> torch.Tensor:
    """Divide the scores by T before softmax: T < 1 sharpens, T > 1 flattens."""
    return torch.softmax(torch.tensor(logits, dtype=torch.float64) / temperature, dim=0)


def linear_collapse(seed: int = 0, batch: torch.Tensor | None = None) -> dict:
    """Two Linear layers with nothing between them equal one Linear layer.

    y = W2 (W1 x + b1) + b2 = (W2 W1) x + (W2 b1 + b2): build that merged layer and compare.
    """
    torch.manual_seed(seed)
    first, second = nn.Linear(IMAGE_PIXELS, 128), nn.Linear(128, NUM_CLASSES)
    merged = nn.Linear(IMAGE_PIXELS, NUM_CLASSES)
    with torch.no_grad():
        merged.weight.copy_(second.weight @ first.weight)  # (10, 128) @ (128, 784) = (10, 784)
        merged.bias.copy_(second.weight @ first.bias + second.bias)  # (10,)
        x = batch.flatten(1) if batch is not None else torch.randn(64, IMAGE_PIXELS)
        two_layers, one_layer = second(first(x)), merged(x)
    return {"max_difference": (two_layers - one_layer).abs().max().item(),
            "two_layer_parameters": count_parameters(first) + count_parameters(second),
            "merged_parameters": count_parameters(merged)}


def activation_curves(x: torch.Tensor) -> dict:
    """Each activation's value and gradient (by autograd) at the points x."""
    curves = {}
    for name in ("relu", "leaky_relu", "sigmoid", "tanh"):
        point = x.clone().requires_grad_(True)
        fn = nn.LeakyReLU(0.1) if name == "leaky_relu" else ACTIVATIONS[name]()
        y = fn(point)
        y.sum().backward()
        curves[name] = (y.detach(), point.grad)
    return curves


# --- Pictures ---------------------------------------------------------------------------
def plot_untrained_prediction(image, label, probs, classes):
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8), gridspec_kw={"width_ratios": [1, 2]})
    left.imshow(image.squeeze().cpu().numpy(), cmap="gray")
    left.set_title(f"a test image (label {classes[label]})")
    left.axis("off")
    guess = probs.argmax().item()
    colours = ["tab:green" if d == label else "lightgray" for d in range(10)]  # the true label stands out
    bars = right.bar(range(10), probs.numpy() * 100, color=colours, edgecolor="black", linewidth=0.5)
    bars[guess].set_hatch("//")  # the guess is hatched: the tallest bar, right or wrong
    bars[guess].set_edgecolor("tab:red")
    bars[guess].set_linewidth(2)
    right.bar_label(bars, fmt="%.1f", fontsize=8)
    right.annotate(f"guess: {classes[guess]}", (guess, probs[guess].item() * 100), xytext=(0, 14),
                   textcoords="offset points", ha="center", fontsize=9, color="tab:red", fontweight="bold")
    chance = right.axhline(10, color="gray", linestyle=":", label="10%: a blind guess")
    keys = [Patch(facecolor="tab:green", edgecolor="black", label=f"true label ({classes[label]})"),
            Patch(facecolor="lightgray", hatch="//", edgecolor="tab:red", linewidth=2,
                  label=f"the network's guess ({classes[guess]}, the highest bar)"), chance]
    right.set_xticks(range(10), classes, rotation=0 if len(classes[0]) == 1 else 30)
    right.set_xlabel("label")
    right.set_ylabel("probability (%)")
    right.margins(y=0.15)  # room for the guess's note above the bars
    right.set_title(f"untrained network: guesses {classes[guess]}, but every label gets about 10%")
    right.legend(handles=keys, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3)  # off the bars
    return fig


def plot_softmax(steps, temperatures, logits):
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.3))
    bars = axes[0].bar(range(10), steps["logits"].numpy(), color="tab:gray")
    axes[0].bar_label(bars, fmt="%.1f", fontsize=8)
    axes[0].set_ylabel("score (logit)")
    axes[0].set_title("the plan's logits (raw scores)")
    bars = axes[1].bar(range(10), steps["probs"].numpy(), color="tab:blue")
    axes[1].bar_label(bars, fmt="%.3f", fontsize=8)
    axes[1].set_ylabel("probability")
    axes[1].set_title(f'after softmax: "7" gets {steps["probs"][7]:.3f}, all sum to {steps["probs"].sum():.3f}')
    width = 0.8 / len(temperatures)
    for i, t in enumerate(temperatures):
        probs = softmax_with_temperature(logits, t)
        axes[2].bar((torch.arange(10) + (i - (len(temperatures) - 1) / 2) * width).numpy(), probs.numpy(), width,
                    label=f"T = {t:g} ('7' gets {probs[7]:.2f})")
    axes[2].set_ylabel("probability")
    axes[2].set_title("temperature: T < 1 sharpens, T > 1 flattens")
    axes[2].legend(fontsize=8)
    for ax in axes:
        ax.set_xticks(range(10))
        ax.set_xlabel("digit")
        ax.margins(y=0.12)
    return fig


def plot_activations(x, curves):
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 8), sharex=True)
    styles = {"relu": ("ReLU", "tab:blue", "-", 4.5), "leaky_relu": ("Leaky ReLU (slope 0.1, to be visible)",
                                                                   "tab:orange", "--", 2),
              "sigmoid": ("sigmoid", "tab:green", "-", 2), "tanh": ("tanh", "tab:red", "-.", 2)}
    for name, (y, grad) in curves.items():
        label, colour, style, width = styles[name]
        top.plot(x.numpy(), y.numpy(), style, color=colour, lw=width, label=label, alpha=0.85)
        bottom.plot(x.numpy(), grad.numpy(), style, color=colour, lw=width, label=label, alpha=0.85)
    top.set_title("activation functions (ReLU drawn thick: under it, Leaky ReLU differs only for x < 0)")
    top.set_ylabel("output")
    bottom.set_title("their gradients: sigmoid's never exceeds 0.25 and vanishes for large |x|")
    bottom.set_ylabel("gradient (slope)")
    bottom.set_xlabel("input x")
    for ax in (top, bottom):
        ax.axhline(0, color="gray", lw=0.5, zorder=0)
        ax.axvline(0, color="gray", lw=0.5, zorder=0)
        ax.grid(alpha=0.3)
    top.legend(loc="upper left")
    bottom.legend(loc="upper left")
    return fig


# --- The story --------------------------------------------------------------------------
def show_network(model: SimpleNN, batch: torch.Tensor) -> None:
    """Key question 1: the layers, their shapes and their parameters."""
    print("\n== The network (mnist_common/networks.py, class SimpleNN) ==")
    print(model)
    print()
    print_layers(model, batch)


def show_forward_pass(model: SimpleNN, image: torch.Tensor, label: int, show: int) -> dict:
    """Forward propagation with real numbers: a few hidden neurons, then the ten scores."""
    values = forward_pass(model, image)
    names = list(values)
    pre, post, scores = values[names[1]], values[names[2]], values[names[-2]]
    print(f"\n== Forward propagation, one test image (label {label}) ==")
    pixels = values["input"]
    say(f"input: 784 normalized pixels, from {pixels.min():.2f} (background) to {pixels.max():.2f} (ink)")
    say(f"hidden layer, weighted sums z = W1 x + b1, shape {tuple(pre.shape)}; the first {show}: "
        + " ".join(f"{v:+.3f}" for v in pre[:show].tolist()))
    say(f"after {names[2].split(': ')[1]}, shape {tuple(post.shape)}; the same {show}: "
        + " ".join(f"{v:+.3f}" for v in post[:show].tolist()))
    silent = (post == 0).float().mean().item()
    say(f"{silent:.0%} of the {len(post)} hidden neurons output exactly 0 for this image "
        "(the plan's \"about half\": ReLU silences every neuron whose sum is negative)")
    say(f"output layer, ten scores = W2 h + b2, shape {tuple(scores.shape)}: "
        + " ".join(f"{v:+.3f}" for v in scores.tolist()))
    say("softmax of the scores: " + " ".join(f"{d}:{p:.3f}" for d, p in enumerate(values["softmax"].tolist())))
    return {"silent_share": silent, "probs": values["softmax"], "pre_activations": pre, "scores": scores}


def show_untrained_accuracy(model: SimpleNN, data, index: int, probs: torch.Tensor) -> float:
    """Key question 2: why an untrained network's answers are random."""
    test_images, test_labels = data.test
    with torch.no_grad():
        accuracy = (model(test_images).argmax(1) == test_labels).float().mean().item()
    print("\n== An untrained prediction ==")
    names = data.classes
    truth, guess = names[test_labels[index].item()], names[probs.argmax().item()]
    say(f"test image #{index} is a {truth}; the network guesses {guess} "
        f"with only {probs.max():.1%}; on all {len(test_labels):,} test images it is right {accuracy:.1%} "
        "of the time (a blind guess: 10%)")
    say("why near 10%: the weights start as small random numbers, so all ten scores are close "
        "to each other, and softmax of nearly equal scores is nearly 1/10 each. Nothing has been learned.")
    return accuracy


def show_softmax() -> tuple[dict, dict]:
    """The plan's worked example, computed, and the plan's second example, corrected."""
    print("\n== Softmax, step by step (the plan's example) ==")
    steps = softmax_steps(PLAN_LOGITS)
    say("step 1, exponentiate: " + ", ".join(f"e^{z:g} = {e:.2f}" for z, e in
                                              zip(PLAN_LOGITS, steps["exps"].tolist())))
    print(f"step 2, sum: {steps['sum']:.2f}")
    say("step 3, divide: " + ", ".join(f"{d}: {p:.3f}" for d, p in enumerate(steps["probs"].tolist())))
    say(f'the "7" gets {steps["probs"][7]:.3f}; they sum to {steps["probs"].sum():.6f}; '
        f'torch.softmax agrees to {(steps["probs"] - torch.softmax(steps["logits"], 0)).abs().max():.1e}')
    plain = torch.tensor(SCORES) / sum(SCORES)
    soft = softmax_steps(SCORES)
    print()
    say(f"scores {SCORES}: dividing by their sum gives [{', '.join(f'{p:.3f}' for p in plain)}]; "
        f"softmax gives [{', '.join(f'{p:.3f}' for p in soft['probs'])}] "
        f"(exponentials sum to {soft['sum']:.2f})")
    say(f"softmax is more decisive: the top score's share grows from {plain[1]:.1%} to {soft['probs'][1]:.1%}."
        f" A score higher by 1 always means e^1 = {torch.e:.2f} times the probability.")
    print("\n== Temperature ==")
    for t in TEMPERATURES:
        p = softmax_with_temperature(PLAN_LOGITS, t)
        say(f"T = {t:<4g} -> '7' gets {p[7]:.3f}, '1' gets {p[1]:.3f}, the other eight share {1 - p[7] - p[1]:.3f}")
    return steps, soft


def show_collapse(seed: int, batch: torch.Tensor) -> dict:
    """Key question 3: without an activation, two layers are one."""
    print("\n== Activation functions ==")
    examples = torch.tensor(RELU_EXAMPLES)
    say("ReLU: " + ", ".join(f"ReLU({x:g}) = {y:g}" for x, y in zip(RELU_EXAMPLES, F.relu(examples).tolist())))
    print("\n== Without an activation, two layers are one ==")
    collapse = linear_collapse(seed, batch)
    say(f"784->128->10 with no activation versus one merged 784->10 layer (W = W2 W1, b = W2 b1 + b2): "
        f"outputs differ by at most {collapse['max_difference']:.1e} (rounding)")
    say(f"so its {collapse['two_layer_parameters']:,} parameters can only do what "
        f"{collapse['merged_parameters']:,} do: a straight-line (linear) classifier. "
        "03_train_model.py measures how well that does: python 03_train_model.py --experiment activation")
    return collapse


def check_knobs() -> None:
    """The constants above, checked before any work (one line naming a bad one)."""
    numbers = "use a list of numbers, such as [0.5, 2.0, 0.3]"
    check_knob("HIDDEN_SIZES", HIDDEN_SIZES, is_list_of(HIDDEN_SIZES, lambda n: is_whole(n, 1)),
               "use a list of whole numbers of at least 1, such as [128] or [512, 256]")
    check_knob("ACTIVATION", ACTIVATION, ACTIVATION in ACTIVATIONS,
               f"choose one of {', '.join(map(repr, ACTIVATIONS))}")
    check_knob("SEED", SEED, is_whole(SEED), "use a whole number")
    check_knob("PLAN_LOGITS", PLAN_LOGITS, is_list_of(PLAN_LOGITS, is_number, at_least=2), numbers)
    check_knob("SCORES", SCORES, is_list_of(SCORES, lambda v: is_number(v, 1e-9), at_least=2),
               "use a list of at least two numbers above 0 (they are divided by their sum)")
    check_knob("TEMPERATURES", TEMPERATURES, is_list_of(TEMPERATURES, lambda t: is_number(t, 1e-3)),
               "use a list of numbers above 0, such as [0.5, 1.0, 2.0]")
    check_knob("RELU_EXAMPLES", RELU_EXAMPLES, is_list_of(RELU_EXAMPLES, is_number), numbers)
    check_knob("SHOW_HIDDEN", SHOW_HIDDEN, is_whole(SHOW_HIDDEN, 1, HIDDEN_SIZES[0]),
               f"use a whole number from 1 to the first hidden layer's size ({HIDDEN_SIZES[0]})")


def main(out_dir: Path = VIS_DIR, data_dir: Path = DATA_DIR, hidden_sizes=HIDDEN_SIZES,
         activation: str = ACTIVATION, seed: int = SEED, show_hidden: int = SHOW_HIDDEN) -> dict:
    ensure_writable(out_dir, "figures")
    generator = set_seed(seed)
    data = load_mnist(data_dir=data_dir)
    model = SimpleNN(hidden_sizes, activation)
    test_images, test_labels = data.test
    show_network(model, test_images[:64])
    index = torch.randint(len(test_labels), (1,), generator=generator).item()
    label = test_labels[index].item()
    forward = show_forward_pass(model, test_images[index:index + 1], label, show_hidden)
    untrained_acc = show_untrained_accuracy(model, data, index, forward["probs"])
    steps, soft = show_softmax()
    collapse = show_collapse(seed, test_images[:64])
    x = torch.linspace(-5, 5, 401)

    print("\n== Figures ==")
    written = [
        save_figure(plot_untrained_prediction(test_images[index], label, forward["probs"], data.classes), out_dir,
                    "02_untrained_prediction.png"),
        save_figure(plot_softmax(steps, TEMPERATURES, PLAN_LOGITS), out_dir, "02_softmax.png"),
        save_figure(plot_activations(x, activation_curves(x)), out_dir, "02_activations.png"),
    ]
    print("\nNext: python 03_train_model.py")
    return {"model": model, "parameters": count_parameters(model), "softmax": steps["probs"],
            "softmax_sum": steps["sum"], "scores_softmax": soft["probs"], "scores_sum": soft["sum"],
            "untrained_accuracy": untrained_acc, "silent_share": forward["silent_share"],
            "example": {"index": index, "label": label, **forward}, "temperatures": {
                t: softmax_with_temperature(PLAN_LOGITS, t) for t in TEMPERATURES},
            "collapse": collapse, "figures": written}


if __name__ == "__main__":
    with friendly_errors():
        parse_no_options(__doc__)
        check_knobs()
        main()
