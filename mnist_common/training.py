"""Training: the settings a run is made of, the training loop, evaluation, and the two recipes.

The loop itself, `train_one_epoch`, is Phase 3's lesson in a dozen lines: predict, measure the
error, backpropagate, step downhill. `fit` wraps it with validation after every epoch, early
stopping, Ctrl-C and a guard against runs that blow up. `train_mlp` and `train_cnn` are the
recipes of 03_train_model.py and 04_improved_model.py, so benchmarks and tests can run
exactly what the scripts run.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field, fields

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .augment import random_affine
from .data import MnistSplits, batches, count_batches, load_mnist
from .networks import ACTIVATIONS, NUM_CLASSES, SimpleNN, build_model
from .runtime import (
    LearnerError,
    autocast,
    check_knob,
    ensure_writable,
    is_number,
    is_whole,
    pick_device,
    pick_precision,
    set_seed,
)

PROGRESS_EVERY = 50  # update the progress bar (and check the loss) every N batches
BLOW_UP_CHECKS = 3  # this many checks in a row with the loss above its starting value: diverged
AT_CHANCE = 2 / NUM_CLASSES  # validation accuracy at or below this is no better than guessing
OVERFIT_GAP = 0.015  # overfitting: training accuracy ends more than this ahead of validation accuracy,
OVERFIT_LOSS_RISE = 1.2  # and validation loss ends at least this many times its lowest, epochs after it
EVAL_BATCH = 500  # images per forward pass when evaluating: large, but cache-friendly


# ---------------------------------------------------------------------------------------
# Settings: the UPPERCASE knobs of a training script, gathered into one checked record.
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class TrainingSettings:
    """What every training run needs. Field names are the script's constants, in lower case."""

    epochs: int
    batch_size: int
    learning_rate: float
    seed: int
    early_stopping_patience: int | None = None
    label_smoothing: float = 0.0  # share of each target spread evenly over all classes (0 = plain one-hot)

    def __post_init__(self):
        for f in fields(self):
            problem = self.problem_with(f.name, getattr(self, f.name))
            check_knob(f.name.upper(), getattr(self, f.name), problem is None, problem)

    def problem_with(self, name: str, value) -> str | None:
        """What is wrong with one setting, in words, or None when it is fine."""
        if name in ("epochs", "batch_size"):
            return None if is_whole(value) and value >= 1 else "use a whole number of at least 1"
        if name == "learning_rate":
            return None if is_number(value) and value > 0 else "use a number above 0, such as 0.001"
        if name == "seed":
            return None if is_whole(value) else "use a whole number"
        if name == "label_smoothing":
            return None if is_number(value) and 0 <= value < 1 else "use a number from 0 up to (not including) 1"
        if name == "early_stopping_patience":
            return None if value is None or (is_whole(value) and value >= 1) else \
                "use a whole number of at least 1, or None to never stop early"
        return None

    def as_record(self) -> dict:
        """Plain values (lists, not tuples) for checkpoints and the experiment log."""
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}


@dataclass(frozen=True, kw_only=True)
class MLPSettings(TrainingSettings):
    """03_train_model.py's knobs: Phase 2's network and how to train it."""

    optimizer: str
    hidden_sizes: tuple[int, ...]
    activation: str
    dropout: float
    batch_norm: bool
    weight_decay: float

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "hidden_sizes", tuple(self.hidden_sizes))  # frozen: a list could change

    def problem_with(self, name: str, value) -> str | None:
        if name == "optimizer":
            return None if value in OPTIMIZERS else f"choose one of {', '.join(map(repr, OPTIMIZERS))}"
        if name == "hidden_sizes":
            ok = isinstance(value, (list, tuple)) and all(is_whole(size) and size >= 1 for size in value)
            return None if ok else "use a list of whole numbers of at least 1, such as [128] or [512, 256]"
        if name == "activation":
            return None if value in ACTIVATIONS else f"choose one of {', '.join(map(repr, ACTIVATIONS))}"
        if name == "dropout":
            return None if is_number(value) and 0 <= value < 1 else "use a number from 0 up to (not including) 1"
        if name == "batch_norm":
            return None if isinstance(value, bool) else "use True or False"
        if name == "weight_decay":
            return None if is_number(value) and value >= 0 else "use a number of at least 0, such as 0.0001"
        return super().problem_with(name, value)


