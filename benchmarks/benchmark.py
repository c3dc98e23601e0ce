"""Benchmark: the project's data path and training recipes against the conventional ones.

Measures, in one run, on one machine, with the same thread count for every case:
  a. seconds per epoch of the project's in-memory tensor batches against the conventional
     `ToTensor` + `Normalize` + `DataLoader` path, for the MLP and the CNN (same model, same
     optimizer, same number of images; only the data path differs);
  b. training seconds until the test accuracy passes a target: the project's MLP (03's
     defaults) to 97.5%, the project's CNN (04's recipe) to 99.0%, and the conventional
     recipe of pytorch/examples `mnist/main.py` (its CNN, Adadelta lr 1.0, StepLR gamma 0.7,
     batch 64, DataLoader with ToTensor + Normalize) to 99.0%, or until a cap of epochs;
  c. the peak memory (resident set size) of each case;
  d. 06_beyond_99.py's DeepCNN (augmentation, one-cycle over 8 epochs) beside 04's CNN, each in
     the precision this machine picks: seconds per epoch, and training seconds to 99.5% on test.
Each case runs in a fresh process, so peak memory belongs to that case alone.

Run:   python benchmarks/benchmark.py            (about 15 minutes on a 2-core CPU)
       python benchmarks/benchmark.py --only data  (part a alone, about 2 minutes)
       python benchmarks/benchmark.py --only beyond  (part d alone, about 4 minutes)
"""

import argparse
import contextlib
import io
import json
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import mnist_common  # noqa: E402
from mnist_common import (  # noqa: E402
    AugmentedCNNSettings,
    CNNSettings,
    MLPSettings,
    SimpleNN,
    build_model,
    evaluate,
    make_optimizer,
    one_cycle,
    random_affine,
    train_cnn,
    train_one_epoch,
)

EPOCH_IMAGES = 54_000  # images per timed epoch, for both data paths (the project's training split)
TIMED_STEPS_CNN = 150  # the CNN's per-epoch time is measured on this many batches and scaled up
CONVENTIONAL_CAP = 8  # epochs the conventional recipe may take to reach 99.0%
CNN_SCHEDULE_EPOCHS = 2  # 04's recipe with its one-cycle schedule sized for 99.0% (04 uses 3 for 99.2%)
MLP_TARGET, CNN_TARGET = 0.975, 0.990


# --- The conventional path, as in pytorch/examples mnist/main.py ------------------------------------
class ExamplesNet(nn.Module):
    """pytorch/examples' MNIST CNN (re-implemented from its description)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = self.dropout1(x).flatten(1)
        x = self.dropout2(F.relu(self.fc1(x)))
        return F.log_softmax(self.fc2(x), dim=1)


def conventional_loader(train: bool, batch_size: int, limit: int | None = None):
    from torchvision import datasets, transforms

    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    dataset = datasets.MNIST(mnist_common.DATA_DIR, train=train, download=False, transform=transform)
    if limit:
        dataset = torch.utils.data.Subset(dataset, range(limit))
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=train)


# --- Cases: each runs in its own process and prints one JSON line --------------------------------
def timed_epoch(model, optimizer, batches, steps=None):
    """Seconds for one pass of training steps over `batches` (at most `steps` of them)."""
    model.train()
    start = time.perf_counter()
    count = images = 0
    for x, y in batches:
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        count, images = count + 1, images + len(y)
        if steps and count >= steps:
            break
    return time.perf_counter() - start, images


# The recipes measured here, written out so that a learner's edit to a script never changes
# what the benchmark measures. They equal the scripts' shipped defaults.
MLP_RECIPE = MLPSettings(epochs=10, batch_size=64, learning_rate=0.001, optimizer="adam", hidden_sizes=(128,),
                         activation="relu", dropout=0.0, batch_norm=False, weight_decay=0.0, seed=0)
CNN_RECIPE = CNNSettings(epochs=CNN_SCHEDULE_EPOCHS, batch_size=128, learning_rate=0.005, dropout=0.25, seed=0)
DEEP_RECIPE = AugmentedCNNSettings(epochs=8, batch_size=128, learning_rate=0.005, dropout=0.25, rotation=12, scale=0.1,
                                   shift=2.5, label_smoothing=0.1, seed=0)  # 06_beyond_99.py's shipped defaults
DEEP_TARGET = 0.995


def case_epoch(model_name: str, path: str) -> dict:
    """a. One epoch's seconds for a model on one data path (scaled to EPOCH_IMAGES images)."""
    mnist_common.set_seed(0)
    if model_name == "MLP":
        model, batch_size, steps = SimpleNN(), MLP_RECIPE.batch_size, None
    else:
        model = build_model({"name": "CNN", "dropout": CNN_RECIPE.dropout})
        batch_size, steps = CNN_RECIPE.batch_size, TIMED_STEPS_CNN
    optimizer = make_optimizer("adam", model, 1e-3)
    if path == "project":
        data = mnist_common.load_mnist()
        batches = mnist_common.batches(*data.train, batch_size=batch_size, shuffle=True, generator=torch.Generator())
    else:
        batches = iter(conventional_loader(True, batch_size, EPOCH_IMAGES))
    seconds, images = timed_epoch(model, optimizer, batches, steps)
    return {"seconds_per_epoch": seconds * EPOCH_IMAGES / images}


