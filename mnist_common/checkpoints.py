"""Checkpoints: the weights, with everything needed to rebuild and judge them.

A checkpoint is a dict, as nanoGPT keeps them: the architecture record, the weights, the
settings that trained them (the script's knobs, under the same names), the metrics, the
history and the normalization constants. It is written under a temporary name and renamed
when complete, and a run that went wrong never replaces a good model.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch
from torch import nn

from .data import DATASETS, MNIST, current_dataset
from .experiments import log_experiment
from .networks import build_model, count_parameters
from .runtime import DATASET_ENV, LearnerError, file_in_the_way, say, shown
from .training import AT_CHANCE, TrainedRun


def describe_arch(arch: dict) -> str:
    """{"name": "SimpleNN", "hidden_sizes": [128]} -> "SimpleNN(hidden_sizes=[128])"."""
    args = ", ".join(f"{key}={value!r}" for key, value in arch.items() if key != "name")
    return f"{arch['name']}({args})"


def atomic_save(obj, path: Path) -> None:
    """torch.save to a temporary name, then rename: a crash never leaves half a file."""
    path = Path(path)
    partial = path.with_name(path.name + ".part")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(obj, partial)
        os.replace(partial, path)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise LearnerError(f"could not write {shown(path)} ({error.strerror or error}): check that "
                           f"{shown(path.parent)}/ is a writable folder with free space") from None


def save_checkpoint(path: Path, model: nn.Module, **info) -> Path:
    """Save the weights (on the CPU) with the architecture and any other facts given."""
    state = {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}
    atomic_save({"arch": model.arch, "state_dict": state, **info}, path)
    return Path(path)


def missing_model_message(path: Path, make_script: str) -> str:
    """The one line a learner sees when a script needs a model that is not there yet."""
    return f"{shown(path)} not found: run `python {make_script}` first"


def load_checkpoint(path: Path, make_script: str) -> dict:
    """Read a checkpoint written by this project; `make_script` is the script that writes it."""
    path = Path(path)
    blocker = file_in_the_way(path.parent)
    if blocker is not None:
        raise LearnerError(f"cannot read {shown(path)}: {shown(blocker)} is a file, not a folder; move or rename "
                           f"it, then run `python {make_script}`")
    if not path.exists():
        raise LearnerError(missing_model_message(path, make_script))
    if path.is_dir():
        raise LearnerError(f"{shown(path)} is a folder, not a checkpoint: remove it and run "
                           f"`python {make_script}`")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise LearnerError(f"{shown(path)} is not a readable checkpoint ({type(error).__name__}): "
                           f"delete it and run `python {make_script}` again") from None
    if not _looks_like_ours(checkpoint):
        raise LearnerError(f"{shown(path)} was not written by this project: "
                           f"run `python {make_script}` to make a new one")
    label = checkpoint.get("dataset", MNIST.key)  # checkpoints older than Fashion-MNIST support hold no label
    if label not in DATASETS:
        raise LearnerError(f"{shown(path)} was trained on a dataset this code does not know ({str(label)[:40]!r}; "
                           f"it knows {', '.join(DATASETS)}): run `python {make_script}` to make a new one")
    trained_on, here = DATASETS[label], current_dataset()
    if trained_on != here:
        raise LearnerError(f"{shown(path)} was trained on {trained_on.title}, but this run uses {here.title} "
                           f"({DATASET_ENV}={here.key if here.key != 'mnist' else 'unset'}): set {DATASET_ENV} to "
                           f"match, or run `python {make_script}`")
    return checkpoint


def _looks_like_ours(checkpoint) -> bool:
    """A dict with what every checkpoint of this project holds: the network, its weights, the normalization."""
    if not isinstance(checkpoint, dict):
        return False
    arch, norm = checkpoint.get("arch"), checkpoint.get("normalization")
    return (isinstance(arch, dict) and isinstance(arch.get("name"), str)
            and isinstance(checkpoint.get("state_dict"), dict)
            and isinstance(norm, dict) and all(isinstance(norm.get(key), float) for key in ("mean", "std")))


def load_weights(model: nn.Module, checkpoint: dict, path: Path) -> nn.Module:
    """Put a checkpoint's weights into `model`, refusing a different architecture in one line."""
    remake = f"run `python {checkpoint.get('script', 'the script that wrote it')}` again"
    if checkpoint["arch"] != model.arch:
        raise LearnerError(f"{shown(path)} holds a {describe_arch(checkpoint['arch'])}, but the "
                           f"model here is a {describe_arch(model.arch)}")
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    found = {name: tuple(t.shape) for name, t in checkpoint["state_dict"].items()}
    if expected != found:
        wrong = sorted(set(expected) ^ set(found)) or [n for n in expected if expected[n] != found[n]]
        detail = (f"{wrong[0]} is {found.get(wrong[0], 'missing')}, the model needs {expected.get(wrong[0], 'none')}")
        raise LearnerError(f"{shown(path)}'s weights do not fit a {describe_arch(model.arch)} ({detail}): "
                           f"it was written by other code; {remake}")
    broken = [name for name, t in checkpoint["state_dict"].items()
              if t.is_floating_point() and not torch.isfinite(t).all()]
    if broken:  # a run that diverged, or a damaged file: its answers would all be "nan%"
        raise LearnerError(f"{shown(path)} holds weights that are not numbers (NaN or infinite, in {broken[0]}): "
                           f"the run that wrote it diverged or the file is damaged; {remake}")
    model.load_state_dict(checkpoint["state_dict"])
    return model


