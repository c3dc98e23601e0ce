"""Next step: how fast can it learn? A measured ladder from the conventional recipe to 99% in seconds.

04's CNN passes 99% in about half a minute; the conventional recipe (pytorch/examples' MNIST: a
DataLoader, Adadelta, a learning rate cut by 0.7 every epoch, batch 64) takes minutes; the
published record is 99% in under a second on a laptop GPU. This script climbs from the
conventional recipe towards that record on this machine's CPU, changing ONE thing per rung, and
times every rung to 99.0% validation accuracy. Validation is checked CHECKS_PER_EPOCH = 4 times
per epoch, and the clock stops while it checks, so only training is timed; the test set is used
once per rung, at the end. Then it asks where the time goes (torch.profiler's busiest operators,
and the arithmetic of an epoch against this CPU's estimated peak), and runs the fastest recipe
with five seeds, so that no lucky seed flatters it.

The rungs, each keeping every change above it:
  0. the conventional recipe: ConventionalCNN (mnist_common/speed.py), a DataLoader whose Dataset
     converts and normalizes each image on its own as it is fetched, Adadelta (learning rate 1.0)
     cut by 0.7 after every epoch, batch 64
  1. tensors in memory: the whole split normalized once (mnist_common/data.py, `load_mnist`), each
     batch one slice of it (`batches`), as every other script trains
  2. a cheaper network: FastCNN (mnist_common/speed.py) pools right after its first convolution,
     with few channels where the image is large: a fifteenth of the arithmetic per image
  3. batch FAST_BATCH = 384, Adam with betas (0.7, 0.9) and a one-cycle schedule (tuomaso/train_mnist_fast's
     choices, but its batch of 256 made a 2-core CPU's steps too small to keep both cores busy)
  4. channels_last: each pixel's channels side by side in memory, the layout fast kernels want
  5. bf16 autocast (mnist_common/runtime.py, `autocast`), where the CPU computes bf16 natively;
     elsewhere the rung is skipped and says why (MNIST_PRECISION=bf16 measures it anyway)
  6. threads matched to the physical cores
  7. torch.compile (its compile time shown apart; skipped where it is unavailable, and left out
     of the five-seed recipe where it does not help)
The conventional recipe stops at 99% instead of finishing its 14 epochs, and rung 1, which trains
on exactly its batches, is timed over half an epoch and charged rung 0's steps (`retrace`).

Run:     python 08_speedrun.py    (make speedrun; about 7.5 minutes on a 2-core CPU, 5 of them in rung 0,
                                   which trains the conventional network for 4-5 epochs; rung 1 follows
                                   the same steps, so it is timed over TENSORS_TIMED_EPOCHS only)
Writes:  visualizations/08_speed_ladder.png
"""

import contextlib
import logging
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from matplotlib.patches import Patch
from PIL import Image
from torch.profiler import ProfilerActivity, profile
from torchvision import transforms
from tqdm import tqdm

from mnist_common import (
    DATA_DIR,
    VIS_DIR,
    ConventionalCNN,
    FastCNN,
    MnistSplits,
    autocast,
    batches,
    check_knob,
    count_batches,
    count_multiply_adds,
    cpu_bf16_feature,
    cpu_has_native_bf16,
    cpu_name,
    ensure_writable,
    evaluate,
    friendly_errors,
    is_list_of,
    is_number,
    is_whole,
    load_mnist,
    log_scale,
    normalize,
    parse_no_options,
    physical_cores,
    pick_precision,
    plural,
    save_figure,
    say,
    set_seed,
    this_cpu_peak,
)
from mnist_common.speed import TRAIN_PASSES

# --- Hyperparameters (edit and re-run) ------------------------------------------------------
TARGET = 0.99  # validation accuracy that ends each rung's race (0.98-0.992; 99.0% is the classic bar)
CHECKS_PER_EPOCH = 4  # validation checks per epoch; a rung's time is that of its first check at TARGET (1-10)
MAX_EPOCHS = 8  # a rung still short of TARGET after this many epochs is reported as not reaching it (1-14)
TENSORS_TIMED_EPOCHS = 0.5  # rung 1 retraces rung 0 step for step, so it is timed over this many epochs only (0.25-8)
ONE_CYCLE_EPOCHS = 2  # length of the one-cycle schedule from rung 3 on; it also caps those rungs (1-3)
CONVENTIONAL_BATCH = 64  # images per step in rungs 0-2, as pytorch/examples (32-128)
ADADELTA_LR = 1.0  # rungs 0-2: Adadelta's learning rate, as pytorch/examples (0.5-2)
STEP_GAMMA = 0.7  # rungs 0-2: the learning rate is multiplied by this after every epoch (0.5-0.9)
FAST_BATCH = 384  # images per step from rung 3 on (128-512): fewer, larger steps use the cores better
PEAK_LR = 0.012  # from rung 3 on: Adam's learning rate at the peak of the one-cycle schedule (0.003-0.02)
ADAM_BETAS = (0.7, 0.9)  # Adam's two memories (defaults 0.9, 0.999): shorter ones follow a short run's fast changes
SEED = 0  # starting weights and batch order of every rung of the ladder (any integer)
SEEDS = [0, 1, 2, 3, 4]  # the fastest recipe is run once per seed, to show it was not luck (3-10 seeds)
PROFILE_STEPS = 10  # training steps profiled for the first and the fastest rung, after 2 unprofiled ones (3-30)
TOP_OPERATORS = 8  # rows of each profile (5-20)

RUNGS = ["conventional", "tensors", "small_net", "one_cycle", "channels_last", "bf16", "threads", "compile"]
NETWORKS = {"conventional": ConventionalCNN, "fast": FastCNN}
WARM_UP_STEPS = 2  # steps before a profiled window: the first steps pay one-off costs
FIGURE = "08_speed_ladder.png"


