"""Phases 3 and 4: training the network, then tuning it.

Trains Phase 2's network on the 54,000 training images, watching the 6,000 validation
images after every epoch, and judges it once on the 10,000 test images at the end. The
training loop is the whole lesson of Phase 3 and fits in a few lines (see
`train_one_epoch`): predict, measure the error (loss), backpropagate, step downhill.

Phase 4 is the experiment loop: edit a hyperparameter below, re-run, and compare. Every
run appends a row to models/experiments.csv, and the script ends with the best runs so far.

Run:     python 03_train_model.py
         python 03_train_model.py --compare-learning-rates   (trains at 0.1, 0.01, 0.001)
Writes:  models/mlp.pt, models/experiments.csv, visualizations/03_*.png
Next:    python 04_improved_model.py
"""

import argparse
import copy
import math
import time
from pathlib import Path

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from tqdm import tqdm

from mnist_common import (
    DATA_DIR,
    MODELS_DIR,
    VIS_DIR,
    LearnerError,
    autocast,
    batches,
    count_parameters,
    friendly_errors,
    load_mnist,
    load_script,
    log_experiment,
    pick_device,
    pick_precision,
    print_best_runs,
    save_checkpoint,
    save_figure,
    set_seed,
    shown,
)

phase2 = load_script("02_simple_nn")  # the network itself is defined, and explained, in Phase 2

# --- Hyperparameters: edit one line, re-run, compare (Phase 4) ----------------------------
EPOCHS = 10  # passes over the 54,000 training images (3-30)
BATCH_SIZE = 64  # images per weight update (32-512): small = noisy but frequent steps
LEARNING_RATE = 0.001  # step size (try 0.1, 0.01, 0.001, 0.0001); Adam likes 0.001, SGD 0.01-0.1
OPTIMIZER = "adam"  # "adam" (adapts each weight's step) or "sgd" (plain steps, momentum 0.9)
HIDDEN_SIZES = [128]  # neurons per hidden layer (try [64], [512], [512, 256], [256, 128, 64])
ACTIVATION = "relu"  # "relu", "leaky_relu", "tanh", "sigmoid", or "none" (no non-linearity)
DROPOUT = 0.0  # share of hidden neurons silenced at each step while training (0.0-0.5)
BATCH_NORM = False  # normalize each hidden layer's output per batch (True/False)
EARLY_STOPPING_PATIENCE = 5  # stop after this many epochs without a better validation accuracy (2-10)
SEED = 0  # fixes the starting weights and the batch order (any integer)
COMPARE_LEARNING_RATES = [0.1, 0.01, 0.001]  # used by --compare-learning-rates

OVERFIT_GAP = 0.015  # warn when training accuracy leads validation accuracy by more than this
PROGRESS_EVERY = 50  # update the progress bar (and check the loss is finite) every N batches
CHECKPOINT = "mlp.pt"


class DivergedError(LearnerError):
    """The loss became NaN or infinite: the weights are garbage from here on."""


def build_model(arch: dict):
    """Rebuild Phase 2's network from the architecture a checkpoint records."""
    return phase2.SimpleNN(**{key: value for key, value in arch.items() if key != "name"})


def make_optimizer(name: str, model, learning_rate: float):
    """Adam or SGD with momentum for all of the model's weights."""
    # fused=True updates every weight in one pass: the optimizer step runs ~4x faster on CPU and GPU
    fused = next(model.parameters()).device.type in ("cpu", "cuda")
    if name == "adam":
        return torch.optim.Adam(model.parameters(), lr=learning_rate, fused=fused)
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=learning_rate, momentum=0.9, fused=fused)
    raise LearnerError(f"unknown OPTIMIZER {name!r}: use \"adam\" or \"sgd\"")