def case_project_mlp() -> dict:
    """b. 03's default recipe until the test accuracy passes MLP_TARGET."""
    data = mnist_common.load_mnist()
    generator = mnist_common.set_seed(MLP_RECIPE.seed)
    model = SimpleNN(MLP_RECIPE.hidden_sizes)
    optimizer = make_optimizer("adam", model, MLP_RECIPE.learning_rate)
    return train_until(lambda: train_one_epoch(model, *data.train, optimizer, batch_size=MLP_RECIPE.batch_size,
                                               generator=generator),
                       lambda: evaluate(model, *data.test)[1], MLP_TARGET, MLP_RECIPE.epochs)


def one_cycle_setup(recipe, network: str, data):
    """The seeded generator, network, Adam and one-cycle schedule of a 04- or 06-style recipe."""
    generator = mnist_common.set_seed(recipe.seed)
    model = build_model({"name": network, "dropout": recipe.dropout})
    optimizer = make_optimizer("adam", model, recipe.learning_rate)
    steps = mnist_common.count_batches(len(data.train[1]), recipe.batch_size)
    return generator, model, optimizer, one_cycle(optimizer, recipe.learning_rate, recipe.epochs, steps)


def case_project_cnn() -> dict:
    """b. 04's recipe, with a one-cycle schedule of CNN_SCHEDULE_EPOCHS, until 99.0% on test."""
    data = mnist_common.load_mnist()
    generator, model, optimizer, scheduler = one_cycle_setup(CNN_RECIPE, "CNN", data)
    return train_until(lambda: train_one_epoch(model, *data.train, optimizer, batch_size=CNN_RECIPE.batch_size,
                                               generator=generator, scheduler=scheduler),
                       lambda: evaluate(model, *data.test)[1], CNN_TARGET, CNN_RECIPE.epochs)


def case_deep_cnn(target: float = DEEP_TARGET) -> dict:
    """b. 06's recipe (DeepCNN, augmentation on the device, one-cycle, label smoothing), in the precision
    the machine picks, until the test accuracy passes 99.5%; the clock stops while evaluating."""
    data = mnist_common.load_mnist()
    generator, model, optimizer, scheduler = one_cycle_setup(DEEP_RECIPE, "DeepCNN", data)
    augment = random_affine(DEEP_RECIPE.rotation, DEEP_RECIPE.scale, DEEP_RECIPE.shift, -data.mean / data.std)
    precision = mnist_common.pick_precision(torch.device("cpu"), verbose=False)
    result = train_until(lambda: train_one_epoch(model, *data.train, optimizer, batch_size=DEEP_RECIPE.batch_size,
                                                 generator=generator, scheduler=scheduler, augment=augment,
                                                 label_smoothing=DEEP_RECIPE.label_smoothing, precision=precision),
                         lambda: evaluate(model, *data.test)[1], target, DEEP_RECIPE.epochs)
    return {**result, "precision": precision}