@dataclass(frozen=True, kw_only=True)
class RaceSettings:
    """The knobs above that every rung shares, gathered into one checked record."""

    target: float = TARGET
    checks_per_epoch: int = CHECKS_PER_EPOCH
    max_epochs: float = MAX_EPOCHS
    one_cycle_epochs: float = ONE_CYCLE_EPOCHS
    conventional_batch: int = CONVENTIONAL_BATCH
    adadelta_lr: float = ADADELTA_LR
    step_gamma: float = STEP_GAMMA
    fast_batch: int = FAST_BATCH
    peak_lr: float = PEAK_LR
    seed: int = SEED

    def __post_init__(self):
        limits = {  # name: (check, what it accepts)
            "target": (is_number(self.target, 0.1, 1.0), "use a fraction from 0.1 to 1.0, such as 0.99"),
            "checks_per_epoch": (is_whole(self.checks_per_epoch, 1, 100), "use a whole number from 1 to 100"),
            "max_epochs": (is_number(self.max_epochs, 0.01, 100), "use a number of epochs from 0.01 to 100"),
            "one_cycle_epochs": (is_number(self.one_cycle_epochs, 0.01, 100),
                                 "use a number of epochs from 0.01 to 100"),
            "conventional_batch": (is_whole(self.conventional_batch, 1), "use a whole number of at least 1"),
            "adadelta_lr": (is_number(self.adadelta_lr) and self.adadelta_lr > 0, "use a number above 0"),
            "step_gamma": (is_number(self.step_gamma, 0.01, 1.0), "use a number from 0.01 to 1.0"),
            "fast_batch": (is_whole(self.fast_batch, 1), "use a whole number of at least 1"),
            "peak_lr": (is_number(self.peak_lr) and self.peak_lr > 0, "use a number above 0, such as 0.003"),
            "seed": (is_whole(self.seed), "use a whole number"),
        }
        for f in fields(self):
            ok, accepts = limits[f.name]
            check_knob(f.name.upper(), getattr(self, f.name), ok, accepts)


# --- The rungs -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rung:
    """One rung of the ladder: everything a training run is made of, and the one change it adds."""

    key: str  # its name in RUNGS
    change: str  # what it changes, in words (the figure's label)
    network: str = "conventional"  # a key of NETWORKS
    data_path: str = "loader"  # "loader": a DataLoader over a Dataset; "tensors": slices of tensors in memory
    optimizer: str = "adadelta"  # "adadelta" with a step each epoch, or "adam" with a one-cycle schedule
    batch_size: int = CONVENTIONAL_BATCH
    precision: str = "fp32"  # "fp32" or "bf16" (mixed precision: matrix products in bf16)
    channels_last: bool = False
    threads: int | None = None  # None: PyTorch's default
    compiled: bool = False
    skipped: str | None = None  # why this rung is not run on this machine, or None


def build_ladder(settings: RaceSettings, precision: str, cores: int) -> list[Rung]:
    """Every rung, each the one above it with one change. `precision` is what bf16 rungs train in:
    "fp32" where the CPU has no native bf16 (then the bf16 rung is skipped, and says why)."""
    start = Rung("conventional", f"conventional: DataLoader, Adadelta, batch {settings.conventional_batch}",
                 batch_size=settings.conventional_batch)
    bf16_note = "" if cpu_has_native_bf16() else " (emulated)"
    changes = [
        ("tensors", "tensors in memory, no DataLoader", {"data_path": "tensors"}),
        ("small_net", "cheaper network: pool early, few channels", {"network": "fast"}),
        ("one_cycle", f"batch {settings.fast_batch}, Adam, one-cycle schedule",
         {"batch_size": settings.fast_batch, "optimizer": "adam"}),
        ("channels_last", "channels_last memory format", {"channels_last": True}),
        ("bf16", f"bf16 autocast{bf16_note}", {"precision": "bf16"}),
        ("threads", f"threads = {cores} physical cores", {"threads": cores}),
        ("compile", "torch.compile", {"compiled": True}),
    ]
    ladder = [start]
    for key, change, updates in changes:
        rung = replace(ladder[-1], key=key, change=change, skipped=None, **updates)
        if key == "bf16" and precision != "bf16":
            why = ("MNIST_PRECISION=fp32 asks for full precision" if cpu_has_native_bf16() else
                   "this CPU has no native bf16 (AMX or AVX512-BF16), and emulated bf16 is slower than fp32; "
                   "MNIST_PRECISION=bf16 measures it anyway")
            rung = replace(rung, precision="fp32", skipped=why)
        ladder.append(rung)
    return ladder


# --- The two data paths ---------------------------------------------------------------------------
@dataclass
class RaceData:
    """The splits as every script uses them, and the raw training images the DataLoader reads."""

    splits: MnistSplits  # normalized float tensors (N, 1, 28, 28), labels (N,)
    raw_train: torch.Tensor  # the same training images as uint8 (N, 28, 28), values 0-255


class PerSampleImages(torch.utils.data.Dataset):
    """The conventional data path: every image becomes a picture, then a tensor, then normalized,
    one at a time, each time it is fetched (torchvision's ToTensor and Normalize, as the recipe does)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, mean: float, std: float):
        self.images, self.labels = images.numpy(), labels
        self.transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((mean,), (std,))])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        picture = Image.fromarray(self.images[index])  # what torchvision's MNIST dataset hands out
        return self.transform(picture), self.labels[index]  # (1, 28, 28) float, and its label


class ShuffledOrder(torch.utils.data.Sampler):
    """shuffle=True, drawn the way mnist_common's `batches` draws it: a fresh permutation of all the
    images every epoch, from `generator`. With the same seed, rungs 0 and 1 then train on identical
    batches, so their validation checks match and only their speed differs."""

    def __init__(self, count: int, generator: torch.Generator):
        self.count, self.generator = count, generator

    def __len__(self) -> int:
        return self.count

    def __iter__(self):
        return iter(torch.randperm(self.count, generator=self.generator).tolist())


def load_race_data(data_dir: Path = DATA_DIR, train_size: int | None = None,
                   eval_size: int | None = None) -> RaceData:
    """MNIST's three splits (the first `train_size` and `eval_size` images of each, for a quick run)."""
    raw = load_mnist(normalized=False, data_dir=data_dir)

    def cut(pair, size):
        return pair if size is None else (pair[0][:size], pair[1][:size])

    train, val, test = cut(raw.train, train_size), cut(raw.val, eval_size), cut(raw.test, eval_size)
    splits = MnistSplits(*((normalize(x, raw.mean, raw.std), y) for x, y in (train, val, test)),
                         raw.mean, raw.std, raw.dataset)
    return RaceData(splits, train[0])


