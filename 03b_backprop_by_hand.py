"""Phase 3, opened up: backpropagation written by hand, checked, and put to work.

03_train_model.py lets `loss.backward()` find every gradient. Here the same 784-128-10 ReLU
network is built with NumPy alone, and its gradients are computed by hand with the four
equations of backpropagation (Nielsen, chapter 2). Then they are checked twice: against
finite differences (nudge a weight, watch the loss) and against PyTorch's autograd on the same
batch with the same weights. A deliberately broken backward pass shows what the check catches.
The hand-written network is then trained with plain mini-batch SGD past 97%, and four of
Nielsen's classic experiments are rerun on it: quadratic cost against cross-entropy, three ways
to initialize the weights, vanishing gradients in a deep sigmoid network, and L2 regularization.

Run:     python 03b_backprop_by_hand.py          (about 30 s on a 2-core CPU)
Writes:  visualizations/03b_*.png (listed at the end)
Next:    python 04_improved_model.py
"""

import time
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.ticker import MaxNLocator

from mnist_common import (
    DATA_DIR,
    MODEL_COLORS,
    MODELS_DIR,
    VIS_DIR,
    check_knob,
    ensure_writable,
    friendly_errors,
    is_list_of,
    is_number,
    is_whole,
    load_mnist,
    log_scale,
    parse_no_options,
    save_figure,
    say,
    shown,
)

# --- Things to explore (edit and re-run) ---------------------------------------------------
HIDDEN = 128  # hidden neurons, as in Phase 2 (32-512)
EPOCHS = 8  # passes of hand-written SGD over the 54,000 training images (1-20)
BATCH_SIZE = 64  # images per step (16-256)
LEARNING_RATE = 0.1  # plain SGD, no momentum (0.01-0.5)
SEED = 0  # starting weights and batch order (any integer)
CHECKED_PER_ARRAY = 20  # weights and biases checked by finite differences in each array (5-100)
EXPERIMENT_STEPS = 300  # SGD steps of the cost-function experiment (100-2000)
COST_RATE = 0.05  # the learning rate both costs get in that experiment (0.01-0.1)
DEEP_SIZES = [784, 30, 30, 30, 30, 10]  # the deep network of the vanishing-gradient experiment
SMALL_TRAIN = 2_000  # training images in the regularization experiment: few, so it overfits (500-10,000)
L2 = 0.003  # the L2 strength (weight decay) compared with none (0.0003-0.03)
REGULARIZATION_EPOCHS = 60  # epochs of that experiment (20-200)


# --- The network, by hand ----------------------------------------------------------------------
@dataclass(frozen=True)
class Activation:
    """A non-linearity and its derivative, the two things backpropagation needs of it."""

    name: str
    f: callable
    df: callable


def _sigmoid(z):
    return 0.5 * (1 + np.tanh(z / 2))  # = 1 / (1 + e^-z), without overflowing for large |z|


RELU = Activation("ReLU", lambda z: np.maximum(z, 0), lambda z: (z > 0).astype(z.dtype))
SIGMOID = Activation("sigmoid", _sigmoid, lambda z: _sigmoid(z) * (1 - _sigmoid(z)))
# The classic bug: forgetting the activation's derivative (as if it were 1 everywhere).
RELU_WITHOUT_DERIVATIVE = Activation("ReLU, derivative forgotten", RELU.f, lambda z: np.ones_like(z))


@dataclass
class Network:
    """Weights W[l] of shape (n_out, n_in) and biases b[l] of shape (n_out,), as PyTorch stores them.

    `output` says what the last layer does and which cost is minimised: "softmax" (softmax with
    cross-entropy, as in 03), "sigmoid-ce" or "sigmoid-quadratic" (Nielsen's chapter 3).
    """

    W: list
    b: list
    hidden: Activation = RELU
    output: str = "softmax"


def init_network(sizes, rng, scheme="pytorch", hidden=RELU, output="softmax", dtype=np.float64) -> Network:
    """Random starting weights. scheme: "pytorch" (Phase 2's: uniform in +-1/sqrt(n_in)),
    "normal" (N(0, 1), Nielsen's first choice), "scaled" (N(0, 1/n_in)), "he" (N(0, 2/n_in)) or "zeros"."""
    W, b = [], []
    for n_in, n_out in pairwise(sizes):
        bound = 1 / np.sqrt(n_in)
        if scheme == "pytorch":
            W.append(rng.uniform(-bound, bound, (n_out, n_in)))
            b.append(rng.uniform(-bound, bound, n_out))
            continue
        spread = {"normal": 1.0, "scaled": bound, "he": np.sqrt(2 / n_in), "zeros": 0.0}[scheme]
        bias_spread = 1.0 if scheme in ("normal", "scaled") else 0.0  # Nielsen's biases are N(0, 1)
        W.append(rng.normal(0, 1, (n_out, n_in)) * spread)
        b.append(rng.normal(0, 1, n_out) * bias_spread)
    return Network([w.astype(dtype) for w in W], [v.astype(dtype) for v in b], hidden, output)


def softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))  # shifting by the row's maximum changes nothing, avoids overflow
    return e / e.sum(1, keepdims=True)


def forward(net: Network, x):
    """x (B, 784) -> every weighted sum z and every activation a, layer by layer (the cache)."""
    activations, zs = [x], []
    for layer, (W, b) in enumerate(zip(net.W, net.b)):
        z = activations[-1] @ W.T + b  # (B, n_out): each neuron's weighted sum plus bias
        zs.append(z)
        last = layer == len(net.W) - 1
        activations.append((softmax(z) if net.output == "softmax" else _sigmoid(z)) if last else net.hidden.f(z))
    return zs, activations


def cost(net: Network, output, y):
    """The batch's average cost for outputs (B, 10) and one-hot targets y (B, 10)."""
    if net.output == "sigmoid-quadratic":
        return 0.5 * ((output - y) ** 2).sum(1).mean()
    tiny = 1e-12  # keeps log(0) finite
    if net.output == "softmax":
        return -np.log((output * y).sum(1) + tiny).mean()
    return -(y * np.log(output + tiny) + (1 - y) * np.log(1 - output + tiny)).sum(1).mean()


def backward(net: Network, zs, activations, y):
    """Every weight's and bias's gradient of the batch's average cost: the four equations.

    BP1 (the output's error):  delta_L = a_L - y  for softmax or sigmoid with cross-entropy,
                               delta_L = (a_L - y) * sigmoid'(z_L)  for the quadratic cost.
    BP2 (send it back):        delta_l = (delta_{l+1} @ W_{l+1}) * activation'(z_l)
    BP3 (biases):              dC/db_l = delta_l, averaged over the batch
    BP4 (weights):             dC/dW_l = delta_l (transposed) times a_{l-1}, averaged over the batch
    """
    batch = len(y)
    delta = activations[-1] - y  # (B, 10): BP1
    if net.output == "sigmoid-quadratic":
        delta = delta * SIGMOID.df(zs[-1])  # the factor that makes the quadratic cost learn slowly
    grad_W, grad_b = [None] * len(net.W), [None] * len(net.W)
    for layer in reversed(range(len(net.W))):
        grad_b[layer] = delta.mean(0)  # (n_out,): BP3
        grad_W[layer] = delta.T @ activations[layer] / batch  # (n_out, n_in): BP4
        if layer > 0:
            delta = (delta @ net.W[layer]) * net.hidden.df(zs[layer - 1])  # (B, n_in): BP2
    return grad_W, grad_b


def one_hot(labels, classes: int = 10, dtype=np.float64):
    return np.eye(classes, dtype=dtype)[labels]  # (B, 10): 1 for the right digit, 0 elsewhere


def predict(net: Network, x, batch_size: int = 1000):
    return np.concatenate([forward(net, x[i:i + batch_size])[1][-1].argmax(1) for i in range(0, len(x), batch_size)])


def accuracy(net: Network, x, labels) -> float:
    return float((predict(net, x) == labels).mean())


# --- Checking the gradients ------------------------------------------------------------------
def numeric_gradient(net: Network, x, y, array, index, epsilon: float = 1e-6) -> float:
    """dC/dw by nudging one weight: (C(w + eps) - C(w - eps)) / (2 eps). Slow, but needs no calculus."""
    saved = array[index]
    array[index] = saved + epsilon
    plus = cost(net, forward(net, x)[1][-1], y)
    array[index] = saved - epsilon
    minus = cost(net, forward(net, x)[1][-1], y)
    array[index] = saved
    return float((plus - minus) / (2 * epsilon))


def gradient_pairs(net: Network, x, y, per_array: int, rng) -> list[tuple[float, float, str]]:
    """(finite difference, backward()'s gradient, which array) for `per_array` different random entries of
    every W and b (all of them where an array has fewer)."""
    grad_W, grad_b = backward(net, *forward(net, x), y)
    pairs = []
    for kind, arrays, grads in (("W", net.W, grad_W), ("b", net.b, grad_b)):
        for layer, (array, grad) in enumerate(zip(arrays, grads), start=1):
            chosen = rng.choice(array.size, min(per_array, array.size), replace=False)
            for index in zip(*np.unravel_index(chosen, array.shape)):
                pairs.append((numeric_gradient(net, x, y, array, index), float(grad[index]), f"{kind}{layer}"))
    return pairs