# --- The training loop: the heart of Phase 3 --------------------------------------------------
def train_one_epoch(model, images, labels, optimizer, batch_size, generator, precision="fp32",
                    scheduler=None, description="training"):
    """One pass over the training data in shuffled mini-batches; returns (mean loss, accuracy)."""
    model.train()  # dropout and batch norm behave as in training
    device = labels.device
    total_loss = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    steps = math.ceil(len(labels) / batch_size)
    bar = tqdm(batches(images, labels, batch_size, shuffle=True, generator=generator),
               total=steps, desc=description, leave=False, unit="batch", disable=None)
    for step, (x, y) in enumerate(bar, start=1):
        with autocast(device, precision):
            logits = model(x)  # 1. predict: (B, 10) scores
            loss = F.cross_entropy(logits, y)  # 2. measure how wrong (averaged over the batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # 3. backpropagation: each weight's share of the error
        optimizer.step()  # 4. gradient descent: nudge every weight downhill
        if scheduler is not None:
            scheduler.step()
        total_loss += loss.detach() * len(y)
        correct += (logits.argmax(1) == y).sum()
        seen += len(y)
        if step % PROGRESS_EVERY == 0 or step == steps:
            running = total_loss.item() / seen  # one sync with the device every N steps
            if not math.isfinite(running):
                raise DivergedError(f"the loss became {running} at step {step}")
            bar.set_postfix(loss=f"{running:.4f}", acc=f"{correct.item() / seen:.2%}")
    return total_loss.item() / seen, correct.item() / seen


@torch.no_grad()
def predict_logits(model, images, precision="fp32", batch_size=500):
    """The model's (N, 10) scores for a whole split: no autograd, eval mode, cache-sized batches."""
    model.eval()  # dropout off, batch norm uses its running averages
    with autocast(images.device, precision):
        return torch.cat([model(x).float() for x in images.split(batch_size)])  # (N, 10)


def evaluate(model, images, labels, precision="fp32"):
    """(mean cross-entropy loss, accuracy) on a whole split."""
    logits = predict_logits(model, images, precision)
    return F.cross_entropy(logits, labels).item(), (logits.argmax(1) == labels).float().mean().item()


def fit(model, data, optimizer, epochs, batch_size, generator, precision="fp32", scheduler=None,
        patience=None, learning_rate=None):
    """Train for up to `epochs`, validating after each; keep the weights of the best epoch.

    Stops early after `patience` epochs without a better validation accuracy, and on Ctrl-C
    (keeping the best weights so far). Returns the history of every epoch.
    """
    history = {"train_loss": [], "train_acc": [], "val_loss": [], "val_acc": [], "seconds": [],
               "best_epoch": 0, "best_val_acc": 0.0, "stopped_early": False, "interrupted": False}
    best_state, warned = None, False
    print(f"{'epoch':>5}  {'train loss':>10} {'train acc':>9}  {'val loss':>8} {'val acc':>8}  {'seconds':>7}")
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        try:
            train_loss, train_acc = train_one_epoch(model, *data.train, optimizer, batch_size, generator,
                                                    precision, scheduler, f"epoch {epoch}/{epochs}")
            val_loss, val_acc = evaluate(model, *data.val, precision)
        except KeyboardInterrupt:
            if best_state is None:
                raise  # not one epoch finished: nothing worth keeping
            history["interrupted"] = True
            print(f"\nCtrl-C: stopping; keeping the best weights so far (epoch {history['best_epoch']})")
            break
        except DivergedError as why:
            lr = f" ({learning_rate:g})" if learning_rate else ""
            raise DivergedError(f"{why} in epoch {epoch}: the learning rate{lr} is too high; "
                                "try one ten times smaller") from None
        seconds = time.perf_counter() - start
        for key, value in zip(("train_loss", "train_acc", "val_loss", "val_acc", "seconds"),
                              (train_loss, train_acc, val_loss, val_acc, seconds)):
            history[key].append(value)
        improved = val_acc > history["best_val_acc"]
        print(f"{epoch:>5}  {train_loss:>10.4f} {train_acc:>9.2%}  {val_loss:>8.4f} {val_acc:>8.2%}  "
              f"{seconds:>7.1f}{'  *best' if improved else ''}")
        if improved:
            history["best_epoch"], history["best_val_acc"] = epoch, val_acc
            best_state = copy.deepcopy(model.state_dict())
        if not warned and train_acc - val_acc > OVERFIT_GAP and val_loss > min(history["val_loss"]):
            warned = True
            print(f"  warning: overfitting: training accuracy ({train_acc:.2%}) is well ahead of validation "
                  f"({val_acc:.2%}) and validation loss is rising; try DROPOUT = 0.2 or fewer EPOCHS")
        if patience and epoch - history["best_epoch"] >= patience:
            history["stopped_early"] = True
            print(f"early stopping: no better validation accuracy for {patience} epochs")
            break
    if best_state is not None:
        model.load_state_dict(best_state)  # the best epoch's weights, not the last epoch's
    history["train_seconds"] = sum(history["seconds"])
    return history


