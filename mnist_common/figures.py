"""Figures that more than one script draws, and the one way every figure is written.

Everything is drawn with matplotlib's Agg backend into files: nothing ever opens a window
or waits for one, so every script runs the same from a terminal, a test or a CI machine.
"""

from __future__ import annotations

from itertools import cycle
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # draw into files, never into a window: nothing blocks a run

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import FuncFormatter, Locator, LogLocator, MaxNLocator, NullFormatter

from .runtime import LearnerError, shown
from .training import History

DPI = 110

# One colour per network in every figure, so a learner who has seen the MLP in orange finds it in
# orange everywhere. Other lines (variants, ensembles) take the colours after these.
MODEL_COLORS = {"MLP": "tab:orange", "CNN": "tab:blue"}
OTHER_COLORS = ["tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "tab:red"]


def model_colors(names) -> dict[str, str]:
    """A colour for each network's name: MODEL_COLORS for the MLP and the CNN ("plan's CNN" too),
    the next of OTHER_COLORS for any other."""
    names = list(names)
    others = iter(OTHER_COLORS * (1 + len(names) // len(OTHER_COLORS)))
    colours = {}
    for name in names:
        known = MODEL_COLORS.get(name) or MODEL_COLORS.get(str(name).removeprefix("plan's "))
        colours[name] = known or next(others)
    return colours


def variant_colors(labels, default: str) -> dict[str, str]:
    """Colours for variants of one network's recipe: `default` (the recipe unchanged) in the MLP's
    orange, the others in colours no network owns (not the CNN's blue, nor the taught CNN's green)."""
    others = cycle(c for c in OTHER_COLORS if c != "tab:green")
    return {label: MODEL_COLORS["MLP"] if label == default else next(others) for label in labels}


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


class ReadableLogLocator(Locator):
    """Ticks for a log axis that label the whole range the data spans, however narrow or wide.

    matplotlib's own log ticks sit at powers of ten (or 1, 2 and 5 of each), so an axis whose data
    runs from 2.5 to 80 is labelled only at 5, 10, 20 and 50, and the lowest line sits below every
    label. This picks the sparsest of a few sets of round numbers that puts a label close to the
    lowest and the highest data point (of this axis and any axis sharing it), and falls back to
    evenly spaced round numbers on a very narrow axis.
    """

    SUBS = ((1.0,), (1.0, 2.0, 5.0), (1.0, 2.0, 3.0, 5.0), (1.0, 1.5, 2.0, 3.0, 5.0, 7.0),
            (1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0))  # round numbers per decade, sparsest first
    END_GAP = 0.15  # the data may reach at most this far past the first or last label: in decades, and as
    # a share of the axis (0.15 decades: 2.5 is covered by a label at 3, not by one at 5)
    MOST = 10  # labels on one axis at most

    def __call__(self):
        vmin, vmax = sorted(self.axis.get_view_interval())
        lows, highs = [vmax], [vmin]
        ax, name = self.axis.axes, self.axis.axis_name
        shared = getattr(ax, f"get_shared_{name}_axes")().get_siblings(ax) if ax is not None else []
        for other in shared:
            low, high = getattr(other, f"{name}axis").get_data_interval()
            lows.append(low)
            highs.append(high)
        low, high = max(min(lows), vmin), min(max(highs), vmax)  # the data, inside the view
        return self.tick_values(vmin, vmax, *((low, high) if low < high else (vmin, vmax)))

    def tick_values(self, vmin, vmax, data_min=None, data_max=None):
        vmin, vmax = sorted((vmin, vmax))
        if not (vmin > 0 and np.isfinite(vmax)) or vmax / vmin < 1 + 1e-9:
            return LogLocator(base=10).tick_values(max(vmin, 1e-300), max(vmax, 1e-300))
        span = np.log10(vmax / vmin)
        if span > self.MOST - 1:  # many decades: every power of ten would crowd, so skip some
            return LogLocator(base=10, numticks=self.MOST).tick_values(vmin, vmax)
        low = np.log10(data_min if data_min and data_min > 0 else vmin)
        high = np.log10(data_max if data_max and data_max > 0 else vmax)
        gap = min(self.END_GAP, self.END_GAP * span)
        fitted = np.array([])
        for subs in self.SUBS:
            decades = np.arange(np.floor(np.log10(vmin)) - 1, np.ceil(np.log10(vmax)) + 1)
            ticks = np.array([s * 10.0 ** d for d in decades for s in subs])
            inside = ticks[(ticks >= vmin * (1 - 1e-9)) & (ticks <= vmax * (1 + 1e-9))]
            if len(inside) > self.MOST:
                break  # denser sets only add more labels: keep the last one that fitted
            if len(inside) >= 3 and np.log10(inside[0]) - low <= gap and high - np.log10(inside[-1]) <= gap:
                return inside
            fitted = inside
        if len(fitted) >= 3:
            return fitted
        even = MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]).tick_values(vmin, vmax)  # a narrow range
        return even[even > 0]


def log_scale(ax, axis: str = "y") -> None:
    """A log-scale axis labelled in plain numbers (0.02, 0.05, 0.1, ... or 3, 5, 7, 10, ...) from end to end.

    ReadableLogLocator chooses the labels when the figure is drawn, so lines added after this
    call are covered too.
    """
    target = ax.yaxis if axis == "y" else ax.xaxis
    (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
    target.set_major_locator(ReadableLogLocator())
    target.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}" if value >= 1000 else f"{value:.4g}"))
    target.set_minor_formatter(NullFormatter())


def plot_curves(history: History, title: str, model: str):
    """Loss and accuracy per epoch, training against validation, with the kept epoch marked, in the
    colour `model` ("MLP" or "CNN") has in every figure: training dashed and pale, validation solid."""
    epochs = history.column("epoch")
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(12, 4))
    colour = model_colors([model])[model]
    train = {"color": colour, "linestyle": "--", "marker": "o", "alpha": 0.5, "markerfacecolor": "white"}
    val = {"color": colour, "marker": "o"}
    loss_ax.plot(epochs, history.column("train_loss"), **train,
                 label="training (averaged over the epoch, with dropout on if any)")
    loss_ax.plot(epochs, history.column("val_loss"), **val, label="validation (after the epoch)")
    loss_ax.set_ylabel("cross-entropy loss")
    acc_ax.plot(epochs, [a * 100 for a in history.column("train_acc")], **train, label="training")
    acc_ax.plot(epochs, [a * 100 for a in history.column("val_acc")], **val, label="validation")
    acc_ax.axvline(history.best_epoch, color="gray", linestyle=":", label="best epoch (kept)")
    acc_ax.set_ylabel("accuracy (%)")
    low, high = loss_ax.get_ylim()
    loss_ax.set_ylim(low, high + 0.45 * (high - low))  # room above the curves for the legend
    for ax, corner in ((loss_ax, "upper right"), (acc_ax, "lower right")):  # losses fall and accuracies rise
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        ax.set_xlim(0.5, len(epochs) + 0.5)  # room around the first and last epoch (and the best-epoch line)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc=corner)
    fig.suptitle(title)
    return fig
