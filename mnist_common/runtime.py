"""Where things live, and how a run is set up: paths, errors, device, precision, seeds.

Nothing here teaches deep learning; it is the plumbing every script shares, written once.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import sys
import tempfile
import textwrap
import warnings
from pathlib import Path

import numpy as np
import torch

# Paths come from this file's location, never from the working directory.
ROOT = Path(__file__).resolve().parent.parent
DATASET_ENV = "MNIST_DATASET"  # mnist (the default) or fashion: which dataset every script uses
_SUBFOLDER = "fashion" if os.environ.get(DATASET_ENV, "").strip().lower() == "fashion" else ""
DATA_DIR = ROOT / "data"  # the datasets, fetched on first use (data/MNIST, data/FashionMNIST)
MODELS_DIR = ROOT / "models" / _SUBFOLDER  # checkpoints and the experiment log (models/fashion for Fashion-MNIST)
VIS_DIR = ROOT / "visualizations" / _SUBFOLDER  # figures (visualizations/fashion for Fashion-MNIST)

DEVICE_ENV = "MNIST_DEVICE"  # cpu, cuda or mps: overrides the automatic choice of device
PRECISION_ENV = "MNIST_PRECISION"  # fp32 or bf16: overrides the automatic choice of precision


_PYTHON_FORMAT = warnings.formatwarning  # how Python prints a warning: kept for other libraries' warnings


class LearnerError(Exception):
    """A problem the learner can fix; shown as one line, without a traceback."""


@contextlib.contextmanager
def friendly_errors():
    """Run a script's main(): a LearnerError becomes one line on stderr and exit code 1, and the
    project's own warnings are one line each ("warning: ..."), without Python's source line."""
    warnings.formatwarning = _one_line_warning
    try:
        yield
    except LearnerError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        print("\nstopped by Ctrl-C", file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        warnings.formatwarning = _PYTHON_FORMAT


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """A warning raised by this project's code as one line; anyone else's as Python formats it."""
    if Path(filename).resolve().is_relative_to(ROOT) and ".venv" not in Path(filename).parts:
        return f"warning: {message}\n"
    return _PYTHON_FORMAT(message, category, filename, lineno, line)


def say(text: str, width: int = 100) -> None:
    """Print a line, wrapping it at `width` columns if it is longer, so it reads well in any terminal.

    A short line (a table row) is printed exactly as it is; a long one keeps its indentation,
    and its continuation lines are indented two more spaces. A label is never split from its
    value: "8: 0.035" and "e^2 = 7.39" stay on one line.
    """
    if len(text) <= width:
        print(text)
        return
    indent = text[:len(text) - len(text.lstrip(" "))]
    glued = text.strip().replace(": ", ":\xa0").replace(" = ", "\xa0=\xa0")  # textwrap never breaks at \xa0
    print(textwrap.fill(glued, width=width, initial_indent=indent, subsequent_indent=indent + "  ",
                        break_long_words=False, break_on_hyphens=False).replace("\xa0", " "))


# ---------------------------------------------------------------------------------------
# The knobs at the top of every script: checked before any work, in one line each.
# ---------------------------------------------------------------------------------------
def is_number(value, low: float | None = None, high: float | None = None) -> bool:
    """A real, finite number (not True/False, not "0.1" in quotes), within [low, high] when given."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and (low is None or value >= low) and (high is None or value <= high))


def is_whole(value, low: int | None = None, high: int | None = None) -> bool:
    """A whole number (an int, not 2.0 or True), within [low, high] when given."""
    return isinstance(value, int) and not isinstance(value, bool) and is_number(value, low, high)


def is_list_of(value, check, at_least: int = 1) -> bool:
    """A list (or tuple) of at least `at_least` items, each passing `check`."""
    return isinstance(value, (list, tuple)) and len(value) >= at_least and all(check(item) for item in value)


def _is_quoted_number(value) -> bool:
    """"0.001" written in quotes, the commonest slip when editing a number."""
    try:
        return isinstance(value, str) and math.isfinite(float(value))
    except ValueError:
        return False


def check_knob(name: str, value, ok: bool, accepts: str) -> None:
    """Stop at once when a knob holds a value the script cannot use: one line naming the constant,
    its value and what it accepts (KNOB = '3' is not allowed: use a whole number ...)."""
    if ok:
        return
    hint = " (write the number without quotes)" if _is_quoted_number(value) else ""
    setting = f"{name} {value!r}" if name.startswith("--") else f"{name} = {value!r}"  # a flag, or a constant
    raise LearnerError(f"{setting} is not allowed: {accepts}{hint}")


