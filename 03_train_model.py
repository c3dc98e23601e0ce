"""Phases 3 and 4: training the network, then tuning it.

Trains Phase 2's network on the 54,000 training images, watching the 6,000 validation
images after every epoch, and judges it once on the 10,000 test images at the end.

The training loop is the whole lesson of Phase 3 and fits in a dozen lines: read
`train_one_epoch` in mnist_common/training.py (predict, measure the error, backpropagate,
step downhill), then `fit` just below it (validation after every epoch, early stopping, the
guard against a run that blows up). This script is the story around them: what to watch,
what the numbers mean, and what gets saved. 03b_backprop_by_hand.py opens up step 3.

Phase 4 is the experiment loop: edit a hyperparameter below and re-run, or let
`--experiment` train the plan's variations side by side. Every run appends a row to
models/experiments.csv, and the script ends with the best runs so far.

Run:     python 03_train_model.py
         python 03_train_model.py --experiment learning-rate   (or: layers, batch-size,
             dropout, weight-decay, activation; one run per variant, one figure)
Writes:  models/mlp.pt, models/experiments.csv, visualizations/03_*.png
Next:    python 03b_backprop_by_hand.py, then python 04_improved_model.py
"""

import argparse
from dataclasses import replace
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

from mnist_common import (
    DATA_DIR,
    MODELS_DIR,
    VIS_DIR,
    DivergedError,
    MLPSettings,
    count_batches,
    count_parameters,
    evaluate,
    friendly_errors,
    log_experiment,
    log_scale,
    plot_curves,
    print_best_runs,
    save_figure,
    save_run,
    say,
    shown,
    start_training,
    train_mlp,
)

# --- Hyperparameters: edit one line, re-run, compare (Phase 4) ----------------------------
EPOCHS = 10  # passes over the 54,000 training images (3-30)
BATCH_SIZE = 64  # images per weight update (32-512): small = noisy but frequent steps
LEARNING_RATE = 0.001  # step size (try 0.1, 0.01, 0.001, 0.0001); Adam likes 0.001, SGD 0.01-0.1
OPTIMIZER = "adam"  # "adam" (adapts each weight's step) or "sgd" (plain steps, momentum 0.9)
HIDDEN_SIZES = [128]  # neurons per hidden layer (try [64], [512], [512, 256], [256, 128, 64])
ACTIVATION = "relu"  # "relu", "leaky_relu", "tanh", "sigmoid", or "none" (no non-linearity)
DROPOUT = 0.0  # share of hidden neurons silenced at each step while training (0.0-0.5)
BATCH_NORM = False  # normalize each hidden layer's output per batch (True/False)
WEIGHT_DECAY = 0.0  # L2 regularization: pulls every weight towards 0 (0, 1e-5 to 1e-3)
EARLY_STOPPING_PATIENCE = 5  # stop after this many epochs without a better validation accuracy (2-10)
SEED = 0  # fixes the starting weights and the batch order (any integer)

CHECKPOINT = "mlp.pt"
EXPERIMENTS = {  # python 03_train_model.py --experiment NAME: each variant changes the knobs above
    "learning-rate": [{"learning_rate": 0.1}, {"learning_rate": 0.01}, {"learning_rate": 0.001}],
    "layers": [{"hidden_sizes": (128,)}, {"hidden_sizes": (256, 128)}, {"hidden_sizes": (256, 128, 64)}],
    "batch-size": [{"batch_size": 32}, {"batch_size": 64}, {"batch_size": 256}],
    "dropout": [{"dropout": 0.0}, {"dropout": 0.3}],
    "weight-decay": [{"weight_decay": 0.0}, {"weight_decay": 1e-4}],
    "activation": [{"activation": "relu"}, {"activation": "sigmoid"}, {"activation": "none"}],
}


def settings_from_knobs() -> MLPSettings:
    """The constants above as one checked record; a wrong value stops here, before any work."""
    return MLPSettings(epochs=EPOCHS, batch_size=BATCH_SIZE, learning_rate=LEARNING_RATE, optimizer=OPTIMIZER,
                       hidden_sizes=HIDDEN_SIZES, activation=ACTIVATION, dropout=DROPOUT, batch_norm=BATCH_NORM,
                       weight_decay=WEIGHT_DECAY, early_stopping_patience=EARLY_STOPPING_PATIENCE, seed=SEED)


# --- Phase 3: one run, watched -------------------------------------------------------------
def describe(settings: MLPSettings) -> str:
    """784-128-10, the shape of the network these settings build."""
    return "-".join(map(str, (784, *settings.hidden_sizes, 10)))


def report_run(run, data) -> None:
    """What the run achieved, judged once on the test set, and what it cost."""
    history, test_images = run.history, data.test[0]
    errors = round((1 - run.test_acc) * len(test_images))
    print()
    say(f"best epoch {history.best_epoch} of {history.epochs_run} ({history.stop_reason}): validation "
        f"{history.best_val_acc:.2%}; test accuracy {run.test_acc:.2%} ({errors} of {len(test_images):,} wrong), "
        f"test loss {run.test_loss:.4f} (the average cross-entropy)")
    say(f"{count_parameters(run.model):,} parameters, {history.train_seconds:.1f} s of training "
        f"({history.train_seconds / max(history.epochs_run, 1):.1f} s per epoch)")
    first = history.epochs[0]
    if first.train_loss > first.val_loss:
        say(f"epoch 1's training loss ({first.train_loss:.3f}) is above its validation loss ({first.val_loss:.3f}): "
            "the training figure is averaged over the whole epoch, while the network was still learning, "
            "and the validation figure is measured once, at the end of it")