@dataclass(frozen=True, kw_only=True)
class CNNSettings(TrainingSettings):
    """04_improved_model.py's knobs. `learning_rate` is the peak of the one-cycle schedule."""

    dropout: float

    def problem_with(self, name: str, value) -> str | None:
        if name == "dropout":
            return None if is_number(value) and 0 <= value < 1 else "use a number from 0 up to (not including) 1"
        return super().problem_with(name, value)


@dataclass(frozen=True, kw_only=True)
class AugmentedCNNSettings(CNNSettings):
    """06_beyond_99.py's knobs: DeepCNN, trained on randomly turned, resized, moved (and mirrored) images."""

    rotation: float  # degrees, either way
    scale: float  # 0.1 = from 90% to 110% of the size
    shift: float  # pixels, in each direction
    flip: bool = False  # mirror half the images left to right (clothes: yes; digits: a mirrored 7 is no 7)
    widths: tuple = (32, 64, 64, 128)  # DeepCNN's channels, convolution by convolution

    def problem_with(self, name: str, value) -> str | None:
        if name == "flip":
            return None if isinstance(value, bool) else "use True or False"
        if name == "widths":
            ok = isinstance(value, (list, tuple)) and len(value) == 4 and all(is_whole(w) and w >= 1 for w in value)
            return None if ok else "use four whole numbers of at least 1, such as (32, 64, 64, 128)"
        limits = {"rotation": 90, "scale": 0.5, "shift": 8}
        if name in limits:
            ok = is_number(value) and 0 <= value <= limits[name]
            return None if ok else f"use a number from 0 to {limits[name]}"
        return super().problem_with(name, value)


# ---------------------------------------------------------------------------------------
# Optimizers and schedules.
# ---------------------------------------------------------------------------------------
OPTIMIZERS = ("adam", "sgd")


def make_optimizer(name: str, model: nn.Module, learning_rate: float, weight_decay: float = 0.0):
    """Adam (a step size of its own for every weight) or SGD with momentum 0.9.

    weight_decay adds weight_decay * w to each weight's gradient: L2 regularization, which
    pulls every weight gently towards 0 (see 03b_backprop_by_hand.py's experiment).
    """
    # fused=True updates every weight in one pass: the optimizer step runs ~4x faster on CPU and GPU
    fused = next(model.parameters()).device.type in ("cpu", "cuda")
    if name == "adam":
        return torch.optim.Adam(model.parameters(), lr=learning_rate, weight_decay=weight_decay, fused=fused)
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=learning_rate, momentum=0.9, weight_decay=weight_decay,
                               fused=fused)
    raise LearnerError(f"unknown OPTIMIZER {name!r}: choose one of {', '.join(map(repr, OPTIMIZERS))}")


def one_cycle(optimizer, peak_learning_rate: float, epochs: int, steps_per_epoch: int):
    """The learning rate climbs to its peak, then glides down to almost 0 (stepped every batch).

    Large steps early cover ground fast; tiny steps at the end settle into a good minimum.
    """
    return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=peak_learning_rate, epochs=epochs,
                                               steps_per_epoch=steps_per_epoch)


# ---------------------------------------------------------------------------------------
# The training loop: the heart of Phase 3.
# ---------------------------------------------------------------------------------------
class DivergedError(LearnerError):
    """The loss blew up (NaN, infinite, or far above where it started): the weights are garbage.

    `history` holds the epochs that finished before it happened (empty if none did).
    """

    history = None


