"""Phase 4's experiments, run the way a learner would, and measured side by side.

Each row trains 03_train_model.py's network with one change of its hyperparameters (through
main(), exactly as editing the constants at the top of 03 would) and reports the test
accuracy and the gap between training and validation accuracy, both measured with the
network in evaluation mode (dropout off), so the gap is the real overfitting and not an
effect of dropout being on during training.

The numbers in learning_plan.md's Phase 4 come from this script.

Run:   python benchmarks/phase4_experiments.py      (about 6 minutes on a 2-core CPU)
"""

import contextlib
import io
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import mnist_common  # noqa: E402

phase3 = mnist_common.load_script("03_train_model")

EXPERIMENTS = [  # (what it shows, changes to 03's defaults)
    ("03 defaults: 784-128-10, ReLU, Adam 0.001", {}),
    ("no activation (a linear model)", {"activation": "none"}),
    ("sigmoid instead of ReLU", {"activation": "sigmoid"}),
    ("SGD with momentum, lr 0.01", {"optimizer": "sgd", "learning_rate": 0.01}),
    ("wider and deeper: 512-256, no dropout", {"hidden_sizes": [512, 256], "epochs": 15, "patience": None}),
    ("512-256 with dropout 0.2", {"hidden_sizes": [512, 256], "dropout": 0.2, "epochs": 15, "patience": None}),
    ("512-256 with dropout 0.5", {"hidden_sizes": [512, 256], "dropout": 0.5, "epochs": 15, "patience": None}),
    ("512-256, dropout 0.2, batch norm", {"hidden_sizes": [512, 256], "dropout": 0.2, "batch_norm": True,
                                         "epochs": 15, "patience": None}),
]


def run(changes: dict, folder: Path) -> dict:
    with contextlib.redirect_stdout(io.StringIO()):  # each run's own report is long; keep the table
        result = phase3.main(**changes, out_dir=folder, models_dir=folder)
        data = mnist_common.load_mnist()
        _, train_acc = phase3.evaluate(result["model"], *data.train)
        _, val_acc = phase3.evaluate(result["model"], *data.val)
    history = result["history"]
    return {"test_acc": result["test_acc"], "train_acc": train_acc, "val_acc": val_acc,
            "epochs": len(history["val_acc"]), "seconds": history["train_seconds"],
            "parameters": result["parameters"]}


def main() -> list:
    rows = []
    print(f"{'experiment':<40} {'test acc':>8} {'train acc':>9} {'val acc':>8} {'gap':>6} {'epochs':>6} "
          f"{'seconds':>7} {'params':>9}")
    with tempfile.TemporaryDirectory() as folder:
        for label, changes in EXPERIMENTS:
            r = run(changes, Path(folder))
            rows.append((label, r))
            print(f"{label:<40} {r['test_acc']:>8.2%} {r['train_acc']:>9.2%} {r['val_acc']:>8.2%} "
                  f"{(r['train_acc'] - r['val_acc']) * 100:>5.2f}p {r['epochs']:>6} {r['seconds']:>7.1f} "
                  f"{r['parameters']:>9,}", flush=True)
    print("gap: training accuracy minus validation accuracy, in percentage points, dropout off for both")
    return rows


if __name__ == "__main__":
    with mnist_common.friendly_errors():
        main()