# --- Setting up and running one rung ----------------------------------------------------------------
class CompileUnavailableError(Exception):
    """torch.compile failed on this machine (no C++ compiler, an unsupported platform...)."""


@dataclass
class Setup:
    """Everything one training run of a rung needs, built fresh for each run."""

    model: torch.nn.Module  # the network; evaluated as it is, in fp32
    step_model: torch.nn.Module  # what a training step calls: the model, or its compiled version
    optimizer: torch.optim.Optimizer
    step_scheduler: object | None  # one-cycle: stepped after every batch
    epoch_scheduler: object | None  # Adadelta's StepLR: stepped after every epoch
    epoch: Callable  # epoch() -> an iterator over one epoch's shuffled (images, labels) batches
    data_kind: str  # "DataLoader" or "tensors"
    steps_per_epoch: int
    total_steps: int  # the cap: max_epochs (Adadelta) or the one-cycle schedule's length
    compile_seconds: float = 0.0


def prepare(x: torch.Tensor, rung: Rung) -> torch.Tensor:
    """A batch in the rung's memory format (a no-op when it is already in it)."""
    return x.contiguous(memory_format=torch.channels_last) if rung.channels_last else x


def compile_network(model, rung: Rung, batch_sizes: set[int]):
    """torch.compile the model, and run it once (forward and backward) for each batch size, so the
    compiling happens here, timed apart, not during the race. Returns (compiled model, seconds)."""
    start = time.perf_counter()
    # torch's C++ builder warns, on a machine without CUDA, that it found no CUDA: true, and beside the point
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    try:
        compiled = torch.compile(model)
        for size in sorted(batch_sizes):  # the last batch of an epoch may be smaller: a second shape
            x = prepare(torch.zeros(size, 1, 28, 28), rung)
            with autocast(torch.device("cpu"), rung.precision):
                loss = F.cross_entropy(compiled(x), torch.zeros(size, dtype=torch.long))
            loss.backward()
    except Exception as error:  # inductor needs a working C++ compiler; report why, in one line
        raise CompileUnavailableError(f"{type(error).__name__}: {str(error).strip().splitlines()[0][:120]}") from None
    model.zero_grad(set_to_none=True)  # the warm-up leaves no trace on the weights' gradients
    return compiled, time.perf_counter() - start


def set_up(rung: Rung, data: RaceData, settings: RaceSettings, seed: int) -> Setup:
    """The rung's network, optimizer, schedule and batches, from `seed`."""
    set_seed(seed)  # the same starting weights and batch order for the same seed
    generator = torch.Generator().manual_seed(seed)
    model = NETWORKS[rung.network]()
    if rung.channels_last:
        model = model.to(memory_format=torch.channels_last)
    images, labels = data.splits.train
    steps_per_epoch = count_batches(len(labels), rung.batch_size)
    if rung.optimizer == "adadelta":
        optimizer = torch.optim.Adadelta(model.parameters(), lr=settings.adadelta_lr)
        step_scheduler = None
        epoch_scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=settings.step_gamma)
        total_steps = max(1, round(settings.max_epochs * steps_per_epoch))
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=settings.peak_lr, betas=ADAM_BETAS, fused=True)
        total_steps = max(1, round(min(settings.one_cycle_epochs, settings.max_epochs) * steps_per_epoch))
        # cycle_momentum=False keeps Adam's betas as set (OneCycleLR would otherwise cycle the first one)
        step_scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=settings.peak_lr,
                                                             total_steps=total_steps, cycle_momentum=False)
        epoch_scheduler = None
    if rung.data_path == "loader":
        loader = torch.utils.data.DataLoader(
            PerSampleImages(data.raw_train, labels, data.splits.mean, data.splits.std), batch_size=rung.batch_size,
            sampler=ShuffledOrder(len(labels), generator),
            generator=torch.Generator().manual_seed(seed))  # for the loader's own seed, which would else be
        # drawn from the global generator and change the dropout masks

        def epoch():
            return iter(loader)
    else:
        images = prepare(images, rung)

        def epoch():
            return batches(images, labels, batch_size=rung.batch_size, shuffle=True, generator=generator)
    step_model, compile_seconds = model, 0.0
    if rung.compiled:
        sizes = {min(rung.batch_size, len(labels)), len(labels) % rung.batch_size or rung.batch_size}
        step_model, compile_seconds = compile_network(model, rung, sizes)
    return Setup(model, step_model, optimizer, step_scheduler, epoch_scheduler, epoch,
                 "DataLoader" if rung.data_path == "loader" else "tensors", steps_per_epoch, total_steps,
                 compile_seconds)


def train_step(setup: Setup, rung: Rung, x: torch.Tensor, y: torch.Tensor) -> None:
    """One step of Phase 3's loop: predict, measure the error, backpropagate, step downhill."""
    with autocast(torch.device("cpu"), rung.precision):
        loss = F.cross_entropy(setup.step_model(x), y)  # (B, 10) logits -> one number
    setup.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    setup.optimizer.step()
    if setup.step_scheduler is not None:
        setup.step_scheduler.step()