def relative_error(pairs) -> float:
    """The largest |numeric - hand| / (|numeric| + |hand|) over the pairs: about 1e-7 or less when right."""
    return max(abs(n - h) / max(abs(n) + abs(h), 1e-12) for n, h, _ in pairs)


def finite_difference_check(net: Network, x, y, per_array: int, rng) -> float:
    """Largest relative error between backward()'s gradients and central differences (use float64)."""
    return relative_error(gradient_pairs(net, x, y, per_array, rng))


def autograd_difference(net: Network, x, labels) -> float:
    """Largest |hand gradient - PyTorch autograd gradient| on the same batch and weights (float64)."""
    weights = [torch.tensor(w, requires_grad=True) for w in net.W]
    biases = [torch.tensor(v, requires_grad=True) for v in net.b]
    a = torch.tensor(x)
    for layer, (w, v) in enumerate(zip(weights, biases)):
        a = a @ w.T + v
        if layer < len(weights) - 1:
            a = torch.relu(a)
    F.cross_entropy(a, torch.tensor(labels)).backward()  # softmax + cross-entropy, averaged over the batch
    grad_W, grad_b = backward(net, *forward(net, x), one_hot(labels))
    pairs = [(g, t.grad.numpy()) for g, t in zip(grad_W + grad_b, weights + biases)]
    return max(float(np.abs(hand - auto).max()) for hand, auto in pairs)


# --- Training by hand --------------------------------------------------------------------------
def sgd_epoch(net: Network, x, labels, batch_size: int, learning_rate: float, rng, l2: float = 0.0) -> float:
    """One epoch of mini-batch SGD, one matrix product per layer per batch; returns the mean cost."""
    order, costs = rng.permutation(len(x)), []
    for start in range(0, len(x), batch_size):
        idx = order[start:start + batch_size]
        y = one_hot(labels[idx])
        zs, activations = forward(net, x[idx])
        costs.append(cost(net, activations[-1], y))
        grad_W, grad_b = backward(net, zs, activations, y)
        for layer in range(len(net.W)):
            # L2 regularization adds l2 * W to each weight's gradient: "weight decay"
            net.W[layer] -= learning_rate * (grad_W[layer] + l2 * net.W[layer])
            net.b[layer] -= learning_rate * grad_b[layer]
    return float(np.mean(costs))


def hidden_activity(net: Network, x) -> dict:
    """How often the hidden ReLUs output exactly 0, and how many never fire on any of these images."""
    hidden = forward(net, x)[1][1]  # (N, HIDDEN) after ReLU
    return {"zero_share": float((hidden == 0).mean()), "never_fire": int((hidden.max(0) == 0).sum())}


def pytorch_seconds_per_epoch(models_dir: Path):
    """03's seconds per epoch, from its checkpoint, or None if 03 has not been run."""
    path = Path(models_dir) / "mlp.pt"
    try:
        history = torch.load(path, map_location="cpu", weights_only=True)["history"]
        return float(np.mean([epoch["seconds"] for epoch in history]))
    except Exception:
        return None