def load_model(path: Path, make_script: str) -> tuple[nn.Module, dict]:
    """Rebuild the model that `make_script` trains from its checkpoint, in evaluation mode, on the CPU.

    A checkpoint another script wrote (models/mlp.pt copied over models/cnn.pt) is refused in one line.
    """
    checkpoint = load_checkpoint(path, make_script)
    written_by = checkpoint.get("script")
    if written_by and written_by != make_script:
        raise LearnerError(f"{shown(path)} holds a {describe_arch(checkpoint['arch'])} written by {written_by}, "
                           f"not the network {make_script} trains: run `python {make_script}` to make it")
    try:
        model = build_model(checkpoint["arch"])
    except (TypeError, LearnerError):
        raise LearnerError(f"{shown(path)} describes a network this code cannot build "
                           f"({describe_arch(checkpoint['arch'])}): run `python {make_script}` again") from None
    return load_weights(model, checkpoint, path).eval(), checkpoint


# ---------------------------------------------------------------------------------------
# Saving a run: never replace a good model with a failed run by accident.
# ---------------------------------------------------------------------------------------
def previous_path(path: Path) -> Path:
    """models/mlp.pt -> models/mlp.prev.pt: where the model a worse run replaced is kept."""
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def _compare_with_saved(path: Path, new_val_acc: float) -> None:
    """If `path` holds a model with a better validation accuracy, say so and keep it as *.prev.pt."""
    try:
        old = torch.load(path, map_location="cpu", weights_only=True)["metrics"]["best_val_acc"]
    except Exception:
        return
    if new_val_acc < old:
        keep = previous_path(path)
        shutil.copyfile(path, keep.with_name(keep.name + ".part"))
        os.replace(keep.with_name(keep.name + ".part"), keep)
        say(f"note: this run's validation accuracy ({new_val_acc:.2%}) is {(old - new_val_acc) * 100:.2f} points "
              f"below the model it replaces in {shown(path)} ({old:.2%}); saving it as you asked, "
              f"and keeping the previous one as {shown(keep)}")


def save_run(run: TrainedRun, data, path: Path, script: str, log_dir: Path | None = None) -> Path | None:
    """Write the run's checkpoint (atomically) and a row of the experiment log (beside it, or in log_dir).

    Returns None, and writes nothing, when the run has nothing worth keeping: no finished
    epoch, or a validation accuracy no better than guessing.
    """
    history, path = run.history, Path(path)
    if history.epochs_run == 0 or history.best_val_acc <= AT_CHANCE:
        print(f"not saved: the run {'finished no epoch' if history.epochs_run == 0 else 'is no better than guessing'}"
              f"; {shown(path)} is left as it was")
        return None
    _compare_with_saved(path, history.best_val_acc)
    metrics = {"best_val_acc": history.best_val_acc, "best_epoch": history.best_epoch,
               "epochs_run": history.epochs_run, "test_acc": run.test_acc, "test_loss": run.test_loss}
    save_checkpoint(path, run.model, script=script, settings=run.settings.as_record(), metrics=metrics,
                    parameters=count_parameters(run.model), train_seconds=history.train_seconds,
                    normalization={"mean": data.mean, "std": data.std}, precision=run.precision,
                    dataset=data.dataset.key,
                    device=next(run.model.parameters()).device.type,
                    history=[vars(stats) for stats in history.epochs], torch_version=str(torch.__version__))
    log_experiment(log_dir or path.parent, script, run.settings.as_record(), run.precision, history.epochs_run,
                   history.best_val_acc, run.test_acc, count_parameters(run.model), history.train_seconds)
    return path
