"""The experiment log, models/experiments.csv: one row per training run (the plan's "track your
experiments" tip). Written leniently and read leniently: the log never costs a trained model.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
import warnings
from pathlib import Path

from .runtime import plural, say, shown

EXPERIMENT_LOG = "experiments.csv"  # inside the models folder
LOG_COLUMNS = ["time", "script", "settings", "precision", "epochs_run", "best_val_acc", "test_acc",
               "parameters", "train_seconds"]
NUMBERS = ("best_val_acc", "test_acc", "parameters", "train_seconds")  # columns that must parse as numbers


def _header_of(path: Path) -> list[str] | None:
    """The first row of the log, or None when the file is missing or empty."""
    if not path.exists() or path.stat().st_size == 0:
        return None
    with open(path, newline="") as f:
        return next(csv.reader(f), None)


def log_experiment(models_dir: Path, script: str, settings: dict, precision: str, epochs_run: int,
                   best_val_acc: float, test_acc: float, parameters: int, train_seconds: float) -> Path | None:
    """Append one row to models/experiments.csv; a problem with the log is a warning, never an error."""
    path = Path(models_dir) / EXPERIMENT_LOG
    row = [time.strftime("%Y-%m-%d %H:%M:%S"), script, json.dumps(settings, sort_keys=True), precision,
           epochs_run, f"{best_val_acc:.4f}", f"{test_acc:.4f}", parameters, f"{train_seconds:.1f}"]
    try:
        header = _header_of(path)
        if header is not None and header != LOG_COLUMNS:  # an older or hand-made log: keep it aside
            aside = path.with_name("experiments.old.csv")
            os.replace(path, aside)
            warnings.warn(f"{shown(path)} had other columns; moved it to {shown(aside)} and started a new log",
                          stacklevel=2)
            header = None
        with open(path, "a", newline="") as f:
            writer = csv.writer(f)
            if header is None:
                writer.writerow(LOG_COLUMNS)
            writer.writerow(row)
    except OSError as error:
        warnings.warn(f"could not add this run to {shown(path)} ({error.strerror or error}); the model "
                      "itself is saved", stacklevel=2)
        return None
    return path


def read_experiments(models_dir: Path) -> list[dict]:
    """Every readable logged run, best validation accuracy first; unreadable rows are skipped
    with one warning that names their line numbers."""
    path = Path(models_dir) / EXPERIMENT_LOG
    try:
        with open(path, newline="") as f:
            lines = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error):
        return []
    if not lines or lines[0] != LOG_COLUMNS:
        return []
    rows, bad = [], []
    for number, values in enumerate(lines[1:], start=2):
        row = dict(zip(LOG_COLUMNS, values))
        try:
            if len(values) != len(LOG_COLUMNS):
                raise ValueError
            row.update({key: float(row[key]) for key in NUMBERS})
            row["settings"] = json.loads(row["settings"])
            if not isinstance(row["settings"], dict) or not all(math.isfinite(row[key]) for key in NUMBERS):
                raise ValueError  # hand-edited into something no run writes
        except ValueError:
            bad.append(number)
            continue
        rows.append(row)
    if bad:
        warnings.warn(f"{shown(path)}: skipped unreadable line(s) {', '.join(map(str, bad))}", stacklevel=2)
    return sorted(rows, key=lambda row: row["best_val_acc"], reverse=True)


def shown_value(value) -> str:
    """A setting as a learner wrote it: None as "off", lists compactly."""
    return "off" if value is None else json.dumps(value).replace(" ", "")


def print_best_runs(models_dir: Path, script: str, knobs: dict, n: int = 5) -> None:
    """This script's best runs so far, ranked by VALIDATION accuracy (choosing by test accuracy
    would leak). Runs with the same settings and results (a rerun of the same seed) are one row,
    with how many times they ran and the fastest of their training times (seconds); each row shows
    how its settings differ from `knobs`, the script's constants as they are now."""
    rows = [row for row in read_experiments(models_dir) if row["script"] == script]
    if not rows:
        return
    unique: dict[tuple, dict] = {}
    for row in rows:  # best first, so the first of each group is kept
        key = (json.dumps(row["settings"], sort_keys=True), row["precision"], row["best_val_acc"], row["test_acc"])
        group = unique.setdefault(key, {**row, "times": 0})
        group["times"] += 1
        group["train_seconds"] = min(group["train_seconds"], row["train_seconds"])  # a busy machine's runs are slower
    print()
    say(f"best runs of {script} so far, by validation accuracy ({plural(len(rows), 'run')} in "
        f"{shown(Path(models_dir) / EXPERIMENT_LOG)}; test accuracy beside, never used to choose):")
    print(f"  {'val acc':>7}  {'test acc':>8}  {'params':>9}  {'fastest':>7}  {'runs':>4}  "
          "settings unlike the constants at the top of the script")
    for row in list(unique.values())[:n]:
        differ = " ".join(f"{key}={shown_value(value)}" for key, value in sorted(row["settings"].items())
                          if json.dumps(value) != json.dumps(knobs.get(key))) or "(none: the constants as they are)"
        print(f"  {row['best_val_acc']:7.2%}  {row['test_acc']:8.2%}  {int(row['parameters']):9,}  "
              f"{row['train_seconds']:7.1f}  {row['times']:>4}  {differ}")