def train_by_hand(data, hidden: int, epochs: int, batch_size: int, learning_rate: float, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    net = init_network([784, hidden, 10], rng)
    before = hidden_activity(net, data["val_x"])
    history = []
    print(f"{'epoch':>5}  {'train cost':>10}  {'val acc':>7}  {'seconds':>7}")
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        train_cost = sgd_epoch(net, data["train_x"], data["train_y"], batch_size, learning_rate, rng)
        seconds = time.perf_counter() - start
        history.append((epoch, train_cost, accuracy(net, data["val_x"], data["val_y"]), seconds))
        print(f"{epoch:>5}  {train_cost:>10.4f}  {history[-1][2]:>7.2%}  {seconds:>7.2f}")
    return {"net": net, "history": history, "before": before, "after": hidden_activity(net, data["val_x"]),
            "test_acc": accuracy(net, data["test_x"], data["test_y"])}


# --- Nielsen's experiments ----------------------------------------------------------------------
def cost_experiment(data, steps: int, batch_size: int, rate: float, seed: int) -> dict:
    """Quadratic cost against cross-entropy, both on a sigmoid output layer that starts badly wrong.

    Every output bias starts at +4, so every output starts near 1 (sure of every digit at once):
    sigmoid'(z) is tiny there, and the quadratic cost's error carries that tiny factor (BP1).
    Both runs are judged on one yardstick, the quadratic cost, and on accuracy.
    """
    curves = {}
    for output in ("sigmoid-quadratic", "sigmoid-ce"):
        rng = np.random.default_rng(seed)
        net = init_network([784, 30, 10], rng, scheme="scaled", output=output)
        net.b[-1][:] = 4.0  # saturated: sigmoid(4) = 0.98 for all ten outputs
        yardstick, x, labels = [], data["train_x"], data["train_y"]
        for _ in range(steps):
            idx = rng.integers(0, len(x), batch_size)
            y = one_hot(labels[idx])
            zs, activations = forward(net, x[idx])
            yardstick.append(0.5 * ((activations[-1] - y) ** 2).sum(1).mean())
            grad_W, grad_b = backward(net, zs, activations, y)
            for layer in range(len(net.W)):
                net.W[layer] -= rate * grad_W[layer]
                net.b[layer] -= rate * grad_b[layer]
        curves[output] = {"quadratic": yardstick, "val_acc": accuracy(net, data["val_x"], data["val_y"])}
    return curves


def init_experiment(data, seed: int, batch_size: int, learning_rate: float) -> dict:
    """Three starts for the same 784-128-10 ReLU network: how spread out z is, and one epoch of training."""
    results = {}
    for scheme, label in (("normal", "N(0, 1)"), ("scaled", "N(0, 1/n_in)"), ("zeros", "all zeros")):
        rng = np.random.default_rng(seed)
        net = init_network([784, HIDDEN, 10], rng, scheme=scheme)
        z = forward(net, data["val_x"][:1000])[0][0]  # (1000, HIDDEN) hidden weighted sums at the start
        with np.errstate(over="ignore", invalid="ignore"):
            sgd_epoch(net, data["train_x"], data["train_y"], batch_size, learning_rate, rng)
            results[label] = {"z": z, "z_std": float(z.std()), "acc": accuracy(net, data["val_x"], data["val_y"])}
    return results


def gradient_norms(net: Network, x, labels) -> list[float]:
    """||dC/db_l|| for each layer l: how fast each layer's biases (and so its neurons) learn."""
    _, grad_b = backward(net, *forward(net, x), one_hot(labels))
    return [float(np.linalg.norm(g)) for g in grad_b]


def vanishing_experiment(data, sizes, seed: int, batch_size: int, learning_rate: float) -> dict:
    """A deep sigmoid network against the same depth with ReLU and He initialization."""
    results = {}
    for name, hidden, scheme in (("sigmoid, N(0, 1)", SIGMOID, "normal"), ("ReLU, He N(0, 2/n_in)", RELU, "he")):
        rng = np.random.default_rng(seed)
        net = init_network(sizes, rng, scheme=scheme, hidden=hidden)
        probe_x, probe_y = data["val_x"][:1000], data["val_y"][:1000]
        at_start = gradient_norms(net, probe_x, probe_y)
        during = [at_start]
        x, labels = data["train_x"][:20_000], data["train_y"][:20_000]
        for start in range(0, len(x), 2_000):  # one pass over 20,000 images, measured every 2,000
            sgd_epoch(net, x[start:start + 2_000], labels[start:start + 2_000], batch_size, learning_rate, rng)
            during.append(gradient_norms(net, probe_x, probe_y))
        results[name] = {"at_start": at_start, "during": np.array(during),
                         "acc": accuracy(net, data["val_x"], data["val_y"])}
    return results


def l2_experiment(data, n_train: int, epochs: int, l2: float, seed: int, batch_size: int, rate: float) -> dict:
    """Few training images, many epochs: overfitting, with and without L2 regularization.

    Per epoch: training accuracy, validation accuracy, validation cost, and the sum of the squared
    weights (what L2 keeps small).
    """
    results = {}
    x, labels = data["train_x"][:n_train], data["train_y"][:n_train]
    val_y = one_hot(data["val_y"])
    for strength in (0.0, l2):
        rng = np.random.default_rng(seed)
        net = init_network([784, HIDDEN, 10], rng)
        curve = []
        for _ in range(epochs):
            sgd_epoch(net, x, labels, batch_size, rate, rng, l2=strength)
            val_cost = cost(net, forward(net, data["val_x"])[1][-1], val_y)
            curve.append((accuracy(net, x, labels), accuracy(net, data["val_x"], data["val_y"]), val_cost,
                          sum(float((w ** 2).sum()) for w in net.W)))
        results[strength] = np.array(curve)
    return results


# --- Pictures ------------------------------------------------------------------------------------
def plot_gradient_check(pairs: dict):
    """Hand gradients against finite differences, for the right backward pass and the broken one."""
    # one small panel per array, each on its own scale: W1's and b1's gradients are far smaller
    # than W2's, and on one shared plot they would hide under W2's dots near zero
    # not orange or blue: those mean the MLP and the CNN in every figure of the journey
    arrays = (("W1", "tab:green"), ("b1", "tab:olive"), ("W2", "tab:purple"), ("b2", "tab:brown"))
    fig = plt.figure(figsize=(14, 7.4), layout="constrained")
    for row, (name, sampled) in zip(fig.subfigures(len(pairs), 1), pairs.items()):
        numeric, hand, kind = (np.array(column) for column in zip(*sampled))
        for ax, (which, colour) in zip(row.subplots(1, len(arrays)), arrays):
            mine = kind == which
            ax.scatter(numeric[mine], hand[mine], s=16, color=colour)
            limit = max(np.abs(np.concatenate([numeric[mine], hand[mine]])).max() * 1.1, 1e-12)
            ax.plot([-limit, limit], [-limit, limit], "k--", lw=0.8, label="equal")
            ax.set_xlim(-limit, limit)
            ax.set_ylim(-limit, limit)
            ax.set_aspect("equal")
            ax.ticklabel_format(style="plain", useOffset=False)  # 0.01 written out: no "1e-2" offset to decode
            ax.xaxis.set_major_locator(MaxNLocator(5))  # few enough that the written-out numbers never touch
            ax.tick_params(labelsize=8)
            ax.set_title(f"{which}: {int(mine.sum())} dots, largest relative error "
                         f"{relative_error([p for p, m in zip(sampled, mine) if m]):.1e}", fontsize=9, color=colour)
            ax.grid(alpha=0.3)
        row.suptitle(f"{name}: largest relative error {relative_error(sampled):.1e}", fontsize=11)
        row.supylabel("backward() gradient", fontsize=9)
    fig.supxlabel("finite difference (C(w + ε) - C(w - ε)) / 2ε, with ε = 1e-6; dashed line: equal", fontsize=10)
    fig.suptitle("Gradient check: every dot is one weight or bias, one panel per array (each on its own scale); "
                 "the hand gradient should equal the numerical one")
    return fig


def plot_training(history, test_acc: float):
    epochs, costs, val_acc, _ = zip(*history)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8), layout="constrained")
    left.plot(epochs, costs, "o-", color=MODEL_COLORS["MLP"])  # an MLP: the MLP's colour everywhere
    left.set_ylabel("training cost (cross-entropy, epoch average)")
    right.plot(epochs, [a * 100 for a in val_acc], "o-", color=MODEL_COLORS["MLP"])
    right.set_ylabel("validation accuracy (%)")
    for ax in (left, right):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    fig.suptitle(f"784-{HIDDEN}-10 trained by hand with NumPy (plain SGD): test accuracy {test_acc:.2%}")
    return fig


