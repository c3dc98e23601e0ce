"""Transfer learning: a trained network's features as the starting point for new classes.

A network trained on digits ends with a small last layer (the "head") that reads a description
of the picture (its *features*: the CNN's 128 numbers of fc1) and turns it into ten scores. All
the layers before it (the "body") learned to see strokes, curves and corners. Three ways to
use a body for new classes, each a small function below:

  head only      keep the body as it is (frozen), train a new last layer on its features
                 (`train_head`): seconds, since the features are computed once
  fine-tune      start from the trained body and a new head, and let every weight move
                 (`fine_tune`), the body more gently than the head
  from scratch   the same network with random weights, trained on the new classes alone

`fit_with_patience` is the loop all three share: mini-batches, a check on validation images
every round, the best round's weights kept, a stop after PATIENCE rounds without progress.

It also holds what 07 and the drawing page need around that: reading a folder of your own
images in torchvision's ImageFolder layout (`read_image_folder`), a seeded stratified hold-out
(`stratified_split`), the "none of these" rule (`OpenSetRule`), and the checkpoint of a model
of your own classes (`save_transfer_model`, `load_transfer_model`).
"""

from __future__ import annotations

import copy
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoints import atomic_save, describe_arch, load_checkpoint
from .data import batches
from .handwriting import prepare_digit
from .networks import build_model
from .runtime import LearnerError, shown
from .training import predict_logits

TRANSFER_SCRIPT = "07_transfer_learning.py"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")  # what a class folder may hold; other files are ignored, as ImageFolder does
MAX_NAME = 40  # characters in a class name
# Windows refuses these as file or folder names, whatever the extension
RESERVED_NAMES = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}
SAFE_NAME = re.compile(r"\w[\w -]*")  # letters (any alphabet), digits, _ - and inner spaces


# --- The network: body and head ----------------------------------------------------------------------
def head_name(model: nn.Module) -> str:
    """The name of the network's last layer, the one that turns features into scores ("fc2", "classifier.2")."""
    linears = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not linears:
        raise LearnerError(f"{type(model).__name__} has no dense last layer to replace")
    return linears[-1]


def get_head(model: nn.Module) -> nn.Linear:
    return model.get_submodule(head_name(model))


def set_head(model: nn.Module, head: nn.Module) -> None:
    parent, _, child = head_name(model).rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, head)


def with_new_head(model: nn.Module, num_classes: int, seed: int) -> nn.Module:
    """A copy of `model` whose last layer is a fresh one with `num_classes` outputs (seeded)."""
    model = copy.deepcopy(model)
    old = get_head(model)
    torch.manual_seed(seed)
    set_head(model, nn.Linear(old.in_features, num_classes))
    return model


def transfer_arch(base_arch: dict, classes: int) -> dict:
    """The architecture record of a base network with a new head: what a checkpoint stores."""
    return {"name": "Transfer", "base": dict(base_arch), "classes": int(classes)}


def build_transfer(arch: dict) -> nn.Module:
    """The network a transfer architecture record describes (random weights; load_state_dict fills them)."""
    model = with_new_head(build_model(arch["base"]), arch["classes"], seed=0)
    model.arch = arch
    return model