# --- Saving what a run produced ---------------------------------------------------------------
def save_run(model, history, hyperparameters, test_loss, test_acc, data, models_dir, checkpoint_name,
             script):
    """Write the checkpoint (atomically) and one row of the experiment log."""
    path = save_checkpoint(
        Path(models_dir) / checkpoint_name, model,
        hyperparameters=hyperparameters,
        metrics={"best_val_acc": history["best_val_acc"], "best_epoch": history["best_epoch"],
                 "epochs_run": len(history["val_acc"]), "test_acc": test_acc, "test_loss": test_loss},
        parameters=count_parameters(model), train_seconds=history["train_seconds"],
        normalization={"mean": data.mean, "std": data.std},
        history={key: history[key] for key in ("train_loss", "train_acc", "val_loss", "val_acc", "seconds")},
        torch_version=str(torch.__version__),
    )
    log_experiment(models_dir, script, hyperparameters, len(history["val_acc"]), history["best_val_acc"],
                   test_acc, count_parameters(model), history["train_seconds"])
    return path


# --- Pictures ---------------------------------------------------------------------------------
def plot_curves(history, title):
    """Loss and accuracy per epoch, training against validation."""
    epochs = range(1, len(history["val_acc"]) + 1)
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(12, 4))
    loss_ax.plot(epochs, history["train_loss"], "o-", label="training")
    loss_ax.plot(epochs, history["val_loss"], "o-", label="validation")
    loss_ax.set_ylabel("cross-entropy loss")
    acc_ax.plot(epochs, [a * 100 for a in history["train_acc"]], "o-", label="training")
    acc_ax.plot(epochs, [a * 100 for a in history["val_acc"]], "o-", label="validation")
    acc_ax.axvline(history["best_epoch"], color="gray", linestyle=":", label="best epoch (kept)")
    acc_ax.set_ylabel("accuracy (%)")
    for ax in (loss_ax, acc_ax):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    return fig


def plot_learning_rates(results):
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(12, 4))
    for lr, history in results.items():
        epochs = range(1, len(history["val_acc"]) + 1)
        loss_ax.plot(epochs, history["train_loss"], "o-", label=f"lr = {lr:g}")
        acc_ax.plot(epochs, [a * 100 for a in history["val_acc"]], "o-", label=f"lr = {lr:g}")
    loss_ax.set_yscale("log")
    loss_ax.set_ylabel("training loss (log scale)")
    acc_ax.set_ylabel("validation accuracy (%)")
    for ax in (loss_ax, acc_ax):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("The same network and data, three learning rates")
    return fig


# --- The story --------------------------------------------------------------------------------
def train_mlp(data, device, precision, epochs, batch_size, learning_rate, optimizer_name, hidden_sizes,
              activation, dropout, batch_norm, patience, seed):
    """Build Phase 2's network with these settings and fit it; returns (model, history)."""
    generator = set_seed(seed)
    model = phase2.SimpleNN(hidden_sizes, activation, dropout, batch_norm).to(device)
    optimizer = make_optimizer(optimizer_name, model, learning_rate)
    history = fit(model, data, optimizer, epochs, batch_size, generator, precision,
                  patience=patience, learning_rate=learning_rate)
    return model, history