def plot_costs(curves: dict, steps: int):
    fig, ax = plt.subplots(figsize=(8, 4.2))
    names = {"sigmoid-quadratic": "trained with the quadratic cost", "sigmoid-ce": "trained with cross-entropy"}
    for output, curve in curves.items():
        ax.plot(range(1, steps + 1), curve["quadratic"], label=f"{names[output]} (after {steps} steps: "
                f"{curve['val_acc']:.1%} validation accuracy)")
    ax.set_xlabel("SGD step (64 images each)")
    log_scale(ax)
    ax.set_ylabel("quadratic cost of the batch (log scale)\nthe same yardstick for both")
    ax.set_title("A sigmoid output layer that starts badly wrong: cross-entropy learns at once,\n"
                 "the quadratic cost crawls (its error is multiplied by a tiny sigmoid')")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def plot_initialization(results: dict):
    fig, axes = plt.subplots(1, len(results), figsize=(13, 3.6), layout="constrained")
    for ax, (label, r) in zip(axes, results.items()):
        ax.hist(r["z"].ravel(), bins=60, color="tab:purple")
        ax.set_title(f"{label}: standard deviation of z = {r['z_std']:.2f}\nvalidation accuracy after 1 epoch: "
                     f"{r['acc']:.1%}",
                     fontsize=10)
        ax.set_xlabel("hidden weighted sums z at the start")
    axes[0].set_ylabel("count (1,000 images x 128 neurons)")
    fig.suptitle("Initialization: how large the first weighted sums are (mind the different x scales), "
                 "and what one epoch then achieves")
    return fig


