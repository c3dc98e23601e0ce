"""Phase 4's experiments, run the way a learner would, and measured side by side.

Each row trains 03_train_model.py's network with one change of its shipped settings (with
`train_mlp`, the recipe 03 runs, as editing the constants at the top of 03 would) and reports
the test accuracy and the gap between training and validation accuracy, both measured with the
network in evaluation mode (dropout off), so the gap is the real overfitting and not an
effect of dropout being on during training.

The numbers in learning_plan.md's Phase 4 come from this script.

Run:   python benchmarks/phase4_experiments.py      (about 6 minutes on a 2-core CPU)
"""

import contextlib
import io
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import mnist_common  # noqa: E402
from mnist_common import MLPSettings, evaluate, train_mlp  # noqa: E402

BASE = MLPSettings(epochs=10, batch_size=64, learning_rate=0.001, optimizer="adam", hidden_sizes=(128,),
                   activation="relu", dropout=0.0, batch_norm=False, weight_decay=0.0, early_stopping_patience=5,
                   seed=0)  # 03_train_model.py's shipped defaults, written out: a learner's edit never changes them
WIDE = {"hidden_sizes": (512, 256), "epochs": 15, "early_stopping_patience": None}
EXPERIMENTS = [  # (what it shows, changes to 03's defaults)
    ("03 defaults: 784-128-10, ReLU, Adam 0.001", {}),
    ("no activation (a linear model)", {"activation": "none"}),
    ("sigmoid instead of ReLU", {"activation": "sigmoid"}),
    ("SGD with momentum, lr 0.01", {"optimizer": "sgd", "learning_rate": 0.01}),
    ("wider and deeper: 512-256, no dropout", WIDE),
    ("512-256 with dropout 0.2", {**WIDE, "dropout": 0.2}),
    ("512-256 with dropout 0.5", {**WIDE, "dropout": 0.5}),
    ("512-256, dropout 0.2, batch norm", {**WIDE, "dropout": 0.2, "batch_norm": True}),
    ("weight decay 1e-4", {"weight_decay": 1e-4}),
]


def run(settings: MLPSettings, data, device, precision) -> dict:
    with contextlib.redirect_stdout(io.StringIO()):  # each run's epoch table is long; keep the summary
        result = train_mlp(settings, data, device, precision)
    _, test_acc = evaluate(result.model, *data.test)
    _, train_acc = evaluate(result.model, *data.train)
    _, val_acc = evaluate(result.model, *data.val)
    return {"test_acc": test_acc, "train_acc": train_acc, "val_acc": val_acc, "epochs": result.history.epochs_run,
            "seconds": result.history.train_seconds,
            "parameters": mnist_common.count_parameters(result.model)}


def main() -> list:
    device = mnist_common.pick_device()
    precision = mnist_common.pick_precision(device)
    data = mnist_common.load_mnist().to(device)
    rows = []
    print(f"{'experiment':<40} {'test acc':>8} {'train acc':>9} {'val acc':>8} {'gap':>6} {'epochs':>6} "
          f"{'seconds':>7} {'params':>9}")
    for label, changes in EXPERIMENTS:
        r = run(replace(BASE, **changes), data, device, precision)
        rows.append((label, r))
        print(f"{label:<40} {r['test_acc']:>8.2%} {r['train_acc']:>9.2%} {r['val_acc']:>8.2%} "
              f"{(r['train_acc'] - r['val_acc']) * 100:>5.2f}p {r['epochs']:>6} {r['seconds']:>7.1f} "
              f"{r['parameters']:>9,}", flush=True)
    print("gap: training accuracy minus validation accuracy, in percentage points, dropout off for both")
    return rows


if __name__ == "__main__":
    with mnist_common.friendly_errors():
        main()
