"""Where a CNN training step spends its time, before and after this project's speed-ups.

Profiles (with torch.profiler) one training step of the Phase 5 CNN, batch 128, written two
ways, in one run:
  textbook:  conv -> ReLU -> pool as the plan draws it, contiguous (NCHW) tensors, Adam's
             default multi-tensor step;
  project:   as 04_improved_model.py trains it (mnist_common.build_model): pool before ReLU
             (identical results), channels-last, fused Adam.
and prints each one's slowest operators and its milliseconds per step.

Run:   python benchmarks/profile_step.py      (about 30 seconds)
"""

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

from mnist_common import CNN, build_model, make_optimizer  # noqa: E402

BATCH_SIZE = 128
STEPS = 10  # profiled steps, after 3 warm-up steps


class TextbookCNN(CNN):
    """The same weights and layers, in the order the plan draws them: ReLU before pooling."""

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(self.dropout(F.relu(self.fc1(x.flatten(1)))))


def setups():
    torch.manual_seed(0)
    textbook = TextbookCNN()
    yield "textbook", textbook, torch.optim.Adam(textbook.parameters(), lr=1e-3)
    project = build_model({"name": "CNN", "dropout": 0.25})
    yield "project", project, make_optimizer("adam", project, 1e-3)


def train_step(model, optimizer, x, y) -> None:
    loss = F.cross_entropy(model(x), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def main() -> dict:
    x, y = torch.randn(BATCH_SIZE, 1, 28, 28), torch.randint(0, 10, (BATCH_SIZE,))
    timings = {}
    for name, model, optimizer in setups():
        for _ in range(3):
            train_step(model, optimizer, x, y)
        start = time.perf_counter()
        for _ in range(STEPS):
            train_step(model, optimizer, x, y)
        timings[name] = (time.perf_counter() - start) / STEPS * 1000
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(STEPS):
                train_step(model, optimizer, x, y)
        print(f"\n== {name}: {timings[name]:.1f} ms per step of {BATCH_SIZE} images ==")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=10,
                                        max_name_column_width=40))
    print(f"textbook {timings['textbook']:.1f} ms, project {timings['project']:.1f} ms per step: "
          f"{timings['textbook'] / timings['project']:.2f}x")
    return timings


if __name__ == "__main__":
    main()