def plot_vanishing(results: dict):
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), layout="constrained", sharey=True)
    for ax, (name, r) in zip(axes, results.items()):
        during = r["during"]
        for layer in range(during.shape[1]):
            last = layer == during.shape[1] - 1  # the output layer: say so, the learner counts from the input
            ax.plot(np.arange(len(during)) * 2_000, during[:, layer], "o-", ms=3,
                    label=f"layer {layer + 1}" + (" (output)" if last else " (first hidden)" if layer == 0 else ""))
        log_scale(ax)
        ax.yaxis.set_tick_params(labelleft=True)  # shared scale, but each panel labelled
        ax.set_xlabel("training images seen")
        ax.set_ylabel("size of the layer's bias gradient (log scale)")
        ratio = r["at_start"][-1] / r["at_start"][0]
        ax.set_title(f"{name}: at the start the last layer's gradient is {ratio:.1f}x the first's;\n"
                     f"validation accuracy after 20,000 images {r['acc']:.1%}", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Vanishing gradients: in a deep sigmoid network the early layers barely learn")
    return fig


def plot_regularization(results: dict, l2: float):
    fig, axes = plt.subplots(1, 3, figsize=(15, 4), layout="constrained")
    for strength, colour in zip(results, ("tab:red", "tab:blue")):
        curve = results[strength]
        name = "no regularization" if strength == 0 else f"L2 = {l2:g}"
        epochs = range(1, len(curve) + 1)
        axes[0].plot(epochs, curve[:, 0] * 100, "-", color=colour, label=f"{name}: training")
        axes[0].plot(epochs, curve[:, 1] * 100, "--", color=colour, label=f"{name}: validation")
        axes[1].plot(epochs, curve[:, 2], color=colour, label=name)
        axes[2].plot(epochs, curve[:, 3], color=colour, label=name)
    for ax, label in zip(axes, ("accuracy (%)", "validation cost (cross-entropy)", "sum of squared weights")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{SMALL_TRAIN:,} training images, {len(curve)} epochs: without L2 the weights keep growing and the "
                 "validation cost rises again; L2 keeps the weights small")
    return fig


# --- The story ---------------------------------------------------------------------------------
def numpy_splits(data) -> dict:
    """The normalized splits as NumPy arrays: images flattened to (N, 784), labels (N,).

    Everything here is float64, NumPy's own default. In float32 the numbers this script prints
    changed with the number of threads NumPy's matrix library used (97.83% test accuracy on two
    threads, 97.74% on one; 87.8% against 82.5% in the ReLU deep network): each thread adds its
    share of a product in its own order, float32 keeps 7 digits, and SGD amplifies that last digit
    over thousands of steps. In float64 the rounding is a billion times smaller and every machine
    prints the same numbers, at about twice the time per epoch (still well under a second)."""
    out = {"classes": data.classes}
    for name, (x, y) in (("train", data.train), ("val", data.val), ("test", data.test)):
        out[f"{name}_x"], out[f"{name}_y"] = x.flatten(1).double().numpy(), y.numpy()
    return out


def show_forward_pass(data, seed: int) -> tuple[Network, dict]:
    """Step 1: one image through the untrained hand-made network, every quantity with its shape."""
    net = init_network([784, HIDDEN, 10], np.random.default_rng(seed))
    zs, activations = forward(net, data["test_x"][:1])
    label = data["test_y"][0]
    print(f"\n== 1. Forward pass, one test image (a {data['classes'][label]}) ==")
    def numbers(values, digits=3):
        return " ".join(f"{v:+.{digits}f}" for v in values)

    say(f"x: {activations[0].shape}; z1 = x @ W1.T + b1: {zs[0].shape}, the first six {numbers(zs[0][0, :6])}")
    print(f"a1 = ReLU(z1): {activations[1].shape}, the same six {numbers(activations[1][0, :6])}")
    print(f"z2 = a1 @ W2.T + b2: {zs[1].shape}, the ten scores {numbers(zs[1][0], 2)}")
    print(f"a2 = softmax(z2): {activations[2].shape}, one probability per digit:")
    print("   digit " + " ".join(f"{d:>6}" for d in range(10)))
    print("   prob  " + " ".join(f"{p:>6.3f}" for p in activations[2][0]))
    return net, {"x": data["test_x"][:1], "label": label, "zs": zs, "activations": activations}


def show_backward_pass(net: Network, example: dict) -> None:
    """Step 2: the four equations, applied to that one image, with the shape of every quantity."""
    y = one_hot(np.array([example["label"]]))
    grad_W, grad_b = backward(net, example["zs"], example["activations"], y)
    delta2 = example["activations"][-1] - y
    print("\n== 2. Backward pass (backward() above: the four equations, for this image) ==")
    say(f"BP1 output error  delta2 = a2 - y: {delta2.shape}, " + " ".join(f"{v:+.3f}" for v in delta2[0])
        + f" (negative only at the true label, {example['label']})")
    say(f"BP2 sent back     delta1 = (delta2 @ W2) * ReLU'(z1): (1, {HIDDEN}); zero wherever z1 <= 0")
    say(f"BP3 biases        dC/db2 = delta2 {grad_b[1].shape}, dC/db1 = delta1 {grad_b[0].shape}")
    say(f"BP4 weights       dC/dW2 = delta2.T @ a1 {grad_W[1].shape}, dC/dW1 = delta1.T @ x {grad_W[0].shape}: "
        "the same shapes as W2 and W1, one gradient per weight")


def show_gradient_check(data, seed: int, per_array: int) -> dict:
    """Step 3: the hand gradients against finite differences and autograd, in float64."""
    print("\n== 3. Gradient check (float64) ==")
    rng = np.random.default_rng(seed)
    net = init_network([784, HIDDEN, 10], rng)
    x, labels = data["train_x"][:32], data["train_y"][:32]
    y = one_hot(labels)
    pairs = {"right backward pass": gradient_pairs(net, x, y, per_array, rng),
             "ReLU's derivative forgotten": gradient_pairs(Network(net.W, net.b, RELU_WITHOUT_DERIVATIVE), x, y,
                                                            per_array, rng)}
    checks = {"right": relative_error(pairs["right backward pass"]),
              "broken": relative_error(pairs["ReLU's derivative forgotten"]),
              "autograd": autograd_difference(net, x, labels), "pairs": pairs}
    say(f"largest relative error against finite differences, {len(pairs['right backward pass'])} weights and biases: "
        f"{checks['right']:.1e} (the check passes below about 1e-6)")
    say(f"largest difference from PyTorch's autograd on the same batch and weights: {checks['autograd']:.1e}")
    say(f"the same check on a backward pass that forgets ReLU's derivative: {checks['broken']:.1e}, "
        "caught at once")
    return checks


def show_training(data, models_dir: Path, epochs: int) -> dict:
    """Step 4: plain SGD, written out, on the same splits as 03."""
    print(f"\n== 4. Training by hand: {epochs} epochs of SGD, batch {BATCH_SIZE}, learning rate {LEARNING_RATE} ==")
    result = train_by_hand(data, HIDDEN, epochs, BATCH_SIZE, LEARNING_RATE, SEED)
    hand = np.mean([seconds for *_, seconds in result["history"]])
    torch_seconds = pytorch_seconds_per_epoch(models_dir)
    say(f"test accuracy {result['test_acc']:.2%}; {hand:.2f} s per epoch by hand"
        + (f", against {torch_seconds:.2f} s for 03's PyTorch loop (Adam; {shown(Path(models_dir) / 'mlp.pt')})"
           if torch_seconds else " (run 03_train_model.py to compare with PyTorch's seconds per epoch)"))
    before, after = result["before"], result["after"]
    say(f"hidden ReLUs at exactly 0 on the validation images: {before['zero_share']:.0%} at the start, "
        f"{after['zero_share']:.0%} after training (the plan says \"about 50%\"); neurons that never fire "
        f"on any of them: {before['never_fire']} at the start, {after['never_fire']} after (dead ReLUs)")
    result["hand_seconds"], result["torch_seconds"] = hand, torch_seconds
    return result


def show_experiments(data, seed: int) -> dict:
    """Step 5: Nielsen's four experiments, each printed as a small table."""
    print("\n== 5. Nielsen's experiments ==")
    costs = cost_experiment(data, EXPERIMENT_STEPS, BATCH_SIZE, COST_RATE, seed)
    q, ce = costs["sigmoid-quadratic"]["quadratic"], costs["sigmoid-ce"]["quadratic"]
    say(f"Cost functions: a sigmoid output layer from a saturated start (every output near 1), learning rate "
        f"{COST_RATE} for both; the batch's quadratic cost, the same yardstick for both:")
    print(f"  {'trained with':<14} {'at the start':>12} {'after 20 steps':>14} {f'after {EXPERIMENT_STEPS}':>10} "
          f"{'val acc':>8}")
    for label, key, curve in (("quadratic", "sigmoid-quadratic", q), ("cross-entropy", "sigmoid-ce", ce)):
        print(f"  {label:<14} {curve[0]:>12.2f} {curve[19]:>14.2f} {np.mean(curve[-20:]):>10.3f} "
              f"{costs[key]['val_acc']:>8.1%}")
    inits = init_experiment(data, seed, BATCH_SIZE, LEARNING_RATE)
    print("\nInitialization: the spread of the hidden weighted sums z at the start, and one epoch of SGD later:")
    print(f"  {'weights drawn from':<20} {'std of z':>8} {'val acc after 1 epoch':>22}")
    for label, r in inits.items():
        print(f"  {label:<20} {r['z_std']:>8.2f} {r['acc']:>22.1%}")
    deep = vanishing_experiment(data, DEEP_SIZES, seed, BATCH_SIZE, LEARNING_RATE)
    layers = len(DEEP_SIZES) - 1
    say(f"\nVanishing gradients in {'-'.join(map(str, DEEP_SIZES))}: the size of each layer's gradient at the "
          f"start (layer {layers} is the output), and accuracy after 20,000 images:")
    print(f"  {'network':<24} " + " ".join(f"{f'layer {n}':>7}" for n in range(1, layers + 1)) + f" {'val acc':>8}")
    for name, r in deep.items():
        print(f"  {name:<24} " + " ".join(f"{g:>7.2g}" for g in r["at_start"]) + f" {r['acc']:>8.1%}")
    l2 = l2_experiment(data, SMALL_TRAIN, REGULARIZATION_EPOCHS, L2, seed, BATCH_SIZE, LEARNING_RATE)
    print(f"\nL2 regularization on only {SMALL_TRAIN:,} training images, after {REGULARIZATION_EPOCHS} epochs:")
    print(f"  {'L2':>6} {'train acc':>9} {'val acc':>8} {'gap':>5} {'val cost':>8} {'lowest':>7} "
          f"{'sum of squared weights':>22}")
    for strength, curve in l2.items():
        train, val, val_cost, squares = curve[-1]
        print(f"  {strength:>6g} {train:>9.1%} {val:>8.1%} {(train - val) * 100:>5.1f} {val_cost:>8.3f} "
              f"{curve[:, 2].min():>7.3f} {squares:>22.0f}")
    return {"costs": costs, "inits": inits, "deep": deep, "l2": l2}


def check_knobs() -> None:
    """The constants above, checked before any work (one line naming a bad one)."""
    for name, value in (("HIDDEN", HIDDEN), ("EPOCHS", EPOCHS), ("BATCH_SIZE", BATCH_SIZE),
                        ("CHECKED_PER_ARRAY", CHECKED_PER_ARRAY), ("REGULARIZATION_EPOCHS", REGULARIZATION_EPOCHS)):
        check_knob(name, value, is_whole(value, 1), "use a whole number of at least 1")
    for name, value in (("LEARNING_RATE", LEARNING_RATE), ("COST_RATE", COST_RATE)):
        check_knob(name, value, is_number(value) and value > 0, "use a number above 0, such as 0.1")
    check_knob("SEED", SEED, is_whole(SEED), "use a whole number")
    check_knob("EXPERIMENT_STEPS", EXPERIMENT_STEPS, is_whole(EXPERIMENT_STEPS, 20),
               "use a whole number of at least 20")
    check_knob("DEEP_SIZES", DEEP_SIZES, is_list_of(DEEP_SIZES, lambda n: is_whole(n, 1), at_least=3)
               and DEEP_SIZES[0] == 784 and DEEP_SIZES[-1] == 10,
               "use a list that starts with 784 and ends with 10, such as [784, 30, 30, 10]")
    check_knob("SMALL_TRAIN", SMALL_TRAIN, is_whole(SMALL_TRAIN, 100, 54_000), "use a whole number from 100 to 54,000")
    check_knob("L2", L2, is_number(L2) and L2 > 0, "use a number above 0, such as 0.003")


def main(out_dir: Path = VIS_DIR, models_dir: Path = MODELS_DIR, data_dir: Path = DATA_DIR, seed: int = SEED,
         per_array: int = CHECKED_PER_ARRAY, epochs: int = EPOCHS) -> dict:
    ensure_writable(out_dir, "figures")
    data = numpy_splits(load_mnist(data_dir=data_dir))
    net, example = show_forward_pass(data, seed)
    show_backward_pass(net, example)
    checks = show_gradient_check(data, seed, per_array)
    training = show_training(data, models_dir, epochs)
    experiments = show_experiments(data, seed)
    print("\n== Figures ==")
    written = [
        save_figure(plot_gradient_check(checks["pairs"]), out_dir, "03b_gradient_check.png"),
        save_figure(plot_training(training["history"], training["test_acc"]), out_dir, "03b_training.png"),
        save_figure(plot_costs(experiments["costs"], EXPERIMENT_STEPS), out_dir, "03b_cost_functions.png"),
        save_figure(plot_initialization(experiments["inits"]), out_dir, "03b_initialization.png"),
        save_figure(plot_vanishing(experiments["deep"]), out_dir, "03b_vanishing_gradients.png"),
        save_figure(plot_regularization(experiments["l2"], L2), out_dir, "03b_regularization.png"),
    ]
    print("\nNext: python 04_improved_model.py")
    return {"checks": checks, "training": training, "experiments": experiments, "figures": written}


if __name__ == "__main__":
    with friendly_errors():
        parse_no_options(__doc__)
        check_knobs()
        main()