def parse_no_options(doc: str) -> None:
    """The command line of a script that takes no options: --help shows its docstring's first line,
    and anything else (a typo such as --epochs 5) stops it at once instead of being ignored."""
    import argparse

    argparse.ArgumentParser(description=doc.strip().split("\n")[0],
                            epilog="To experiment, edit the UPPERCASE constants at the top of the script.").parse_args()


def plural(count: int, word: str) -> str:
    """plural(1, "channel") -> "1 channel"; plural(3, "channel") -> "3 channels"."""
    return f"{count} {word}{'' if count == 1 else 's'}"


def shown(path: Path) -> str:
    """A path as a learner would type it: relative to the project when it lies inside."""
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def file_in_the_way(path: Path) -> Path | None:
    """The file that stands where `path` or one of its folders should be (models/ written as a file), if any."""
    path = Path(path)
    return next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)


def ensure_writable(folder: Path, what: str) -> Path:
    """Create `folder` if needed and prove a file can be written there, before any long work.

    `what` says what the folder is for ("checkpoints", "figures", "data"), for the message.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except (FileExistsError, NotADirectoryError):
        blocker = file_in_the_way(folder) or folder
        raise LearnerError(f"cannot store {what} in {shown(folder)}/: {shown(blocker)} is a file, not a folder; "
                           "move or rename it and run again") from None
    except OSError as error:
        raise LearnerError(f"cannot write {what} to {shown(folder)}/ ({error.strerror or error}): "
                           "make the folder writable, or free some disk space, and run again") from None
    return folder


# ---------------------------------------------------------------------------------------
# Device and precision: chosen once per run, printed with the reason.
# ---------------------------------------------------------------------------------------
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
        choice, why = wanted, f"chosen by {DEVICE_ENV}"
    else:
        choice = next(name for name, ok in available.items() if ok)
        why = {"cuda": "a CUDA GPU was found", "mps": "Apple's GPU (MPS) was found",
               "cpu": "no CUDA or Apple GPU found; everything here runs fine on a CPU"}[choice]
    device = torch.device(choice)
    if verbose:
        detail = torch.cuda.get_device_name(0) if choice == "cuda" else f"{torch.get_num_threads()} threads"
        print(f"device: {choice} ({detail}): {why}")
    return device


def cpu_bf16_feature() -> str | None:
    """The CPU feature that computes bf16 in hardware ("AMX" or "AVX512-BF16"), or None."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:  # macOS, Windows: no such file, and no native bf16 we can rely on
        return None
    if "amx_bf16" in flags:
        return "AMX"
    return "AVX512-BF16" if "avx512_bf16" in flags else None


def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 in hardware (AMX or AVX512-BF16); never emulate."""
    return cpu_bf16_feature() is not None


def pick_precision(device: torch.device, verbose: bool = True, fastest: bool = False) -> str:
    """The precision to TRAIN in, printed in one short line.

    The journey (02-05) trains in fp32 on every machine, so every learner sees the guide's
    numbers; 06 asks for the `fastest`: bf16 where the hardware computes it natively (AMX or
    AVX512-BF16 on a CPU, a recent GPU), fp32 elsewhere, since emulated bf16 is slower.
    $MNIST_PRECISION overrides both. Evaluation is always fp32 (training.predict_logits).
    """
    wanted = os.environ.get(PRECISION_ENV, "").strip().lower()
    if device.type == "cuda":
        native = "this GPU" if torch.cuda.is_bf16_supported() else None
    else:
        native = f"this CPU ({cpu_bf16_feature()})" if device.type == "cpu" and cpu_has_native_bf16() else None
    if wanted:
        if wanted not in ("fp32", "bf16"):
            raise LearnerError(f"{PRECISION_ENV}={wanted} is not a precision: use fp32 or bf16")
        precision, why = wanted, f"set by {PRECISION_ENV}"
    elif fastest and native:
        precision, why = "bf16", f"computed natively by {native}; {PRECISION_ENV}=fp32 for full precision"
    elif fastest:
        precision, why = "fp32", "this hardware has no native bf16, which would be slower emulated"
    else:
        precision = "fp32"
        why = "the guide's numbers" + (f"; {native} also runs bf16 natively: {PRECISION_ENV}=bf16" if native else "")
    if verbose:
        print(f"precision: {precision} ({why})")
    return precision


def autocast(device: torch.device, precision: str):
    """Mixed precision: matrix products in bf16, everything delicate (losses, sums) in fp32."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def set_seed(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a generator for shuffling batches."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
