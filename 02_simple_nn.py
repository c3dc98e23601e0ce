"""Phase 2: your first neural network, before it has learned anything.

Builds the plan's network, 784 inputs -> 128 hidden neurons (ReLU) -> 10 outputs, and
takes it apart: what each layer does to a real batch, where its 101,770 parameters are,
why an untrained network's guesses sit near 10%, how softmax turns scores into
probabilities (the plan's worked example, computed), what temperature does, how the
activation functions and their gradients look, and why two layers without an activation
between them are no better than one.

Run:     python 02_simple_nn.py
Writes:  visualizations/02_*.png (listed at the end)
Next:    python 03_train_model.py (trains this very network)
"""

from pathlib import Path

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

from mnist_common import (
    DATA_DIR,
    VIS_DIR,
    LearnerError,
    count_parameters,
    friendly_errors,
    load_mnist,
    save_figure,
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

IMAGE_PIXELS = 28 * 28  # one input per pixel
NUM_CLASSES = 10  # one output score per digit

# ReLU keeps positive values and zeroes the rest; the others are its classic rivals.
# "none" leaves the layers linear, which (see linear_collapse below) makes them one layer.
ACTIVATIONS = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,  # like ReLU, but lets 1% of a negative value through
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "none": nn.Identity,
}


class SimpleNN(nn.Module):
    """A fully-connected network: 784 pixels -> hidden layers -> 10 scores (logits).

    The defaults are the plan's network. Phase 4 (03_train_model.py) turns the other knobs:
    more layers, another activation, dropout, batch normalization.
    """

    def __init__(self, hidden_sizes=(128,), activation="relu", dropout=0.0, batch_norm=False):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise LearnerError(f"unknown activation {activation!r}: choose one of {', '.join(ACTIVATIONS)}")
        self.arch = {"name": "SimpleNN", "hidden_sizes": list(hidden_sizes), "activation": activation,
                     "dropout": float(dropout), "batch_norm": bool(batch_norm)}
        layers, width = [], IMAGE_PIXELS
        for size in hidden_sizes:
            layers.append(nn.Linear(width, size))  # every neuron weighs every input
            if batch_norm:
                layers.append(nn.BatchNorm1d(size))  # re-centre each neuron's output per batch
            layers.append(ACTIVATIONS[activation]())
            if dropout:
                layers.append(nn.Dropout(dropout))  # silence random neurons while training
            width = size
        layers.append(nn.Linear(width, NUM_CLASSES))  # one score per digit
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        x = x.flatten(1)  # (N, 1, 28, 28) -> (N, 784): the grid becomes one row of numbers
        return self.layers(x)  # (N, 10) logits: raw scores, softmax makes them probabilities


# --- Looking inside ----------------------------------------------------------------------
def print_layers(model: SimpleNN, batch: torch.Tensor) -> None:
    """Each layer's output shape for a real batch, and its parameters."""
    print(f"{'layer':<34} {'output shape':<14} {'weights':>9} {'biases':>7} {'total':>9}")
    x = batch.flatten(1)
    print(f"{'input, flattened':<34} {str(tuple(x.shape)):<14}")
    for layer in model.layers:
        x = layer(x)
        weights = layer.weight.numel() if getattr(layer, "weight", None) is not None else 0
        biases = layer.bias.numel() if getattr(layer, "bias", None) is not None else 0
        name = (f"Linear {layer.in_features} -> {layer.out_features}" if isinstance(layer, nn.Linear)
                else type(layer).__name__)
        print(f"{name:<34} {str(tuple(x.shape)):<14} {weights:>9,} {biases:>7,} {weights + biases:>9,}")
    sizes = [IMAGE_PIXELS, *model.arch["hidden_sizes"], NUM_CLASSES]
    by_hand = " + ".join(f"({a}x{b} + {b})" for a, b in zip(sizes, sizes[1:]))
    print(f"total parameters: {count_parameters(model):,} = {by_hand}")


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
def plot_untrained_prediction(image, label, probs):
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8), gridspec_kw={"width_ratios": [1, 2]})
    left.imshow(image.squeeze().cpu().numpy(), cmap="gray")
    left.set_title(f"a test image (label {label})")
    left.axis("off")
    bars = right.bar(range(10), probs.numpy() * 100, color="tab:orange")
    right.bar_label(bars, fmt="%.1f", fontsize=8)
    right.axhline(10, color="gray", linestyle=":", label="10%: a blind guess")
    right.set_xticks(range(10))
    right.set_xlabel("digit")
    right.set_ylabel("probability (%)")
    right.set_title(f"untrained network: guesses {probs.argmax().item()}, but every digit gets about 10%")
    right.legend()
    return fig


def plot_softmax(steps, scores, temperatures, logits):
    fig, axes = plt.subplots(1, 3, figsize=(17, 4))
    axes[0].bar(range(10), steps["logits"].numpy(), color="tab:gray")
    axes[0].set_title("the plan's logits (raw scores)")
    axes[1].bar(range(10), steps["probs"].numpy(), color="tab:blue")
    axes[1].set_title(f'after softmax: "7" gets {steps["probs"][7]:.3f}, all sum to {steps["probs"].sum():.3f}')
    for ax in axes[:2]:
        ax.set_xticks(range(10))
        ax.set_xlabel("digit")
    width = 0.8 / len(temperatures)
    for i, t in enumerate(temperatures):
        probs = softmax_with_temperature(logits, t)
        axes[2].bar((torch.arange(10) + (i - (len(temperatures) - 1) / 2) * width).numpy(), probs.numpy(), width,
                    label=f"T = {t:g}")
    axes[2].set_xticks(range(10))
    axes[2].set_xlabel("digit")
    axes[2].set_title("temperature: T < 1 sharpens, T > 1 flattens")
    axes[2].legend()
    return fig


