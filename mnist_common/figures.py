"""Figures that more than one script draws, and the one way every figure is written.

Everything is drawn with matplotlib's Agg backend into files: nothing ever opens a window
or waits for one, so every script runs the same from a terminal, a test or a CI machine.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # draw into files, never into a window: nothing blocks a run

import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from .runtime import LearnerError, shown
from .training import History

DPI = 110


def save_figure(fig, out_dir: Path, name: str) -> Path:
    """Write a matplotlib figure as out_dir/name, close it, print and return the path."""
    out_dir = Path(out_dir)
    path = out_dir / name
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=DPI, bbox_inches="tight")
    except OSError as error:
        raise LearnerError(f"could not write {shown(path)} ({error.strerror or error}): check that "
                           f"{shown(out_dir)}/ is a writable folder") from None
    finally:
        plt.close(fig)
    print(f"  wrote {shown(path)}")
    return path


def log_scale(ax, axis: str = "y") -> None:
    """A log-scale axis labelled in plain numbers at 1, 2 and 5 of each power of ten (0.02, 0.05, 0.1, ...)."""
    target = ax.yaxis if axis == "y" else ax.xaxis
    (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
    target.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    target.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    target.set_minor_formatter(NullFormatter())


def plot_curves(history: History, title: str):
    """Loss and accuracy per epoch, training against validation, with the kept epoch marked."""
    epochs = history.column("epoch")
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(12, 4))
    loss_ax.plot(epochs, history.column("train_loss"), "o-", label="training (averaged over the epoch)")
    loss_ax.plot(epochs, history.column("val_loss"), "o-", label="validation (after the epoch)")
    loss_ax.set_ylabel("cross-entropy loss")
    acc_ax.plot(epochs, [a * 100 for a in history.column("train_acc")], "o-", label="training")
    acc_ax.plot(epochs, [a * 100 for a in history.column("val_acc")], "o-", label="validation")
    acc_ax.axvline(history.best_epoch, color="gray", linestyle=":", label="best epoch (kept)")
    acc_ax.set_ylabel("accuracy (%)")
    for ax in (loss_ax, acc_ax):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        ax.set_xlim(0.5, len(epochs) + 0.5)  # room around the first and last epoch (and the best-epoch line)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    return fig
