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
         python 03_train_model.py --experiment learning-rate   (or: optimizer, layers,
             batch-size, activation, weight-decay, dropout, batch-norm; one table, one figure)
         python 03_train_model.py --experiment all   (all of them, then Phase 4's key
             questions answered from the table; about 4 minutes)
Writes:  models/mlp.pt, models/experiments.csv, visualizations/03_*.png
Next:    python 03b_backprop_by_hand.py, then python 04_improved_model.py
"""

import argparse
import json
from dataclasses import replace
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

from mnist_common import (
    DATA_DIR,
    MODELS_DIR,
    VIS_DIR,
    DivergedError,
    EpochStats,
    History,
    LearnerError,
    MLPSettings,
    TrainedRun,
    count_batches,
    count_parameters,
    evaluate,
    friendly_errors,
    load_model,
    log_experiment,
    log_scale,
    overfitting_note,
    plot_curves,
    print_best_runs,
    save_figure,
    save_run,
    say,
    shown,
    start_training,
    train_mlp,
    variant_colors,
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
WIDE = {"hidden_sizes": (512, 256), "epochs": 15}  # a bigger network, given more epochs to use its size
EXPERIMENTS = {  # python 03_train_model.py --experiment NAME: each variant changes the knobs above;
    # every table also shows the knobs above unchanged (from models/mlp.pt when it was trained with them)
    "learning-rate": [{"learning_rate": 0.1}, {"learning_rate": 0.01}, {"learning_rate": 0.0001}],
    "optimizer": [{"optimizer": "sgd", "learning_rate": 0.01}, {"optimizer": "sgd", "learning_rate": 0.1}],
    "layers": [{"hidden_sizes": (256, 128)}, {"hidden_sizes": (256, 128, 64)}, {"hidden_sizes": (512, 256)}],
    "batch-size": [{"batch_size": 32}, {"batch_size": 256}],
    "activation": [{"activation": "sigmoid"}, {"activation": "none"}],
    "weight-decay": [{"weight_decay": 1e-4}, {"weight_decay": 1e-3}],
    "dropout": [WIDE, {**WIDE, "dropout": 0.2}, {**WIDE, "dropout": 0.5}],
    "batch-norm": [{**WIDE, "dropout": 0.2}, {**WIDE, "dropout": 0.2, "batch_norm": True}],
}  # --experiment all runs every one of them (each distinct variant once), about 4 minutes on 2 cores


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
    note = overfitting_note(history)
    if note:
        say(f"note: {note}")
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
    figure = save_figure(plot_curves(run.history, f"{describe(settings)} network: test accuracy {run.test_acc:.2%}",
                                     "MLP"),
                         out_dir, "03_training_curves.png")
    print_best_runs(models_dir, "03_train_model.py", settings.as_record())
    return {"run": run, "model": run.model, "history": run.history, "test_acc": run.test_acc,
            "test_loss": run.test_loss, "checkpoint": path, "parameters": count_parameters(run.model),
            "figures": [figure]}


UNCHANGED = "the knobs above, unchanged"  # the label of the run with 03's own settings


# --- Phase 4: variations side by side --------------------------------------------------------
def variant_label(changes: dict) -> str:
    """{"hidden_sizes": (512, 256), "dropout": 0.2} -> "hidden 512-256, dropout 0.2"; {} -> the knobs, unchanged."""
    words = {"hidden_sizes": lambda v: "hidden " + "-".join(map(str, v)), "epochs": lambda v: f"{v} epochs",
             "learning_rate": lambda v: f"lr {v:g}", "optimizer": lambda v: {"sgd": "SGD + momentum"}.get(v, v),
             "batch_size": lambda v: f"batch {v}", "dropout": lambda v: f"dropout {v:g}",
             "activation": lambda v: "no activation" if v == "none" else v,
             "weight_decay": lambda v: f"weight decay {v:g}", "batch_norm": lambda v: "batch norm" if v else "no bn"}
    return ", ".join(words[key](value) for key, value in changes.items()) or UNCHANGED


def measured(run, data, seconds: float, reused: bool = False) -> dict:
    """Test and training accuracy of a trained run, both measured with dropout off (eval mode)."""
    _, test_acc = evaluate(run.model, *data.test)
    _, train_acc = evaluate(run.model, *data.train)
    return {"diverged": False, "history": run.history, "train_acc": train_acc, "val_acc": run.history.best_val_acc,
            "test_acc": test_acc, "seconds": seconds, "parameters": count_parameters(run.model), "reused": reused}


def reuse_saved_run(settings: MLPSettings, precision: str, data, models_dir: Path) -> dict | None:
    """models/mlp.pt, when 03 trained it with exactly these settings and precision and it ran every epoch
    (so stopping early could not have made a difference): the same run again would print the same numbers."""
    path = Path(models_dir) / CHECKPOINT
    if not path.exists():
        return None
    try:
        model, checkpoint = load_model(path, "03_train_model.py")
    except LearnerError:
        return None
    unstoppable = replace(settings, early_stopping_patience=None).as_record()
    saved = {**checkpoint.get("settings", {}), "early_stopping_patience": None}
    if (saved != unstoppable or checkpoint.get("precision") != precision
            or checkpoint["metrics"]["epochs_run"] != settings.epochs):
        return None
    history = History([EpochStats(**epoch) for epoch in checkpoint["history"]], checkpoint["metrics"]["best_epoch"],
                      checkpoint["metrics"]["best_val_acc"], "finished")
    run = TrainedRun(model.to(data.train[0].device), settings, history, precision)
    return measured(run, data, checkpoint["train_seconds"], reused=True)


def run_variant(settings: MLPSettings, data, device, precision, models_dir: Path) -> dict:
    """Train one variant without early stopping (every variant gets all its epochs) and log it."""
    try:
        run = train_mlp(settings, data, device, precision)
    except DivergedError as why:
        say(f"stopped: {why}")
        return {"diverged": True, "history": why.history}
    result = measured(run, data, run.history.train_seconds)
    log_experiment(models_dir, "03_train_model.py", settings.as_record(), precision, run.history.epochs_run,
                   run.history.best_val_acc, result["test_acc"], result["parameters"], result["seconds"])
    return result


def print_table(results: dict) -> None:
    """One row per variant: the accuracies, the gap between training and validation, the cost."""
    width = max(map(len, results))
    print(f"\n{'variant':<{width}} {'train acc':>9} {'val acc':>8} {'gap':>5} {'test acc':>8} {'epochs':>6} "
          f"{'seconds':>7} {'params':>8}")
    for label, r in results.items():
        if r["diverged"]:
            print(f"{label:<{width}} {'diverged, stopped':>28}")
            continue
        gap = (r["train_acc"] - r["val_acc"]) * 100
        seconds = f"{r['seconds']:.1f}" + ("*" if r["reused"] else "")
        print(f"{label:<{width}} {r['train_acc']:>9.2%} {r['val_acc']:>8.2%} {gap:>5.2f} {r['test_acc']:>8.2%} "
              f"{r['history'].epochs_run:>6} {seconds:>7} {r['parameters']:>8,}")
    say("train acc: the kept weights on all training images, dropout off (higher than the epoch averages printed "
        "while training); val acc: the best epoch's, which chose the weights kept; gap = train acc - val acc, in "
        "percentage points; test acc is for the record only, never for choosing"
        + ("; *: read from models/mlp.pt, not trained again" if any(r.get("reused") for r in results.values())
           else ""))


def run_experiment(name: str, settings: MLPSettings, data, device, precision, out_dir, models_dir,
                   done: dict | None = None) -> dict:
    """Train once per variant of EXPERIMENTS[name] (and the knobs above, unchanged), print a table and draw
    one figure. `done` holds runs already made in this session (by settings), so none is trained twice."""
    done = {} if done is None else done
    results = {}
    for changes in [{}, *EXPERIMENTS[name]]:
        variant = replace(settings, **changes, early_stopping_patience=None)
        key = json.dumps(variant.as_record(), sort_keys=True)
        label = variant_label(changes)
        if key not in done:
            done[key] = (not changes and reuse_saved_run(variant, precision, data, models_dir)) or None
            if done[key] is None:
                print(f"\n-- {label} --")
                done[key] = run_variant(variant, data, device, precision, models_dir)
        results[label] = done[key]
    print(f"\n== Experiment '{name}' ==")
    print_table(results)
    figure = save_figure(plot_experiment(name, results), out_dir, f"03_experiment_{name}.png")
    return {"experiment": name, "results": results, "figures": [figure]}


def answer_key_questions(results: dict) -> dict:
    """Phase 4's three key questions and the linear model's score, answered from this run's table."""
    ran = {label: r for label, r in results.items() if not r["diverged"]}
    best = max(ran, key=lambda label: ran[label]["val_acc"])
    above = [label for label, r in ran.items() if r["test_acc"] > 0.98]
    dropout = {p: ran[variant_label({**WIDE, "dropout": p} if p else WIDE)] for p in (0.0, 0.2, 0.5)}
    linear, relu = ran[variant_label({"activation": "none"})], ran[variant_label({})]
    print("\n== Phase 4's key questions, answered by this run ==")
    say(f"1. the best combination, by validation accuracy: {best} ({ran[best]['val_acc']:.2%} validation, "
        f"{ran[best]['test_acc']:.2%} test)")
    say(f"2. above 98% on the test set with a fully-connected network: {len(above)} of {len(ran)} variants"
        + (": " + "; ".join(f"{label} ({ran[label]['test_acc']:.2%})" for label in above) if above else ""))
    say("3. dropout on the 512-256 network, training accuracy minus validation accuracy: "
        + ", ".join(f"{(r['train_acc'] - r['val_acc']) * 100:.2f} points at {p:g}" for p, r in dropout.items())
        + "; validation accuracy " + ", ".join(f"{r['val_acc']:.2%}" for r in dropout.values()))
    say(f"without an activation (a linear model): {linear['test_acc']:.2%} on the test set, "
        f"{(relu['test_acc'] - linear['test_acc']) * 100:.1f} points below ReLU, far above the 10% of guessing")
    return {"best": best, "above_98": above, "dropout": dropout, "linear": linear}