class LossWatch:
    """Watches the loss every PROGRESS_EVERY steps and raises DivergedError when it blows up.

    A healthy run's loss falls below its starting value (about ln 10 = 2.30 for ten classes)
    within a few dozen steps and stays below; a learning rate far too high sends it above,
    and keeps it there, or to infinity.
    """

    def __init__(self, watch_rise: bool = True):
        self.start = None if watch_rise else math.inf  # the loss of the run's very first batch, before any step
        self.strikes = 0

    def first(self, loss: float) -> None:
        if self.start is None:
            self.start = loss

    def check(self, window_loss: float, step: int) -> None:
        if not math.isfinite(window_loss):
            raise DivergedError(f"the loss became {window_loss} at step {step}")
        self.strikes = self.strikes + 1 if window_loss > self.start else 0
        if self.strikes >= BLOW_UP_CHECKS:
            raise DivergedError(f"the loss rose to {window_loss:.3g} by step {step}, above its starting "
                                f"value {self.start:.2f}, and stayed there")


def train_one_epoch(model, images, labels, optimizer, *, batch_size, generator, precision="fp32",
                    scheduler=None, augment=None, label_smoothing=0.0, watch: LossWatch | None = None,
                    description="training"):
    """One pass over the training data in shuffled mini-batches; returns (mean loss, accuracy)."""
    model.train()  # dropout and batch norm behave as in training
    # fit() passes one watch for the whole run; called on its own, an epoch only checks for NaN,
    # since its first batch is no longer the run's starting point
    watch = watch or LossWatch(watch_rise=False)
    device = labels.device
    total_loss = torch.zeros((), device=device)
    window_loss, window_steps = torch.zeros((), device=device), 0
    correct = torch.zeros((), device=device, dtype=torch.long)
    steps = count_batches(len(labels), batch_size)
    bar = tqdm(batches(images, labels, batch_size=batch_size, shuffle=True, generator=generator),
               total=steps, desc=description, leave=False, unit="batch", disable=None)
    for step, (x, y) in enumerate(bar, start=1):
        if augment is not None:
            x = augment(x)  # a fresh random variation of every image, every time it is seen
        with autocast(device, precision):
            logits = model(x)  # 1. predict: (B, 10) scores
            loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing)  # 2. how wrong, batch average
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # 3. backpropagation: each weight's share of the error
        optimizer.step()  # 4. gradient descent: nudge every weight downhill
        if scheduler is not None:
            scheduler.step()
        if step == 1:
            watch.first(loss.item())
        total_loss += loss.detach() * len(y)
        window_loss += loss.detach()
        window_steps += 1
        correct += (logits.argmax(1) == y).sum()
        if step % PROGRESS_EVERY == 0 or step == steps:
            seen = min(step * batch_size, len(labels))
            watch.check(window_loss.item() / window_steps, step)  # one sync with the device every N steps
            window_loss, window_steps = torch.zeros((), device=device), 0
            bar.set_postfix(loss=f"{total_loss.item() / seen:.4f}", acc=f"{correct.item() / seen:.2%}")
    return total_loss.item() / len(labels), correct.item() / len(labels)


@torch.no_grad()
def predict_logits(model, images, batch_size: int = EVAL_BATCH) -> torch.Tensor:
    """The model's (N, 10) scores for a whole split: eval mode, no autograd, always in fp32.

    Evaluating in full precision everywhere means an accuracy never depends on whether the
    run trained in bf16: the same weights give the same answers on every machine.
    """
    model.eval()  # dropout off, batch norm uses its running averages
    return torch.cat([model(x).float() for (x,) in batches(images, batch_size=batch_size)])  # (N, 10)


def evaluate(model, images, labels) -> tuple[float, float]:
    """(mean cross-entropy loss, accuracy) on a whole split, in fp32."""
    logits = predict_logits(model, images)
    return F.cross_entropy(logits, labels).item(), (logits.argmax(1) == labels).float().mean().item()


# ---------------------------------------------------------------------------------------
# fit: epochs, validation, early stopping, Ctrl-C, and the history of it all.
# ---------------------------------------------------------------------------------------
@dataclass
class EpochStats:
    """One epoch's numbers. Training figures are averaged over the epoch, while the network changes."""

    epoch: int
    train_loss: float
    train_acc: float
    val_loss: float
    val_acc: float
    seconds: float