def compare_learning_rates(data, device, precision, settings, learning_rates, out_dir, models_dir):
    """Train the same network once per learning rate, without early stopping; draw one overlay."""
    results, summary = {}, []
    for lr in learning_rates:
        print(f"\n-- learning rate {lr:g} --")
        try:
            model, history = train_mlp(data, device, precision, **{**settings, "learning_rate": lr,
                                                                     "patience": None})
        except DivergedError as why:
            print(f"diverged: {why}")
            summary.append((lr, None, None))
            continue
        test_loss, test_acc = evaluate(model, *data.test, precision)
        results[lr] = history
        summary.append((lr, history["val_acc"][-1], test_acc))
        log_experiment(models_dir, "03_train_model.py", {**settings, "learning_rate": lr},
                       len(history["val_acc"]), history["best_val_acc"], test_acc, count_parameters(model),
                       history["train_seconds"])
    print(f"\n{'learning rate':>13}  {'final val acc':>13}  {'test acc (best epoch)':>21}")
    for lr, val_acc, test_acc in summary:
        if val_acc is None:
            print(f"{lr:>13g}  {'diverged':>13}")
        else:
            print(f"{lr:>13g}  {val_acc:>13.2%}  {test_acc:>21.2%}")
    save_figure(plot_learning_rates(results), out_dir, "03_learning_rates.png")
    return summary


def main(epochs=EPOCHS, batch_size=BATCH_SIZE, learning_rate=LEARNING_RATE, optimizer=OPTIMIZER,
         hidden_sizes=HIDDEN_SIZES, activation=ACTIVATION, dropout=DROPOUT, batch_norm=BATCH_NORM,
         patience=EARLY_STOPPING_PATIENCE, seed=SEED, compare_lrs=False,
         out_dir: Path = VIS_DIR, models_dir: Path = MODELS_DIR, data_dir: Path = DATA_DIR) -> dict:
    settings = {"epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate,
                "optimizer_name": optimizer, "hidden_sizes": list(hidden_sizes), "activation": activation,
                "dropout": dropout, "batch_norm": batch_norm, "patience": patience, "seed": seed}
    device = pick_device()
    precision = pick_precision(device)
    print(f"precision: {precision}")
    data = load_mnist(data_dir=data_dir).to(device)
    if compare_lrs:
        return {"learning_rates": compare_learning_rates(data, device, precision, settings,
                                                         COMPARE_LEARNING_RATES, out_dir, models_dir)}

    print(f"\nnetwork: {phase2.SimpleNN(hidden_sizes, activation, dropout, batch_norm).arch}")
    print(f"training on {len(data.train[1]):,} images, validating on {len(data.val[1]):,}\n")
    model, history = train_mlp(data, device, precision, **settings)
    test_loss, test_acc = evaluate(model, *data.test, precision)  # the test set, once, at the end
    epochs_run = len(history["val_acc"])
    print(f"\nbest epoch {history['best_epoch']} of {epochs_run}: validation {history['best_val_acc']:.2%}; "
          f"test accuracy {test_acc:.2%} ({round((1 - test_acc) * len(data.test[1]))} of "
          f"{len(data.test[1]):,} wrong), test loss {test_loss:.4f}")
    print(f"{count_parameters(model):,} parameters, {history['train_seconds']:.1f} s of training "
          f"({history['train_seconds'] / max(epochs_run, 1):.1f} s per epoch)")

    path = save_run(model, history, settings, test_loss, test_acc, data, models_dir, CHECKPOINT,
                    "03_train_model.py")
    print(f"saved {shown(path)}" + (" (the best weights before Ctrl-C)" if history["interrupted"] else ""))
    save_figure(plot_curves(history, f"784-{'-'.join(map(str, hidden_sizes))}-10 network: "
                                     f"test accuracy {test_acc:.2%}"), out_dir, "03_training_curves.png")
    print_best_runs(models_dir)
    print("\nNext: python 04_improved_model.py")
    return {"model": model, "history": history, "test_acc": test_acc, "test_loss": test_loss,
            "checkpoint": path, "parameters": count_parameters(model)}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--compare-learning-rates", action="store_true",
                        help=f"train once per learning rate in {COMPARE_LEARNING_RATES} and draw one plot")
    return parser.parse_args()


if __name__ == "__main__":
    with friendly_errors():
        main(compare_lrs=parse_args().compare_learning_rates)