def case_plan_cnn_in_default_precision() -> dict:
    """b. 04's recipe as the script runs it (3 epochs, the machine's precision), beside 06's."""
    data = mnist_common.load_mnist()
    precision = mnist_common.pick_precision(torch.device("cpu"), verbose=False)
    with contextlib.redirect_stdout(io.StringIO()):
        run = train_cnn(replace(CNN_RECIPE, epochs=3), data, torch.device("cpu"), precision)
    return {"seconds_per_epoch": run.history.train_seconds / run.history.epochs_run,
            "test_acc": evaluate(run.model, *data.test)[1], "precision": precision}


def case_conventional_cnn() -> dict:
    """b. pytorch/examples' recipe until 99.0% on test, or CONVENTIONAL_CAP epochs."""
    torch.manual_seed(1)
    model = ExamplesNet()
    optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
    train_loader, test_loader = conventional_loader(True, 64), conventional_loader(False, 1000)

    def one_epoch():
        model.train()
        for x, y in train_loader:
            optimizer.zero_grad()
            F.nll_loss(model(x), y).backward()
            optimizer.step()
        scheduler.step()

    @torch.no_grad()
    def test_accuracy():
        model.eval()
        return sum((model(x).argmax(1) == y).sum().item() for x, y in test_loader) / len(test_loader.dataset)

    return train_until(one_epoch, test_accuracy, CNN_TARGET, CONVENTIONAL_CAP)


def train_until(one_epoch, test_accuracy, target: float, max_epochs: int) -> dict:
    """Train epoch by epoch; the clock runs during training only, not during evaluation."""
    trained, curve = 0.0, []
    for _ in range(max_epochs):
        start = time.perf_counter()
        one_epoch()
        trained += time.perf_counter() - start
        accuracy = test_accuracy()
        curve.append((round(trained, 1), accuracy))
        if accuracy >= target:
            return {"seconds_to_target": trained, "epochs": len(curve), "curve": curve}
    return {"seconds_to_target": None, "epochs": len(curve), "curve": curve}


CASES = {
    "epoch-MLP-project": lambda: case_epoch("MLP", "project"),
    "epoch-MLP-conventional": lambda: case_epoch("MLP", "conventional"),
    "epoch-CNN-project": lambda: case_epoch("CNN", "project"),
    "epoch-CNN-conventional": lambda: case_epoch("CNN", "conventional"),
    "accuracy-MLP-project": case_project_mlp,
    "accuracy-CNN-project": case_project_cnn,
    "accuracy-CNN-conventional": case_conventional_cnn,
    "beyond-CNN-plan": case_plan_cnn_in_default_precision,
    "beyond-DeepCNN": case_deep_cnn,
}


def run_case(name: str) -> None:
    """Child process: run one case, print its result with the peak memory as JSON."""
    torch.set_num_threads(int(os.environ["BENCH_THREADS"]))
    result = CASES[name]()
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    if sys.platform == "darwin":
        peak_kib //= 1024  # macOS reports bytes
    print(json.dumps({**result, "peak_mib": peak_kib / 1024}))