def body_features(model: nn.Module, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """(N, D) features: what the last layer reads, for normalized images (N, 1, 28, 28), eval mode, fp32."""
    return features_read_by(get_head(model), model, images, batch_size)


@torch.no_grad()
def features_read_by(layer: nn.Module, model: nn.Module, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """(N, D): what `layer` of `model` reads, for normalized images (N, 1, 28, 28), eval mode, fp32."""
    caught = []
    hook = layer.register_forward_pre_hook(lambda _, args: caught.append(args[0].detach().float().flatten(1)))
    model.eval()
    try:
        for (x,) in batches(images, batch_size=batch_size):
            model(x)
    finally:
        hook.remove()
    return torch.cat(caught) if caught else torch.zeros(0, getattr(layer, "in_features", 0))


# --- Training -------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class StopRule:
    """How long a training run goes on: rounds of steps, a validation check after each."""

    batch_size: int = 32  # images per step (fewer when there are fewer images)
    min_steps: int = 20  # a round is one pass over the images, or this many steps when the images are few
    max_rounds: int = 30  # rounds at most
    patience: int = 5  # stop after this many rounds without a better validation accuracy


@dataclass
class Fitted:
    """A trained network, with what it reached on validation and what it cost."""

    model: nn.Module
    val_acc: float
    seconds: float
    steps: int
    rounds: int
    history: list[float] = field(default_factory=list)  # validation accuracy after each round


def endless_batches(n: int, batch_size: int, generator: torch.Generator):
    """Index batches forever: one shuffled pass after another."""
    while True:
        order = torch.randperm(n, generator=generator)
        for start in range(0, n - batch_size + 1, batch_size):  # a short last batch waits for the next pass
            yield order[start:start + batch_size]


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return (predict_logits(model, x).argmax(1) == y).float().mean().item() if len(y) else math.nan


def fit_with_patience(model: nn.Module, optimizer, train: tuple, val: tuple, stop: StopRule, seed: int,
                      augment=None, progress=None) -> Fitted:
    """Train on `train` (inputs, labels) in rounds; keep the weights of the round best on `val`.

    `augment`, when given, changes every batch at random (as in 06); `progress(done, total)`,
    when given, is told after each round (the drawing page shows it).
    """
    x, y = train
    batch = min(stop.batch_size, len(y))
    steps_per_round = max(stop.min_steps, math.ceil(len(y) / batch))
    generator = torch.Generator().manual_seed(seed)
    stream = endless_batches(len(y), batch, generator)
    best_acc, best_state, best_round, history, steps = -1.0, None, 0, [], 0
    start = time.perf_counter()
    for round_ in range(1, stop.max_rounds + 1):
        model.train()
        for _ in range(steps_per_round):
            idx = next(stream)
            inputs = x[idx] if augment is None else augment(x[idx])
            loss = F.cross_entropy(model(inputs), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            steps += 1
        val_acc = accuracy(model, *val)
        history.append(val_acc)
        if val_acc > best_acc:
            best_acc, best_round, best_state = val_acc, round_, copy.deepcopy(model.state_dict())
        if progress is not None:
            progress(round_, stop.max_rounds)
        if round_ - best_round >= stop.patience:
            break
    model.load_state_dict(best_state)
    model.eval()
    return Fitted(model, best_acc, time.perf_counter() - start, steps, len(history), history)


def train_head(features: torch.Tensor, labels: torch.Tensor, val_features: torch.Tensor, val_labels: torch.Tensor,
               num_classes: int, stop: StopRule, learning_rate: float, weight_decay: float, seed: int,
               progress=None) -> Fitted:
    """Head only: a new last layer trained on features computed once by a frozen body."""
    torch.manual_seed(seed)
    head = nn.Linear(features.shape[1], num_classes)
    optimizer = torch.optim.Adam(head.parameters(), lr=learning_rate, weight_decay=weight_decay)
    return fit_with_patience(head, optimizer, (features, labels), (val_features, val_labels), stop, seed,
                             progress=progress)


def fine_tune(model: nn.Module, train: tuple, val: tuple, stop: StopRule, body_rate: float, head_rate: float,
              seed: int, augment=None, progress=None) -> Fitted:
    """Every weight trained: the head at head_rate, the body (already good at seeing) at the gentler body_rate."""
    head = get_head(model)
    head_ids = {id(p) for p in head.parameters()}
    body = [p for p in model.parameters() if id(p) not in head_ids]
    optimizer = torch.optim.Adam([{"params": body, "lr": body_rate}, {"params": list(head.parameters()),
                                                                      "lr": head_rate}])
    torch.manual_seed(seed)
    return fit_with_patience(model, optimizer, train, val, stop, seed, augment=augment, progress=progress)


def from_scratch(arch: dict, num_classes: int, train: tuple, val: tuple, stop: StopRule, learning_rate: float,
                 seed: int, augment=None) -> Fitted:
    """The same network, random weights, trained on the new classes alone."""
    torch.manual_seed(seed)
    model = with_new_head(build_model(arch), num_classes, seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    return fit_with_patience(model, optimizer, train, val, stop, seed, augment=augment)


def attach_head(body_model: nn.Module, head: nn.Linear) -> nn.Module:
    """A copy of the (frozen) body with a trained head in place of its last layer."""
    model = copy.deepcopy(body_model)
    set_head(model, copy.deepcopy(head))
    return model.eval()


# --- Choosing images ------------------------------------------------------------------------------------
def per_class_subset(labels: torch.Tensor, per_class: int, seed: int) -> torch.Tensor:
    """Indices of `per_class` images of every class, drawn at random (seeded), in class order."""
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for label in labels.unique().tolist():
        members = torch.nonzero(labels == label).squeeze(1)
        if len(members) < per_class:
            raise LearnerError(f"class {label} has only {len(members)} images, fewer than the {per_class} asked for")
        chosen.append(members[torch.randperm(len(members), generator=generator)[:per_class]])
    return torch.cat(chosen)


def stratified_split(labels: torch.Tensor, hold_out: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, held-out) indices: the same share of every class held out, at least one image each side.

    Stratified: a class with 20 images and hold_out 0.3 gives 6 to the held-out part and 14 to
    training, whatever the other classes hold, so no class is missing from either part.
    """
    generator = torch.Generator().manual_seed(seed)
    train, held = [], []
    for label in labels.unique().tolist():
        members = torch.nonzero(labels == label).squeeze(1)
        members = members[torch.randperm(len(members), generator=generator)]
        n_held = min(len(members) - 1, max(1, round(hold_out * len(members))))
        held.append(members[:n_held])
        train.append(members[n_held:])
    return torch.cat(train).sort().values, torch.cat(held).sort().values


# --- Your own images: the ImageFolder layout ----------------------------------------------------------------
def check_class_name(name: str, where: str = "a class name") -> str:
    """Return `name` if it can be a folder on every system; raise one line saying why not otherwise."""
    if not isinstance(name, str) or not name.strip():
        raise LearnerError(f"{where} is empty: give the class a name, such as plus or star")
    shown_name = name[:MAX_NAME + 10]
    if len(name) > MAX_NAME:
        raise LearnerError(f"{where} {shown_name!r}... is longer than {MAX_NAME} characters: use a shorter name")
    if "/" in name or "\\" in name or ".." in name:
        raise LearnerError(f"{where} {shown_name!r} holds a path separator or '..': a class name is one folder's "
                           "name, such as plus or star")
    if not SAFE_NAME.fullmatch(name) or name != name.strip():
        raise LearnerError(f"{where} {shown_name!r} is not folder-safe: use letters, digits, _ and -, and spaces "
                           "inside the name only (plus, heart_2, question mark)")
    if name.lower() in RESERVED_NAMES:
        raise LearnerError(f"{where} {name!r} is a name Windows reserves for a device: choose another")
    return name


@dataclass
class ImageFolderData:
    """Your images, prepared as MNIST prepared its digits: views (N, 28, 28) in 0-1, labels (N,), class names."""

    views: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    paths: list[Path]
    skipped: list[tuple[Path, str]]  # (file, why) for every image file that could not be used
    ignored: list[Path]  # files that are not PNG or JPEG, left alone as ImageFolder does


def class_folders(folder: Path) -> list[Path]:
    """The class folders of an ImageFolder layout (hidden ones skipped), sorted by name, checked."""
    folder = Path(folder)
    if not folder.exists():
        raise LearnerError(f"{folder} not found: give a folder with one subfolder per class (python "
                           f"{TRANSFER_SCRIPT} --export-example-dataset {folder} writes one)")
    if not folder.is_dir():
        raise LearnerError(f"{folder} is a file, not a folder: give a folder with one subfolder per class")
    try:
        entries = sorted(folder.iterdir())
    except OSError as error:
        raise LearnerError(f"{folder} cannot be read ({error.strerror or error}): check its permissions") from None
    classes = [entry for entry in entries if entry.is_dir() and not entry.name.startswith(".")]
    if not classes:
        raise LearnerError(f"{folder} holds no class folders: put the images of each class in a folder of its own "
                           f"({folder}/plus/1.png, {folder}/minus/1.png, ...)")
    for entry in classes:
        check_class_name(entry.name, f"the class folder {shown(entry)}:")
    if len(classes) == 1:
        raise LearnerError(f"{folder} holds only one class ({classes[0].name}): telling things apart needs at "
                           "least two, so add a folder for another class")
    return classes


def read_image_folder(folder: Path, warn=print) -> ImageFolderData:
    """Every PNG and JPEG of every class folder, prepared exactly as `05_understand_model.py --image` does.

    A file that cannot be read or prepared is named (through `warn`) and left out; the rest are
    kept. A class left with fewer than 2 images stops with one line: one to learn from, one to check.
    """
    folder = Path(folder)
    classes = class_folders(folder)
    views, labels, paths, skipped, ignored = [], [], [], [], []
    for label, class_dir in enumerate(classes):
        files = sorted(p for p in class_dir.rglob("*") if not any(part.startswith(".")
                                                                  for part in p.relative_to(class_dir).parts))
        kept = 0
        for path in files:
            if path.is_dir():
                continue
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                ignored.append(path)
                continue
            try:
                views.append(prepare_digit(path).view)
            except LearnerError as why:
                skipped.append((path, str(why)))
                warn(f"skipped: {why}")
                continue
            labels.append(label)
            paths.append(path)
            kept += 1
        if kept < 2:
            lost = sum(1 for path, _ in skipped if path.is_relative_to(class_dir))
            detail = f" ({lost} more could not be read, named above)" if lost else ""
            raise LearnerError(f"class {class_dir.name!r} has {kept} usable image{'' if kept == 1 else 's'}{detail}: "
                               f"each class needs at least 2 (PNG or JPEG) in {shown(class_dir)}/, one to learn "
                               "from and one to check")
    return ImageFolderData(torch.stack(views), torch.tensor(labels), [c.name for c in classes], paths, skipped,
                           ignored)


# --- "None of these": the open-set rule ----------------------------------------------------------------------
@dataclass
class OpenSetRule:
    """A picture is one of your classes only if its features lie near one of them.

    Each class is summed up by the direction of its average feature vector (its *centre*). The
    rule measures how closely a picture's features point the same way as the nearest centre
    (cosine similarity, 1 = the same direction); below `accept`, the answer is "none of these".
    `accept` is set from the training images themselves: the least typical of them, less a margin.
    """

    centres: torch.Tensor  # (K, D), unit length
    accept: float

    def similarity(self, features: torch.Tensor) -> torch.Tensor:
        """(N,) cosine similarity of each picture's features to the nearest class centre."""
        return (F.normalize(features.float(), dim=1) @ self.centres.T).max(1).values

    def accepts(self, features: torch.Tensor) -> torch.Tensor:
        return self.similarity(features) >= self.accept

    def as_record(self) -> dict:
        return {"centres": self.centres.clone(), "accept": float(self.accept)}


def fit_open_set_rule(features: torch.Tensor, labels: torch.Tensor, margin: float) -> OpenSetRule:
    """Centres from the training images' features; accept = their lowest similarity to their own centre - margin."""
    unit = F.normalize(features.float(), dim=1)
    centres = F.normalize(torch.stack([unit[labels == k].mean(0) for k in labels.unique().tolist()]), dim=1)
    own = (unit * centres[labels]).sum(1)
    return OpenSetRule(centres, float(own.min()) - margin)


# --- A model of your own classes, saved and loaded ----------------------------------------------------------
def save_transfer_model(path: Path, model: nn.Module, classes: list[str], normalization: dict, rule: OpenSetRule,
                        **info) -> Path:
    """Weights, class names, the preparation and the rule, written atomically."""
    state = {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}
    atomic_save({"arch": model.arch, "state_dict": state, "classes": list(classes), "normalization": normalization,
                 "preparation": "mnist_common.handwriting.prepare_image, as 05_understand_model.py --image",
                 "rule": rule.as_record(), "script": TRANSFER_SCRIPT, **info}, path)
    return Path(path)


def load_transfer_model(path: Path) -> tuple[nn.Module, dict, OpenSetRule]:
    """A model of your own classes, its checkpoint and its rule; a digit model is refused in one line."""
    remake = f"{TRANSFER_SCRIPT} --dataset DIR"
    checkpoint = load_checkpoint(path, remake)
    if checkpoint.get("script") != TRANSFER_SCRIPT or checkpoint["arch"].get("name") != "Transfer":
        raise LearnerError(f"{shown(path)} holds a {describe_arch(checkpoint['arch'])} written by "
                           f"{checkpoint.get('script', 'another script')}, not a model of your own classes: run "
                           f"`python {remake}` to make one")
    classes, rule = checkpoint.get("classes"), checkpoint.get("rule")
    if not (isinstance(classes, list) and len(classes) == checkpoint["arch"].get("classes") and isinstance(rule, dict)):
        raise LearnerError(f"{shown(path)} lacks its class names or its rule: run `python {remake}` again")
    try:
        model = build_transfer(checkpoint["arch"])
        model.load_state_dict(checkpoint["state_dict"])
    except (TypeError, KeyError, RuntimeError, LearnerError):
        raise LearnerError(f"{shown(path)}'s weights do not fit the network it describes: run `python {remake}` "
                           "again") from None
    return model.eval(), checkpoint, OpenSetRule(rule["centres"].float(), float(rule["accept"]))


def normalized(views: torch.Tensor, normalization: dict) -> torch.Tensor:
    """Prepared views (N, 28, 28) in 0-1 -> the network's input (N, 1, 28, 28)."""
    return ((views - normalization["mean"]) / normalization["std"]).unsqueeze(1)


@dataclass
class Answer:
    """What a model of your own classes says about one picture."""

    name: str | None  # the class, or None for "none of these"
    probability: float  # the head's probability for its top class
    similarity: float  # the rule's cosine similarity to the nearest class


def answer_pictures(model: nn.Module, rule: OpenSetRule, views: torch.Tensor, normalization: dict,
                    classes: list[str]) -> list[Answer]:
    """The head's answer for each prepared picture, or None where the rule says it is none of the classes."""
    x = normalized(views, normalization)
    probs = predict_logits(model, x).softmax(1)
    similarity = rule.similarity(body_features(model, x))
    return [Answer(classes[int(p.argmax())] if s >= rule.accept else None, float(p.max()), float(s))
            for p, s in zip(probs, similarity)]


# --- The drawing page learns: new classes next to the digits ----------------------------------------------
class ExtendedHead(nn.Module):
    """The digit head exactly as trained, plus one new row of weights per taught class: 10 + K scores.

    Only the new rows learn, so the ten digit scores stay what they were: the network still reads
    digits as before, and a taught class wins only where its own score beats every digit's.
    """

    def __init__(self, digits: nn.Linear, new_classes: int):
        super().__init__()
        self.digits = copy.deepcopy(digits).requires_grad_(False)
        self.new = nn.Linear(digits.in_features, new_classes)

    def forward(self, features):  # (N, D) -> (N, 10 + K)
        return torch.cat([self.digits(features), self.new(features)], 1)


def extended_network(model: nn.Module, head: ExtendedHead) -> nn.Module:
    """A copy of the digit network whose last layer also scores the taught classes."""
    extended = copy.deepcopy(model)
    set_head(extended, head)
    return extended.eval()


def teach_new_classes(digit_head: nn.Linear, digit_features: torch.Tensor, digit_labels: torch.Tensor,
                      new_features: torch.Tensor, new_labels: torch.Tensor, steps: int, learning_rate: float,
                      seed: int, progress=None) -> ExtendedHead:
    """New rows for the taught classes, learned on the frozen network's features in a few hundred steps.

    `new_features` are the body's features of the taught drawings (and their moved copies),
    `new_labels` count from 0 for the first taught class. The digits' features stand for "not a
    new class"; every class weighs the same in the loss, however many examples it has.
    """
    torch.manual_seed(seed)
    head = ExtendedHead(digit_head, int(new_labels.max()) + 1)
    features = torch.cat([digit_features, new_features])
    labels = torch.cat([digit_labels, new_labels + head.digits.out_features])
    counts = torch.bincount(labels, minlength=head.digits.out_features + head.new.out_features).float()
    weight = counts.sum() / (len(counts) * counts.clamp_min(1))  # balanced: each class counts the same
    optimizer = torch.optim.Adam(head.new.parameters(), lr=learning_rate)
    for step in range(1, steps + 1):
        loss = F.cross_entropy(head(features), labels, weight=weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if progress is not None and (step % max(1, steps // 20) == 0 or step == steps):
            progress(step, steps)
    return head.eval()