def run_all_experiments(settings: MLPSettings, data, device, precision, out_dir, models_dir) -> dict:
    """Every experiment in turn, each distinct variant trained once; one table of them all, and the answers."""
    done, results, figures = {}, {}, []
    for name in EXPERIMENTS:
        experiment = run_experiment(name, settings, data, device, precision, out_dir, models_dir, done)
        results.update(experiment["results"])
        figures += experiment["figures"]
    print("\n== Every variant, side by side ==")
    print_table(results)
    return {"experiment": "all", "results": results, "answers": answer_key_questions(results), "figures": figures}


def plot_experiment(name: str, results: dict):
    """Training loss and validation error per epoch, one line per variant, both on log scales."""
    fig, (loss_ax, err_ax) = plt.subplots(1, 2, figsize=(12, 4.2), layout="constrained")
    colours = variant_colors(results, UNCHANGED)  # 03's own settings in the MLP's orange
    for label, r in results.items():
        history, colour = r["history"], colours[label]
        if history is None or not history.epochs:
            continue  # diverged before its first epoch ended: nothing to draw
        shown_as = "03's settings, unchanged" if label == UNCHANGED else label
        style, shown_as = ("x--", f"{shown_as} (diverged, stopped)") if r["diverged"] else ("o-", shown_as)
        loss_ax.plot(history.column("epoch"), history.column("train_loss"), style, color=colour, label=shown_as)
        if not r["diverged"]:  # the gap between the two losses is what overfitting looks like
            loss_ax.plot(history.column("epoch"), history.column("val_loss"), ":", color=colour, lw=1.3)
        err_ax.plot(history.column("epoch"), [(1 - a) * 100 for a in history.column("val_acc")], style, color=colour,
                    label=shown_as)
    log_scale(loss_ax)
    loss_ax.set_ylabel("loss, log scale: training solid (dropout\non while measured), validation dotted")
    log_scale(err_ax)
    err_ax.set_ylabel("validation error, % wrong (log scale)")
    for ax in (loss_ax, err_ax):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    diverged = any(r["diverged"] for r in results.values())
    fig.suptitle(f"Experiment '{name}': each line is 03's settings (the knobs at the top of 03_train_model.py) "
                 "with the change its label names\nlower is better in both panels"
                 + ("; x: a run that diverged, up to its last finished epoch" if diverged else ""))
    return fig


# --- The story --------------------------------------------------------------------------------
def main(settings: MLPSettings | None = None, experiment: str | None = None, out_dir: Path = VIS_DIR,
         models_dir: Path = MODELS_DIR, data_dir: Path = DATA_DIR) -> dict:
    settings = settings or settings_from_knobs()
    device, precision, data = start_training(models_dir, out_dir, data_dir)
    if experiment == "all":
        result = run_all_experiments(settings, data, device, precision, out_dir, models_dir)
    elif experiment:
        result = run_experiment(experiment, settings, data, device, precision, out_dir, models_dir)
    if experiment:
        print_best_runs(models_dir, "03_train_model.py", settings.as_record())
        return result
    result = train_once(settings, data, device, precision, out_dir, models_dir)
    print("\nNext: python 03b_backprop_by_hand.py (backpropagation written out), then python 04_improved_model.py")
    return result


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--experiment", choices=[*EXPERIMENTS, "all"],
                        help="train the variations of one knob (no early stopping) and compare them in a table and "
                             "a figure; all: every experiment, then Phase 4's key questions answered")
    return parser.parse_args()


if __name__ == "__main__":
    with friendly_errors():
        main(experiment=parse_args().experiment)