def train_once(settings: MLPSettings, data, device, precision, out_dir: Path, models_dir: Path) -> dict:
    steps = count_batches(len(data.train[1]), settings.batch_size)
    print(f"\nnetwork: {describe(settings)}, {settings.activation}; {settings.optimizer} at "
          f"{settings.learning_rate:g}, batch {settings.batch_size} ({steps} steps per epoch)")
    print(f"training on {len(data.train[1]):,} images, validating on {len(data.val[1]):,}\n")
    run = train_mlp(settings, data, device, precision)
    run.test_loss, run.test_acc = evaluate(run.model, *data.test)  # the test set, once, at the end
    report_run(run, data)
    path = save_run(run, data, Path(models_dir) / CHECKPOINT, "03_train_model.py")
    if path:
        say(f"saved {shown(path)}" + (" (the best weights before Ctrl-C)" if run.history.stop_reason == "Ctrl-C"
                                      else ""))
    figure = save_figure(plot_curves(run.history, f"{describe(settings)} network: test accuracy {run.test_acc:.2%}"),
                         out_dir, "03_training_curves.png")
    print_best_runs(models_dir)
    return {"run": run, "model": run.model, "history": run.history, "test_acc": run.test_acc,
            "test_loss": run.test_loss, "checkpoint": path, "parameters": count_parameters(run.model),
            "figures": [figure]}


# --- Phase 4: variations side by side --------------------------------------------------------
def variant_label(changes: dict) -> str:
    return ", ".join(f"{key} = {value!r}" for key, value in changes.items())


def run_variant(settings: MLPSettings, data, device, precision, models_dir: Path) -> dict:
    """Train one variant without early stopping; measure training accuracy with dropout off."""
    try:
        run = train_mlp(settings, data, device, precision)
    except DivergedError as why:
        say(f"stopped: {why}")
        return {"diverged": True, "history": why.history}
    run.test_loss, run.test_acc = evaluate(run.model, *data.test)
    _, train_acc = evaluate(run.model, *data.train)  # eval mode: dropout off, a fair comparison
    log_experiment(models_dir, "03_train_model.py", settings.as_record(), precision, run.history.epochs_run,
                   run.history.best_val_acc, run.test_acc, count_parameters(run.model), run.history.train_seconds)
    return {"diverged": False, "history": run.history, "train_acc": train_acc, "val_acc": run.history.best_val_acc,
            "test_acc": run.test_acc, "seconds": run.history.train_seconds}


def run_experiment(name: str, settings: MLPSettings, data, device, precision, out_dir, models_dir) -> dict:
    """Train once per variant of EXPERIMENTS[name], print a table and draw one figure."""
    results = {}
    for changes in EXPERIMENTS[name]:
        label = variant_label(changes)
        print(f"\n-- {label} --")
        results[label] = run_variant(replace(settings, **changes, early_stopping_patience=None), data, device,
                                     precision, models_dir)
    print(f"\n{'variant':<32} {'train acc':>9} {'best val acc':>12} {'gap':>9} {'test acc':>8} {'seconds':>7}")
    for label, r in results.items():
        if r["diverged"]:
            print(f"{label:<32} {'diverged, stopped':>28}")
            continue
        gap = (r["train_acc"] - r["val_acc"]) * 100
        say(f"{label:<32} {r['train_acc']:>9.2%} {r['val_acc']:>12.2%} {gap:>5.2f} pts {r['test_acc']:>8.2%} "
            f"{r['seconds']:>7.1f}")
    say("train acc: the kept weights measured on all training images after training (dropout off), which is "
        "higher than the epoch averages printed while training; gap = train acc - best val acc, in percentage "
        "points; choose by validation accuracy, the test column is for the record only")
    figure = save_figure(plot_experiment(name, results), out_dir, f"03_experiment_{name}.png")
    print_best_runs(models_dir)
    return {"experiment": name, "results": results, "figures": [figure]}


def plot_experiment(name: str, results: dict):
    """Training loss and validation error per epoch, one line per variant, both on log scales."""
    fig, (loss_ax, err_ax) = plt.subplots(1, 2, figsize=(12, 4.2), layout="constrained")
    for label, r in results.items():
        history = r["history"]
        if history is None or not history.epochs:
            continue  # diverged before its first epoch ended: nothing to draw
        style, label = ("x--", f"{label} (diverged, stopped)") if r["diverged"] else ("o-", label)
        loss_ax.plot(history.column("epoch"), history.column("train_loss"), style, label=label)
        err_ax.plot(history.column("epoch"), [(1 - a) * 100 for a in history.column("val_acc")], style, label=label)
    log_scale(loss_ax)
    loss_ax.set_ylabel("training loss (log scale)")
    log_scale(err_ax)
    err_ax.set_ylabel("validation error, % wrong (log scale)")
    for ax in (loss_ax, err_ax):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Experiment '{name}': the same network and data, one change at a time; lower is better in both "
                 "(x: a run that diverged, up to its last finished epoch)")
    return fig


# --- The story --------------------------------------------------------------------------------
def main(settings: MLPSettings | None = None, experiment: str | None = None, out_dir: Path = VIS_DIR,
         models_dir: Path = MODELS_DIR, data_dir: Path = DATA_DIR) -> dict:
    settings = settings or settings_from_knobs()
    device, precision, data = start_training(models_dir, out_dir, data_dir)
    if experiment:
        return run_experiment(experiment, settings, data, device, precision, out_dir, models_dir)
    result = train_once(settings, data, device, precision, out_dir, models_dir)
    print("\nNext: python 03b_backprop_by_hand.py (backpropagation written out), then python 04_improved_model.py")
    return result


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--experiment", choices=list(EXPERIMENTS),
                        help="train one variation per run (no early stopping) and compare them in one figure")
    return parser.parse_args()


if __name__ == "__main__":
    with friendly_errors():
        main(experiment=parse_args().experiment)