@torch.no_grad()
def observe(setup: Setup, rung: Rung, data: RaceData) -> dict:
    """What a training step really runs with, read from the objects themselves, so the label on a
    rung can be checked: the data path, the first convolution's output type and layout, threads."""
    x = prepare(data.splits.train[0][:rung.batch_size], rung)
    with autocast(torch.device("cpu"), rung.precision):
        out = setup.model.conv1(x)  # the first convolution, computed as training computes it
    layout = "channels_last" if out.is_contiguous(memory_format=torch.channels_last) and not out.is_contiguous() \
        else "contiguous"
    return {"data": setup.data_kind, "compute_dtype": str(out.dtype).removeprefix("torch."), "memory_format": layout,
            "threads": torch.get_num_threads(), "compiled": setup.step_model is not setup.model}


@contextlib.contextmanager
def quiet_native_stderr():
    """Silence what C++ code writes to stderr (file descriptor 2) meanwhile: torch.profiler's engine
    narrates its start and stop there and, on a machine without a GPU, reports its GPU probe as an
    "ERROR". Python's own errors are unaffected: they are printed after this block has ended."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@contextlib.contextmanager
def thread_count(threads: int | None):
    """Run with this many threads (None: leave PyTorch's choice), and restore the old count after."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class Check:
    """One validation check during a race."""

    epoch: float  # epochs trained so far (0.25 = a quarter of the training split)
    seconds: float  # training seconds so far (checks excluded)
    val_acc: float


@dataclass
class RaceResult:
    """One rung's race: how long it took to reach the target, and what it scored on the test set."""

    rung: Rung
    seconds: float | None = None  # training seconds to the first check at the target; None: not reached
    trained_seconds: float = 0.0  # all its training seconds (the same, when it reached the target)
    steps: int = 0
    steps_per_epoch: int = 1
    checks: list[Check] = field(default_factory=list)
    test_acc: float | None = None
    compile_seconds: float = 0.0
    observed: dict = field(default_factory=dict)
    skipped: str | None = None  # why it did not run
    estimated_steps: int | None = None  # set when `seconds` is estimated: this many steps at the speed measured

    @property
    def epochs(self) -> float:
        return self.steps / self.steps_per_epoch

    @property
    def seconds_per_epoch(self) -> float:
        return self.trained_seconds / self.epochs if self.steps else float("nan")

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.trained_seconds if self.trained_seconds else float("nan")


def check_steps(steps_per_epoch: int, checks_per_epoch: int, total_steps: int) -> set[int]:
    """The steps after which validation is checked: evenly through each epoch, and at the very end."""
    per_epoch = {max(1, round(steps_per_epoch * k / checks_per_epoch)) for k in range(1, checks_per_epoch + 1)}
    epochs = -(-total_steps // steps_per_epoch)
    steps = {e * steps_per_epoch + s for e in range(epochs) for s in per_epoch}
    return {step for step in steps if step <= total_steps} | {total_steps}


def race(rung: Rung, data: RaceData, settings: RaceSettings, seed: int, validate: Callable | None = None,
         progress: bool = True, max_steps: int | None = None) -> RaceResult:
    """Train one rung from scratch until a validation check reaches the target, or its cap (or `max_steps`).

    The clock runs while training (fetching batches included) and stops during each check, so a
    rung is not charged for how often it is checked. `validate(model) -> accuracy` replaces the
    real check (tests use it); by default it is the accuracy on the validation split, in fp32.
    """
    validate = validate or (lambda model: evaluate(model, *data.splits.val)[1])
    result = RaceResult(rung)
    with thread_count(rung.threads):
        setup = set_up(rung, data, settings, seed)
        result.compile_seconds, result.steps_per_epoch = setup.compile_seconds, setup.steps_per_epoch
        result.observed = observe(setup, rung, data)
        total_steps = min(setup.total_steps, max_steps or setup.total_steps)
        check_at = check_steps(setup.steps_per_epoch, settings.checks_per_epoch, total_steps)
        bar = tqdm(total=total_steps, desc=rung.key, unit="step", leave=False, disable=None if progress else True)
        setup.model.train()
        start = time.perf_counter()
        while result.steps < total_steps and result.seconds is None:
            for x, y in setup.epoch():
                if result.steps == 0:
                    result.observed["batch_size"] = len(y)
                train_step(setup, rung, prepare(x, rung), y)
                result.steps += 1
                bar.update()
                if result.steps in check_at:
                    result.trained_seconds += time.perf_counter() - start  # the clock stops here...
                    accuracy = validate(setup.model)
                    setup.model.train()  # evaluation switched the network to eval mode
                    result.checks.append(Check(result.epochs, result.trained_seconds, accuracy))
                    bar.set_postfix(val=f"{accuracy:.2%}")
                    if accuracy >= settings.target:
                        result.seconds = result.trained_seconds
                        break
                    start = time.perf_counter()  # ... and runs again
                if result.steps >= total_steps:
                    break
            if setup.epoch_scheduler is not None:
                setup.epoch_scheduler.step()
        bar.close()
        result.test_acc = evaluate(setup.model, *data.splits.test)[1]  # the test set, once
    return result


def retrace(rung: Rung, data: RaceData, settings: RaceSettings, reference: RaceResult, epochs: float,
            progress: bool = True) -> RaceResult:
    """Rung 1 without its minutes: it trains on exactly rung 0's batches with exactly rung 0's
    arithmetic (tests/test_08_speedrun.py checks both), so it reaches the target at the same step.
    It is timed over `epochs` only, and its time to the target is its seconds per step times
    rung 0's steps: a measured speed and a step count that is known, not guessed."""
    steps = min(reference.steps, max(1, round(epochs * reference.steps_per_epoch)))
    result = race(rung, data, settings, settings.seed, progress=progress, max_steps=steps)
    if result.seconds is None and reference.seconds is not None:  # not there yet: the rest at the speed measured
        result.seconds = result.trained_seconds / result.steps * reference.steps
        result.estimated_steps = reference.steps
    same = [c.val_acc for c in result.checks] == [c.val_acc for c in reference.checks[:len(result.checks)]]
    say(f"timed over {result.epochs:.2f} of the {reference.epochs:.2f} epochs rung 0 needed; its validation checks "
        + ("match rung 0's, check for check" if same else "DIFFER from rung 0's, so the estimate below is rough"))
    if result.estimated_steps and same:  # the same weights as rung 0's at the target step, so the same test score
        result.test_acc = reference.test_acc
    return result


# --- The ladder, printed ------------------------------------------------------------------------------
def describe(rung: Rung, settings: RaceSettings) -> str:
    """Everything a rung runs with, in one line."""
    recipe = (f"Adadelta {settings.adadelta_lr:g}, x{settings.step_gamma:g} each epoch" if rung.optimizer == "adadelta"
              else f"Adam {settings.peak_lr:g} peak, one-cycle over {settings.one_cycle_epochs:g} epochs")
    parts = [NETWORKS[rung.network].__name__, "DataLoader" if rung.data_path == "loader" else "tensors",
             f"batch {rung.batch_size}", recipe, rung.precision,
             "channels_last" if rung.channels_last else "contiguous",
             f"{rung.threads} threads" if rung.threads else f"default threads ({torch.get_num_threads()})"]
    return ", ".join(parts) + (", torch.compile" if rung.compiled else "")


def report_race(result: RaceResult, settings: RaceSettings) -> None:
    """A rung's checks and outcome, a few lines."""
    seen = result.observed
    say(f"ran with: {seen['data']}, batch {seen.get('batch_size', '?')}, first convolution in "
        f"{seen['compute_dtype']}, {seen['memory_format']}, {seen['threads']} threads"
        + (", compiled" if seen["compiled"] else ""))
    if result.compile_seconds:
        say(f"compiling took {result.compile_seconds:.1f} s, once, before the clock started (not counted below)")
    say("validation: " + ", ".join(f"{c.epoch:.2f}: {c.val_acc:.2%}" for c in result.checks))
    speed = f"{result.steps_per_second:.1f} steps/s, {result.seconds_per_epoch:.1f} s per epoch"
    if result.estimated_steps:
        say(f"reaches {settings.target:.1%} after {result.estimated_steps} steps, as rung 0 did: "
            f"{result.seconds:.1f} s of training at the {speed} measured; test accuracy {result.test_acc:.2%}, "
            "rung 0's, whose weights it would have step for step")
    elif result.seconds is not None:
        say(f"reached {settings.target:.1%} at epoch {result.epochs:.2f} after {result.seconds:.1f} s of training "
            f"({speed}); test accuracy {result.test_acc:.2%}")
    else:
        say(f"did NOT reach {settings.target:.1%} in {result.epochs:.2f} epochs ({result.trained_seconds:.1f} s; "
            f"{speed}); test accuracy {result.test_acc:.2%}")


def run_ladder(ladder: list[Rung], data: RaceData, settings: RaceSettings, progress: bool = True,
               tensors_timed_epochs: float = TENSORS_TIMED_EPOCHS) -> list[RaceResult]:
    """Each rung's race, one after the other, printed as it finishes (rung 1 retraces rung 0, timed in part)."""
    results, default_threads = [], torch.get_num_threads()
    for number, rung in enumerate(ladder):
        print(f"\n== Rung {number}: {rung.change} ==")
        say(describe(rung, settings))
        if rung.skipped:
            say(f"skipped: {rung.skipped}")
            results.append(RaceResult(rung, skipped=rung.skipped))
            continue
        try:
            if rung.key == "tensors" and results and results[0].rung.key == "conventional" and results[0].seconds:
                result = retrace(rung, data, settings, results[0], tensors_timed_epochs, progress)
            else:
                result = race(rung, data, settings, settings.seed, progress=progress)
        except CompileUnavailableError as why:
            say(f"skipped: torch.compile does not work here ({why})")
            results.append(RaceResult(rung, skipped=f"torch.compile unavailable ({why})"))
            continue
        report_race(result, settings)
        if rung.key == "threads" and rung.threads == default_threads:
            say(f"PyTorch already used {default_threads} threads, one per physical core: on this machine this rung "
                "changes nothing, and its time shows how much two identical runs differ")
        results.append(result)
    return results


def speedup(before: float | None, after: float | None) -> str:
    return f"{before / after:.1f}x" if before and after else "-"


def ladder_table(results: list[RaceResult], settings: RaceSettings) -> list[dict]:
    """The ladder as rows: seconds to the target, speed-ups over the rung above and over the start."""
    first = results[0].seconds if results else None
    rows, previous = [], None
    for number, result in enumerate(results):
        rows.append({"rung": number, "change": result.rung.change, "seconds": result.seconds,
                     "vs_previous": speedup(previous, result.seconds), "vs_start": speedup(first, result.seconds),
                     "epochs": (result.estimated_steps / result.steps_per_epoch if result.estimated_steps else
                                result.epochs) if not result.skipped else None, "test_acc": result.test_acc,
                     "estimated": bool(result.estimated_steps),
                     "compile_seconds": result.compile_seconds, "skipped": result.skipped})
        if not result.skipped:
            previous = result.seconds
    width = max(len(row["change"]) for row in rows) + 2 if rows else 10
    print(f"{'rung':<5}{'change':<{width}}{f's to {settings.target:.1%}':>10}{'vs above':>10}{'vs start':>10}"
          f"{'epochs':>8}{'test acc':>10}")
    for row in rows:
        if row["skipped"]:
            print(f"{row['rung']:<5}{row['change']:<{width}}  skipped: {row['skipped'][:60]}")
            continue
        seconds = f"{row['seconds']:.1f}" if row["seconds"] is not None else "not hit"
        seconds += "*" if row["estimated"] else ""
        print(f"{row['rung']:<5}{row['change']:<{width}}{seconds:>10}{row['vs_previous']:>10}{row['vs_start']:>10}"
              f"{row['epochs']:>8.2f}{row['test_acc']:>10.2%}")
    if any(row["estimated"] for row in rows):
        print("* timed over part of the run, at the step count of rung 0, which it retraces (see its race above)")
    return rows


# --- Where the time goes ----------------------------------------------------------------------------------
def profile_rung(rung: Rung, data: RaceData, settings: RaceSettings, steps: int, top: int) -> dict:
    """torch.profiler over `steps` training steps of a fresh copy of the rung (after WARM_UP_STEPS):
    the operators that took the most time themselves, fetching batches included."""

    def endless(setup):
        while True:
            yield from setup.epoch()

    long_enough = replace(settings, max_epochs=100, one_cycle_epochs=100)  # no schedule ends inside the window
    with thread_count(rung.threads):
        setup = set_up(rung, data, long_enough, settings.seed)
        batches_ = endless(setup)
        for _ in range(WARM_UP_STEPS):
            train_step(setup, rung, *next(batches_))
        with quiet_native_stderr(), profile(activities=[ProfilerActivity.CPU]) as prof:
            start = time.perf_counter()
            for _ in range(steps):
                x, y = next(batches_)
                train_step(setup, rung, prepare(x, rung), y)
            step_ms = (time.perf_counter() - start) * 1000 / steps
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1
    rows = [{"name": e.key, "ms_per_step": e.self_cpu_time_total / 1000 / steps, "share": e.self_cpu_time_total / total,
             "calls_per_step": e.count / steps} for e in events[:top]]
    print(f"  {'operator (its own time, not its callees)':<58}{'ms/step':>9}{'share':>8}{'calls/step':>11}")
    for row in rows:
        print(f"  {row['name'][:57]:<58}{row['ms_per_step']:>9.2f}{row['share']:>8.1%}{row['calls_per_step']:>11.1f}")
    fetching = sum(e.cpu_time_total for e in events if "DataLoader" in e.key) / 1000 / steps
    if fetching:
        say(f"  fetching batches from the DataLoader (each image converted and normalized on its own, then stacked): "
            f"{fetching:.1f} ms of each {step_ms:.1f} ms step ({fetching / step_ms:.0%}), under the profiler")
    else:
        say(f"  {step_ms:.1f} ms per step under the profiler")
    return {"operators": rows, "step_ms": step_ms, "fetching_ms": fetching}


def report_data_path(results: list[RaceResult]) -> float | None:
    """What the DataLoader cost per epoch: rungs 0 and 1 train on identical batches (ShuffledOrder), so
    the difference of their seconds per epoch is the data path alone. The profiler's share above
    overstates it, since the profiler adds its own bookkeeping to each of the hundreds of tiny
    operations that converting images one by one takes."""
    by_key = {result.rung.key: result for result in results if not result.skipped}
    if not {"conventional", "tensors"} <= by_key.keys():
        return None
    loader, tensors = by_key["conventional"].seconds_per_epoch, by_key["tensors"].seconds_per_epoch
    cost = loader - tensors
    if cost <= 0:
        say(f"the DataLoader's cost cannot be read from this run: rung 1 took {tensors:.1f} s per epoch against "
            f"{loader:.1f} s for rung 0 on the same batches, so something else slowed the machine meanwhile; "
            "run again on a quiet machine")
        return None
    say(f"the DataLoader's cost, measured without the profiler: {loader:.1f} s per epoch against {tensors:.1f} s "
        f"for tensors in memory, on the same batches: {cost:.1f} s per epoch ({cost / loader:.0%} of the "
        "conventional rung's time); the rest is the network's arithmetic")
    return cost


def arithmetic(result: RaceResult, train_images: int) -> dict:
    """FLOPs of one epoch from the layer shapes, and the speed the race achieved."""
    model = NETWORKS[result.rung.network]()
    per_layer = count_multiply_adds(model)
    forward = 2 * sum(per_layer.values())  # FLOPs for one image's forward pass: 2 per multiply-add
    epoch_flops = TRAIN_PASSES * forward * train_images
    achieved = epoch_flops / result.seconds_per_epoch / 1e9
    return {"network": type(model).__name__, "multiply_adds": per_layer, "forward_flops": forward,
            "epoch_flops": epoch_flops, "seconds_per_epoch": result.seconds_per_epoch, "gflops": achieved}


def report_arithmetic(first: RaceResult, last: RaceResult, train_images: int) -> dict:
    """The fastest rung's (`last`) arithmetic per epoch, and its speed against this CPU's estimated peak."""
    ours, theirs = arithmetic(last, train_images), arithmetic(first, train_images)
    print(f"{ours['network']}: multiply-adds for one image, from each layer's shape")
    for name, count in ours["multiply_adds"].items():
        print(f"  {name:<6}{count:>12,}")
    ratio = theirs["forward_flops"] / ours["forward_flops"]
    say(f"forward pass {ours['forward_flops'] / 1e6:.2f} MFLOP per image (2 FLOPs per multiply-add), against "
        f"{theirs['forward_flops'] / 1e6:.2f} for {theirs['network']}: {ratio:.1f}x less arithmetic per image")
    say(f"training costs about {TRAIN_PASSES}x the forward pass (the backward pass computes, for each layer, one "
        "gradient for its inputs and one for its weights, each about a forward pass's work; the first layer needs no "
        f"input gradient, so a little less): {ours['epoch_flops'] / 1e9:.0f} GFLOP per epoch of "
        f"{train_images:,} images")
    say(f"measured: {ours['seconds_per_epoch']:.2f} s per epoch = {ours['gflops']:.0f} GFLOP/s of counted "
        f"arithmetic (the conventional rung: {theirs['seconds_per_epoch']:.1f} s per epoch, "
        f"{theirs['gflops']:.0f} GFLOP/s)")
    peak = this_cpu_peak()
    if peak is None:
        say("this CPU's peak: unknown here (no /proc/cpuinfo to read its flags and clock from)")
        return {"ours": ours, "conventional": theirs, "peak": None}
    bf16 = last.rung.precision == "bf16"
    used = peak.bf16_gflops if bf16 else peak.fp32_gflops
    say(f"this CPU's peak, estimated: {peak.cores} cores x {peak.ghz:.2f} GHz x {peak.fp32_per_cycle} FLOPs per cycle "
        f"({peak.simd}; assuming {peak.assumption}) = {peak.fp32_gflops:.0f} GFLOP/s in fp32, "
        f"{peak.bf16_gflops:.0f} in bf16"
        + (f" ({cpu_bf16_feature()} doubles it)" if peak.bf16_per_cycle > peak.fp32_per_cycle else " (no native bf16)"))
    say(f"the fastest rung trained in {last.rung.precision} at {ours['gflops'] / used:.0%} of that "
        f"{last.rung.precision} peak. The gap: work this count leaves out (pooling, ReLU, the optimizer, zeroing "
        "gradients), and layers this small, which cannot keep every vector unit busy; the profile above shows where")
    return {"ours": ours, "conventional": theirs, "peak": peak, "share_of_peak": ours["gflops"] / used}


# --- No lucky seed -----------------------------------------------------------------------------------------
def fastest_recipe(results: list[RaceResult]) -> RaceResult | None:
    """The last rung that ran, unless it is torch.compile and the rung before it was faster."""
    ran = [r for r in results if not r.skipped]
    if not ran:
        return None
    last = ran[-1]
    if last.rung.compiled and len(ran) > 1:
        before = ran[-2]
        if before.seconds is not None and (last.seconds is None or before.seconds <= last.seconds):
            say(f"torch.compile did not make this run faster (it trained at {speedup(before.seconds, last.seconds)} "
                f"the speed of the rung before, after {last.compile_seconds:.1f} s of compiling): the fastest recipe "
                "is the rung before it")
            return before
    return last


def seed_runs(result: RaceResult, data: RaceData, settings: RaceSettings, seeds: list[int],
              progress: bool = True) -> dict:
    """The fastest recipe again with every seed: the mean and worst test accuracy, the median seconds."""
    runs = []
    for seed in seeds:
        run = race(result.rung, data, settings, seed, progress=progress)
        runs.append(run)
        when = (f"{settings.target:.1%} at epoch {run.epochs:.2f}" if run.seconds is not None
                else f"{settings.target:.1%} not reached in {run.epochs:.2f} epochs")
        print(f"  seed {seed}: {when}, {run.trained_seconds:.1f} s of training, test {run.test_acc:.2%}")
    accuracies = [run.test_acc for run in runs]
    summary = {"runs": runs, "mean": statistics.mean(accuracies), "worst": min(accuracies),
               "median_seconds": statistics.median(run.trained_seconds for run in runs),
               "reached": sum(run.seconds is not None for run in runs)}
    say(f"test accuracy: mean {summary['mean']:.2%}, worst {summary['worst']:.2%}; median "
        f"{summary['median_seconds']:.1f} s of training; {summary['reached']} of {len(runs)} seeds reached "
        f"{settings.target:.1%} on validation")
    return summary


# --- The figure ------------------------------------------------------------------------------------------------
def plot_ladder(rows: list[dict], settings: RaceSettings, machine: str, fastest_rung: int | None = None):
    """One bar per rung: seconds to the target on a log axis, labelled with its change and speed-ups.

    The conventional recipe is grey, the recipe the seeds were run with green.
    """
    shown_rows = [row for row in rows if not row["skipped"]]
    fig, ax = plt.subplots(figsize=(10.5, 0.55 * len(shown_rows) + 1.9), layout="constrained")
    labels = [f"{row['rung']}. {row['change']}" for row in shown_rows]
    values = [row["seconds"] if row["seconds"] is not None else float("nan") for row in shown_rows]
    colours = ["tab:gray" if row["rung"] == 0 else "tab:green" if row["rung"] == fastest_rung else "tab:blue"
               for row in shown_rows]
    positions = range(len(shown_rows))
    ax.barh(positions, values, color=colours)
    for position, row in zip(positions, shown_rows):
        if row["seconds"] is None:
            ax.text(0.01, position, f"  did not reach {settings.target:.1%} in {row['epochs']:.2f} epochs",
                    va="center", transform=ax.get_yaxis_transform(), fontsize=9)
            continue
        seconds = f"{row['seconds']:.0f} s" if row["seconds"] >= 100 else f"{row['seconds']:.1f} s"
        gains = [f"{row['vs_previous']} the rung above" if row["vs_previous"] != "-" and position else "",
                 f"{row['vs_start']} the start" if row["vs_start"] != "-" and position > 1 else ""]
        if row.get("compile_seconds"):
            gains.append(f"after {row['compile_seconds']:.0f} s of compiling")
        if row.get("estimated"):
            gains.append("rung 0's steps")
        text = seconds + ("  (" + ", ".join(g for g in gains if g) + ")" if any(gains) else "")
        ax.text(row["seconds"] * 1.05, position, text, va="center", fontsize=9)
    ax.legend(handles=[Patch(color="tab:gray", label="the conventional recipe"),
                       Patch(color="tab:green", label="the fastest recipe, run again with every seed")],
              loc="center right", fontsize=8)
    ax.set_yticks(list(positions), labels)
    ax.invert_yaxis()  # the conventional recipe on top, the fastest at the bottom
    reached = [v for v in values if v == v]
    if reached:
        log_scale(ax, "x")
        ax.set_xlim(min(reached) / 1.6, max(reached) * 20)  # room for the labels right of the longest bar
    ax.set_xlabel(f"training seconds to {settings.target:.1%} validation accuracy (log scale; the clock stops "
                  "during checks)")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(f"How fast can it learn? One change per rung, each keeping the ones above it\n"
                 f"measured in one run on {machine}", fontsize=10)
    return fig


# --- The story --------------------------------------------------------------------------------------------------
def check_knobs() -> None:
    """The constants above, checked before any work (one line naming a bad one)."""
    RaceSettings()
    check_knob("SEEDS", SEEDS, is_list_of(SEEDS, is_whole), "use a list of whole numbers, such as [0, 1, 2, 3, 4]")
    check_knob("PROFILE_STEPS", PROFILE_STEPS, is_whole(PROFILE_STEPS, 1, 100), "use a whole number from 1 to 100")
    check_knob("TENSORS_TIMED_EPOCHS", TENSORS_TIMED_EPOCHS, is_number(TENSORS_TIMED_EPOCHS, 0.01, 100),
               "use a number of epochs from 0.01 to 100, such as 1")
    check_knob("TOP_OPERATORS", TOP_OPERATORS, is_whole(TOP_OPERATORS, 1, 50), "use a whole number from 1 to 50")
    check_knob("ADAM_BETAS", ADAM_BETAS, is_list_of(ADAM_BETAS, lambda b: is_number(b, 0, 0.9999)) and
               len(ADAM_BETAS) == 2, "use two numbers from 0 to 0.9999, such as (0.7, 0.9)")


def main(settings: RaceSettings | None = None, rungs=RUNGS, seeds=SEEDS, profile_steps: int = PROFILE_STEPS,
         top_operators: int = TOP_OPERATORS, precision: str | None = None, train_size: int | None = None,
         eval_size: int | None = None, out_dir: Path = VIS_DIR, data_dir: Path = DATA_DIR,
         progress: bool = True, tensors_timed_epochs: float = TENSORS_TIMED_EPOCHS) -> dict:
    """The ladder, where its time goes, the fastest recipe over several seeds, and the figure.

    `rungs` picks rungs by name (each still with every change above it); `precision` ("fp32" or
    "bf16") overrides what the bf16 rung trains in; `train_size` and `eval_size` cut the splits
    for a quick run.
    """
    settings = settings or RaceSettings()
    unknown = [key for key in rungs if key not in RUNGS]
    check_knob("rungs", rungs, is_list_of(rungs, lambda k: k in RUNGS) and not unknown,
               f"choose from {', '.join(RUNGS)}")
    ensure_writable(out_dir, "figures")
    device = torch.device("cpu")  # this script measures the CPU, even where a GPU is present
    precision = precision or pick_precision(device, fastest=True)
    cores = physical_cores()
    print(f"device: cpu ({cores} physical cores; PyTorch's default is {torch.get_num_threads()} threads)")
    data = load_race_data(data_dir, train_size, eval_size)
    train_images = len(data.splits.train[1])
    say(f"data: {train_images:,} training, {len(data.splits.val[1]):,} validation, {len(data.splits.test[1]):,} "
        f"test images; validation checked {settings.checks_per_epoch} times per epoch, the clock stopped meanwhile")
    ladder = [rung for rung in build_ladder(settings, precision, cores) if rung.key in rungs]

    results = run_ladder(ladder, data, settings, progress, tensors_timed_epochs)
    print("\n== The ladder ==")
    rows = ladder_table(results, settings)

    fastest = fastest_recipe(results)  # the last rung, unless torch.compile made it slower
    fastest_rung = next((number for number, result in enumerate(results) if result is fastest), None)

    print("\n== Where the time goes: the first rung and the fastest ==")
    ran = [result for result in results if not result.skipped]
    profiles, flops = {}, None
    for result in ran[:1] + ([fastest] if fastest is not ran[0] else []) if ran else []:
        print(f"{result.rung.change}: {profile_steps} steps under torch.profiler")
        profiles[result.rung.key] = profile_rung(result.rung, data, settings, profile_steps, top_operators)
    report_data_path(results)
    if fastest:
        flops = report_arithmetic(ran[0], fastest, train_images)

    print(f"\n== No lucky seed: the fastest recipe (rung {fastest_rung}), {len(seeds)} seeds ==")
    summary = seed_runs(fastest, data, settings, seeds, progress) if fastest and seeds else None

    print("\n== Figure ==")
    start = results[0].seconds if results and results[0].rung.key == "conventional" else None
    machine = f"{cpu_name()}, {plural(cores, 'core')}, {train_images:,} training images"
    figure = save_figure(plot_ladder(rows, settings, machine, fastest_rung), out_dir, FIGURE)
    final = final_line(summary, start, settings)
    print(f"\n{final}")
    return {"results": results, "rows": rows, "profiles": profiles, "flops": flops, "fastest": fastest,
            "seeds": summary, "figure": figure, "final_line": final, "precision": precision}


def final_line(summary: dict | None, conventional_seconds: float | None, settings: RaceSettings) -> str:
    """fastest: NN.NN% test (mean of 5 seeds, worst NN.NN%) in N.N s of training, NNx the conventional recipe."""
    if summary is None:
        return "fastest: no seeds were run"
    seconds = summary["median_seconds"]
    versus = (f"{conventional_seconds / seconds:.0f}x the conventional recipe in this run" if conventional_seconds
              else f"the conventional recipe did not reach {settings.target:.1%} in this run (or was not run)")
    return (f"fastest: {summary['mean']:.2%} test (mean of {len(summary['runs'])} seeds, worst {summary['worst']:.2%}) "
            f"in {seconds:.1f} s of training, {versus}")


if __name__ == "__main__":
    with friendly_errors():
        parse_no_options(__doc__)
        check_knobs()
        main()