def plot_activations(x, curves):
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
    labels = {"relu": "ReLU", "leaky_relu": "Leaky ReLU (slope 0.1, to be visible)",
              "sigmoid": "sigmoid", "tanh": "tanh"}
    for name, (y, grad) in curves.items():
        top.plot(x.numpy(), y.numpy(), label=labels[name])
        bottom.plot(x.numpy(), grad.numpy(), label=labels[name])
    top.set_title("activation functions")
    bottom.set_title("their gradients: sigmoid's never exceeds 0.25 and vanishes for large |x|")
    bottom.set_xlabel("input x")
    for ax in (top, bottom):
        ax.axhline(0, color="black", lw=0.5)
        ax.axvline(0, color="black", lw=0.5)
        ax.grid(alpha=0.3)
        ax.legend()
    return fig


# --- The story --------------------------------------------------------------------------
def main(out_dir: Path = VIS_DIR, data_dir: Path = DATA_DIR, hidden_sizes=HIDDEN_SIZES,
         activation: str = ACTIVATION, seed: int = SEED) -> dict:
    generator = set_seed(seed)
    data = load_mnist(data_dir=data_dir)
    model = SimpleNN(hidden_sizes, activation)
    test_images, test_labels = data.test

    print("\n== The network ==")
    print(model)
    print()
    print_layers(model, test_images[:64])

    print("\n== An untrained prediction ==")
    index = torch.randint(len(test_labels), (1,), generator=generator).item()
    with torch.no_grad():
        logits = model(test_images[index:index + 1])[0]  # (10,)
        probs = torch.softmax(logits, dim=0)
        untrained_acc = (model(test_images).argmax(1) == test_labels).float().mean().item()
    label = test_labels[index].item()
    print(f"test image #{index} is a {label}; the untrained network's logits run from "
          f"{logits.min():.3f} to {logits.max():.3f}")
    print("probabilities: " + "  ".join(f"{d}:{p:.1%}" for d, p in enumerate(probs.tolist())))
    print(f"it guesses {probs.argmax().item()} with only {probs.max():.1%}; on all {len(test_labels):,} "
          f"test images it is right {untrained_acc:.1%} of the time (a blind guess: 10%)")
    print("why near 10%: the weights start as small random numbers, so all ten scores are close "
          "to each other, and softmax of nearly equal scores is nearly 1/10 each. Nothing has been learned.")

    print("\n== Softmax, step by step (the plan's example) ==")
    steps = softmax_steps(PLAN_LOGITS)
    print("step 1, exponentiate: " + ", ".join(f"e^{z:g} = {e:.2f}" for z, e in
                                                zip(PLAN_LOGITS, steps["exps"].tolist())))
    print(f"step 2, sum: {steps['sum']:.2f}")
    print("step 3, divide: " + ", ".join(f"{d}: {p:.3f}" for d, p in enumerate(steps["probs"].tolist())))
    print(f'the "7" gets {steps["probs"][7]:.3f}; they sum to {steps["probs"].sum():.6f}; '
          f'torch.softmax agrees to {(steps["probs"] - torch.softmax(steps["logits"], 0)).abs().max():.1e}')
    plain = torch.tensor(SCORES) / sum(SCORES)
    soft = softmax_steps(SCORES)
    print(f"\nscores {SCORES}: dividing by their sum gives [{', '.join(f'{p:.3f}' for p in plain)}]; "
          f"softmax gives [{', '.join(f'{p:.3f}' for p in soft['probs'])}] "
          f"(exponentials sum to {soft['sum']:.2f})")
    print(f"softmax is more decisive: the top score's share grows from {plain[1]:.1%} to {soft['probs'][1]:.1%}."
          f" A score higher by 1 always means e^1 = {torch.e:.2f} times the probability.")

    print("\n== Temperature ==")
    for t in TEMPERATURES:
        p = softmax_with_temperature(PLAN_LOGITS, t)
        print(f"T = {t:<4g} -> '7' gets {p[7]:.3f}, '1' gets {p[1]:.3f}, the other eight share {1 - p[7] - p[1]:.3f}")

    print("\n== Activation functions ==")
    examples = torch.tensor(RELU_EXAMPLES)
    print("ReLU: " + ", ".join(f"ReLU({x:g}) = {y:g}" for x, y in zip(RELU_EXAMPLES, F.relu(examples).tolist())))
    x = torch.linspace(-5, 5, 401)
    curves = activation_curves(x)

    print("\n== Without an activation, two layers are one ==")
    collapse = linear_collapse(seed, test_images[:64])
    print(f"784->128->10 with no activation versus one merged 784->10 layer (W = W2 W1, b = W2 b1 + b2): "
          f"outputs differ by at most {collapse['max_difference']:.1e} (rounding)")
    print(f"so its {collapse['two_layer_parameters']:,} parameters can only do what "
          f"{collapse['merged_parameters']:,} do: a straight-line (linear) classifier. "
          "03_train_model.py measures how well that does (ACTIVATION = \"none\").")

    print("\n== Figures ==")
    written = [
        save_figure(plot_untrained_prediction(test_images[index], label, probs), out_dir,
                    "02_untrained_prediction.png"),
        save_figure(plot_softmax(steps, SCORES, TEMPERATURES, PLAN_LOGITS), out_dir, "02_softmax.png"),
        save_figure(plot_activations(x, curves), out_dir, "02_activations.png"),
    ]
    print("\nNext: python 03_train_model.py")
    return {"model": model, "parameters": count_parameters(model), "softmax": steps["probs"],
            "scores_softmax": soft["probs"], "untrained_accuracy": untrained_acc,
            "collapse": collapse, "figures": written}


if __name__ == "__main__":
    with friendly_errors():
        main()