@dataclass
class History:
    """Every epoch of a run, and which one was kept."""

    epochs: list[EpochStats] = field(default_factory=list)
    best_epoch: int = 0
    best_val_acc: float = 0.0
    stop_reason: str = "finished"  # "finished", "early stopping" or "Ctrl-C"

    def column(self, name: str) -> list[float]:
        """One number per epoch, for example history.column("val_acc")."""
        return [getattr(stats, name) for stats in self.epochs]

    @property
    def epochs_run(self) -> int:
        return len(self.epochs)

    @property
    def train_seconds(self) -> float:
        return sum(self.column("seconds"))


def is_overfitting(history: History) -> bool:
    """What overfitting looks like in the curves: validation loss has climbed well above its lowest
    (OVERFIT_LOSS_RISE) at least two epochs after it, while training accuracy ended well ahead of
    validation accuracy (OVERFIT_GAP). A run at chance is not overfitting, whatever its curves do."""
    if history.epochs_run < 3:
        return False
    last, lowest = history.epochs[-1], min(history.epochs, key=lambda e: e.val_loss)
    return (last.train_acc - last.val_acc > OVERFIT_GAP and last.val_acc > AT_CHANCE
            and last.val_loss >= OVERFIT_LOSS_RISE * lowest.val_loss and last.epoch - lowest.epoch >= 2)


def overfitting_note(history: History) -> str | None:
    """One sentence for after the epoch table when the curves show overfitting, with the numbers."""
    if not is_overfitting(history):
        return None
    last, lowest = history.epochs[-1], min(history.epochs, key=lambda e: e.val_loss)
    rise = last.val_loss / lowest.val_loss - 1
    return (f"overfitting from epoch {lowest.epoch} on: training loss kept falling ({lowest.train_loss:.4f} -> "
            f"{last.train_loss:.4f}) while validation loss rose {rise:.0%} above its lowest ({lowest.val_loss:.4f} "
            f"-> {last.val_loss:.4f}), and training accuracy ended {(last.train_acc - last.val_acc) * 100:.2f} points "
            f"ahead of validation; the kept weights are epoch {history.best_epoch}'s. DROPOUT, WEIGHT_DECAY or "
            "fewer EPOCHS fight it")


def fit(model, data: MnistSplits, optimizer, settings: TrainingSettings, precision="fp32", scheduler=None,
        augment=None) -> History:
    """Train for up to settings.epochs, validating after each; keep the weights of the best epoch.

    Stops early after settings.early_stopping_patience epochs without a better validation
    accuracy, and on Ctrl-C (keeping the best weights so far). A run whose loss blows up, or
    that is no better than guessing after an epoch, raises DivergedError naming the learning rate.
    """
    history, best_state = History(), None
    generator, watch = torch.Generator().manual_seed(settings.seed), LossWatch()
    print(f"{'epoch':>5}  {'train loss':>10} {'train acc':>9}  {'val loss':>8} {'val acc':>8}  {'seconds':>7}")
    for epoch in range(1, settings.epochs + 1):
        start = time.perf_counter()
        try:
            train_loss, train_acc = train_one_epoch(
                model, *data.train, optimizer, batch_size=settings.batch_size, generator=generator,
                precision=precision, scheduler=scheduler, augment=augment, label_smoothing=settings.label_smoothing,
                watch=watch, description=f"epoch {epoch}/{settings.epochs}")
            val_loss, val_acc = evaluate(model, *data.val)
        except KeyboardInterrupt:
            if best_state is None:
                raise  # not one epoch finished: nothing worth keeping
            history.stop_reason = "Ctrl-C"
            print(f"\nCtrl-C: stopping; keeping the best weights so far (epoch {history.best_epoch})")
            break
        except DivergedError as why:
            raise _named(why, epoch, settings, history) from None
        if val_acc <= AT_CHANCE:
            raise _named(f"validation accuracy is {val_acc:.1%}, no better than guessing", epoch, settings, history)
        history.epochs.append(EpochStats(epoch, train_loss, train_acc, val_loss, val_acc,
                                         time.perf_counter() - start))
        improved = val_acc > history.best_val_acc
        print(f"{epoch:>5}  {train_loss:>10.4f} {train_acc:>9.2%}  {val_loss:>8.4f} {val_acc:>8.2%}  "
              f"{history.epochs[-1].seconds:>7.1f}{'  *best' if improved else ''}")
        if improved:
            history.best_epoch, history.best_val_acc = epoch, val_acc
            best_state = copy.deepcopy(model.state_dict())
        patience = settings.early_stopping_patience
        if patience and epoch - history.best_epoch >= patience:
            history.stop_reason = "early stopping"
            print(f"early stopping: no better validation accuracy for {patience} epochs")
            break
    if best_state is not None:
        model.load_state_dict(best_state)  # the best epoch's weights, not the last epoch's
    return history