def spawn(name: str, threads: int) -> dict:
    env = {**os.environ, "BENCH_THREADS": str(threads)}
    out = subprocess.run([sys.executable, __file__, "--case", name], capture_output=True, text=True, env=env,
                         check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def cpu_name() -> str:
    """The processor's model name (from /proc/cpuinfo on Linux), else what `platform` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def main(only: str | None = None) -> dict:
    mnist_common.ensure_mnist()
    threads = torch.get_num_threads()
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, {threads} threads, "
          f"native bf16: {mnist_common.cpu_has_native_bf16()}")
    prefixes = {"data": "epoch", "accuracy": "accuracy", "beyond": "beyond"}
    names = [n for n in CASES if only is None or n.startswith(prefixes[only])]
    results = {}
    for name in names:
        print(f"  running {name} ...", flush=True)
        results[name] = spawn(name, threads)

    print("\na. seconds per epoch (54,000 images), same model and optimizer, only the data path differs")
    print(f"{'model':<5} {'in-memory tensors':>18} {'ToTensor+DataLoader':>20} {'speed-up':>9} {'peak MiB':>16}")
    for model in ("MLP", "CNN"):
        ours, theirs = results.get(f"epoch-{model}-project"), results.get(f"epoch-{model}-conventional")
        if ours and theirs:
            print(f"{model:<5} {ours['seconds_per_epoch']:>17.1f}s {theirs['seconds_per_epoch']:>19.1f}s "
                  f"{theirs['seconds_per_epoch'] / ours['seconds_per_epoch']:>8.1f}x "
                  f"{ours['peak_mib']:>7.0f} / {theirs['peak_mib']:<7.0f}")

    if any(n.startswith("accuracy") for n in results):
        print("\nb. training seconds until the test accuracy passes the target")
        print(f"{'recipe':<46} {'target':>6} {'seconds':>8} {'epochs':>6} {'peak MiB':>8}  accuracy by epoch")
        labels = {"accuracy-MLP-project": "project MLP (03 defaults)",
                  "accuracy-CNN-project": f"project CNN (04, {CNN_SCHEDULE_EPOCHS}-epoch schedule)",
                  "accuracy-CNN-conventional": "conventional recipe (pytorch/examples)"}
        targets = {"accuracy-MLP-project": MLP_TARGET}
        for name, label in labels.items():
            r = results.get(name)
            if r:
                seconds = f"{r['seconds_to_target']:.1f}" if r["seconds_to_target"] else "never"
                curve = ", ".join(f"{a:.2%}@{s:g}s" for s, a in r["curve"])
                print(f"{label:<46} {targets.get(name, CNN_TARGET):>6.1%} {seconds:>8} {r['epochs']:>6} "
                      f"{r['peak_mib']:>8.0f}  {curve}")
        ours, theirs = results.get("accuracy-CNN-project"), results.get("accuracy-CNN-conventional")
        if ours and theirs and ours["seconds_to_target"]:
            if theirs["seconds_to_target"]:
                print(f"time to 99.0%: {theirs['seconds_to_target'] / ours['seconds_to_target']:.1f}x faster "
                      "than the conventional recipe")
            else:
                total = theirs["curve"][-1][0]
                print(f"time to 99.0%: the conventional recipe did not get there in {CONVENTIONAL_CAP} epochs "
                      f"({total:.0f} s): more than {total / ours['seconds_to_target']:.1f}x slower")
    report_beyond(results)
    return results


def report_beyond(results: dict) -> None:
    """c. 06's DeepCNN against 04's CNN, each in the precision this machine picks, in one run."""
    plan, deep = results.get("beyond-CNN-plan"), results.get("beyond-DeepCNN")
    if not (plan and deep):
        return
    deep_epochs = deep["curve"][-1][0] / len(deep["curve"])
    print(f"\nc. 06's DeepCNN beside 04's CNN, in this machine's precision ({deep['precision']})")
    print(f"04's CNN: {plan['seconds_per_epoch']:.1f} s per epoch, {plan['test_acc']:.2%} after 3 epochs")
    reached = (f"{deep['seconds_to_target']:.0f} s ({deep['epochs']} epochs)" if deep["seconds_to_target"]
               else f"not within {len(deep['curve'])} epochs")
    ratio = deep_epochs / plan["seconds_per_epoch"]
    print(f"06's DeepCNN with augmentation: {deep_epochs:.1f} s per epoch ({ratio:.1f}x 04's), 99.5% on test after "
          f"{reached}; by epoch: "
          + ", ".join(f"{a:.2%}@{s:g}s" for s, a in deep["curve"]))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="MNIST journey benchmark")
    parser.add_argument("--only", choices=["data", "accuracy", "beyond"], help="run one part of the benchmark")
    parser.add_argument("--case", choices=list(CASES), help=argparse.SUPPRESS)  # used by the child processes
    args = parser.parse_args()
    if args.case:
        run_case(args.case)
    else:
        main(args.only)