def _named(why, epoch: int, settings: TrainingSettings, history: History) -> DivergedError:
    """The one line a learner sees, carrying the epochs that did finish (for a figure)."""
    lr = settings.learning_rate
    error = DivergedError(f"the run diverged in epoch {epoch}: {why}. LEARNING_RATE = {lr:g} is too high "
                          f"for this network; try {lr / 10:g}. Nothing was saved.")
    error.history = history
    return error


def start_training(models_dir, out_dir, data_dir, fastest: bool = False) -> tuple[torch.device, str, MnistSplits]:
    """A training script's first steps: prove the output folders writable (before any work, not
    after it), choose device and precision (saying why; `fastest`: see pick_precision), and put
    the data on the device."""
    ensure_writable(models_dir, "checkpoints")
    ensure_writable(out_dir, "figures")
    device = pick_device()
    precision = pick_precision(device, fastest=fastest)
    return device, precision, load_mnist(data_dir=data_dir).to(device)


# ---------------------------------------------------------------------------------------
# The recipes of 03 and 04, so benchmarks and tests run exactly what the scripts run.
# ---------------------------------------------------------------------------------------
@dataclass
class TrainedRun:
    """A trained model with everything that made it and everything measured on it."""

    model: nn.Module
    settings: TrainingSettings
    history: History
    precision: str
    test_loss: float = math.nan  # filled in once, at the very end, by the script
    test_acc: float = math.nan


def train_mlp(settings: MLPSettings, data: MnistSplits, device, precision: str) -> TrainedRun:
    """03's recipe: Phase 2's network with these settings, trained by `fit`."""
    set_seed(settings.seed)  # the same starting weights for the same seed
    model = SimpleNN(settings.hidden_sizes, settings.activation, settings.dropout, settings.batch_norm).to(device)
    optimizer = make_optimizer(settings.optimizer, model, settings.learning_rate, settings.weight_decay)
    return TrainedRun(model, settings, fit(model, data, optimizer, settings, precision), precision)


def train_cnn(settings: CNNSettings, data: MnistSplits, device, precision: str) -> TrainedRun:
    """04's recipe, and 06's: Adam with a one-cycle schedule that spans all the epochs.

    CNNSettings train Phase 5's CNN; AugmentedCNNSettings train DeepCNN on digits that are
    randomly turned, resized and moved, batch by batch, on the training device. Both share the
    same speed-ups: channels-last weights, bf16 where native, fused Adam, data kept in memory.
    """
    set_seed(settings.seed)
    augmented = isinstance(settings, AugmentedCNNSettings)
    arch = {"name": "DeepCNN" if augmented else "CNN", "dropout": settings.dropout}
    if augmented:
        arch["widths"] = list(settings.widths)
    model = build_model(arch).to(device)
    optimizer = make_optimizer("adam", model, settings.learning_rate)
    scheduler = one_cycle(optimizer, settings.learning_rate, settings.epochs,
                          count_batches(len(data.train[1]), settings.batch_size))
    augment = random_affine(settings.rotation, settings.scale, settings.shift, -data.mean / data.std,
                            settings.flip) if augmented else None
    history = fit(model, data, optimizer, settings, precision, scheduler, augment)
    return TrainedRun(model, settings, history, precision)
