"""Speed: the two networks of 08's ladder, counting a network's arithmetic, and this CPU's peak.

`count_multiply_adds` walks a network once and adds up the multiply-adds of its convolutions
and dense layers, the work that dominates training. `cpu_peak` turns /proc/cpuinfo into an
estimate of the most arithmetic this CPU could do per second, so a measured speed can be put
next to it. Both are estimates with their assumptions stated, not measurements.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .networks import NUM_CLASSES

CPUINFO = Path("/proc/cpuinfo")
MAX_FREQ = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")  # kHz, where the kernel exposes it
TRAIN_PASSES = 3  # a training step costs about 3 forward passes: the forward, then the backward pass
# computes two gradients of the same size (for the layer's inputs and for its weights)


# ---------------------------------------------------------------------------------------
# The two networks: the conventional one, and a cheaper shape that learns as fast.
# ---------------------------------------------------------------------------------------
class ConventionalCNN(nn.Module):
    """The network of pytorch/examples' MNIST recipe, written from its description.

    Two 3x3 convolutions at (almost) full resolution, 32 then 64 channels (28 -> 26 -> 24, no
    padding), one 2x2 max-pool, dropout, a dense layer 9,216 -> 128, dropout, and 10 scores. The
    second convolution runs 64 filters over 32 channels at 24x24: nearly all of its arithmetic.
    It returns logits; the recipe's log_softmax followed by nll_loss is cross_entropy in one call.
    """

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, kernel_size=3)  # (N, 32, 26, 26)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)  # (N, 64, 24, 24)
        self.dropout1 = nn.Dropout(0.25)
        self.fc1 = nn.Linear(64 * 12 * 12, 128)  # 9,216 -> 128
        self.dropout2 = nn.Dropout(0.5)
        self.fc2 = nn.Linear(128, NUM_CLASSES)

    def forward(self, x):  # x: (N, 1, 28, 28)
        x = F.relu(self.conv1(x))  # (N, 32, 26, 26)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)  # (N, 64, 12, 12)
        x = self.dropout1(x).flatten(1)  # (N, 9216)
        x = self.dropout2(F.relu(self.fc1(x)))  # (N, 128)
        return self.fc2(x)  # (N, 10) logits


class FastCNN(nn.Module):
    """A cheaper shape (after tuomaso/train_mnist_fast, narrowed): pool right after the first convolution.

    16 filters of 5x5 at full resolution (28 -> 24), pooled at once to 12x12, then 32 filters of
    3x3 (12 -> 10), pooled to 5x5, a dense layer 800 -> 128 and 10 scores; no dropout. It does
    about a fifteenth of ConventionalCNN's arithmetic per image: few channels where the image is
    large, more channels only once pooling has made it small. (tuomaso's network has 24 filters
    and 256 hidden units; on a 2-core CPU this narrower one is about a third faster per epoch and,
    over ten seeds, as accurate after two epochs.) Pooling before ReLU gives the same numbers as
    after (ReLU never reorders values) for 4x fewer ReLUs.
    """

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, kernel_size=5)  # (N, 16, 24, 24)
        self.conv2 = nn.Conv2d(16, 32, kernel_size=3)  # (N, 32, 10, 10)
        self.fc1 = nn.Linear(32 * 5 * 5, 128)  # 800 -> 128
        self.fc2 = nn.Linear(128, NUM_CLASSES)

    def forward(self, x):  # x: (N, 1, 28, 28)
        x = F.relu(F.max_pool2d(self.conv1(x), 2))  # (N, 16, 12, 12)
        x = F.relu(F.max_pool2d(self.conv2(x), 2))  # (N, 32, 5, 5)
        x = F.relu(self.fc1(x.flatten(1)))  # (N, 128)
        return self.fc2(x)  # (N, 10) logits


# ---------------------------------------------------------------------------------------
# Counting the arithmetic.
# ---------------------------------------------------------------------------------------
def layer_multiply_adds(layer: nn.Module, output: torch.Tensor) -> int:
    """Multiply-adds one image costs in a Conv2d or Linear layer, from the shape of its output.

    A convolution computes each output value (channel, row, column) from in_channels / groups x
    kernel height x kernel width inputs; a dense layer each of its outputs from all its inputs.
    """
    per_image = output[0].numel()  # output values for one image
    if isinstance(layer, nn.Conv2d):
        kh, kw = layer.kernel_size
        return per_image * (layer.in_channels // layer.groups) * kh * kw
    if isinstance(layer, nn.Linear):
        return per_image * layer.in_features
    return 0


@torch.no_grad()
def count_multiply_adds(model: nn.Module, image_shape=(1, 28, 28)) -> dict[str, int]:
    """{layer name: multiply-adds for one image's forward pass}, for every Conv2d and Linear layer.

    Biases, ReLUs, pooling and the loss are left out: they are a few percent of the work.
    One multiply-add is 2 FLOPs (floating-point operations).
    """
    counts, hooks = {}, []
    for name, layer in model.named_modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            def record(module, _inputs, output, name=name):
                counts[name] = layer_multiply_adds(module, output)

            hooks.append(layer.register_forward_hook(record))
    was_training = model.training
    try:
        model.eval()
        model(torch.zeros(1, *image_shape, device=next(model.parameters()).device))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return counts


def training_flops_per_image(model: nn.Module, image_shape=(1, 28, 28)) -> int:
    """FLOPs to train on one image: 2 per multiply-add, times TRAIN_PASSES (forward and backward)."""
    return 2 * TRAIN_PASSES * sum(count_multiply_adds(model, image_shape).values())


# ---------------------------------------------------------------------------------------
# The CPU: cores, clock and the most arithmetic it could do.
# ---------------------------------------------------------------------------------------
def physical_cores() -> int:
    """Cores this process may run on, counting each physical core once (hyper-threads share one).

    Read from /proc/cpuinfo (pairs of physical id and core id); elsewhere, os.cpu_count().
    """
    try:
        usable = os.sched_getaffinity(0)
        cores, cpu, package = set(), None, "0"
        for line in CPUINFO.read_text().splitlines():
            key, _, value = (part.strip() for part in line.partition(":"))
            if key == "processor":
                cpu = int(value)
            elif key == "physical id":
                package = value
            elif key == "core id" and cpu in usable:
                cores.add((package, value))
        if cores:
            return len(cores)
        return len(usable)
    except (OSError, AttributeError, ValueError):  # no /proc (macOS, Windows) or no affinity call
        return os.cpu_count() or 1


def cpu_name() -> str:
    """The processor's name as the system reports it ("AMD EPYC 9B14", "Apple M2"...)."""
    try:
        for line in CPUINFO.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "an unknown CPU"


@dataclass
class CpuPeak:
    """An estimate of a CPU's peak arithmetic: cores x clock x FLOPs per cycle per core."""

    cores: int
    ghz: float
    fp32_per_cycle: int  # FLOPs per cycle per core in fp32
    bf16_per_cycle: int  # ... in bf16, where the CPU computes it natively (else the fp32 figure)
    simd: str  # which vector instructions the estimate assumes, in words
    assumption: str  # the guess it rests on, in words

    @property
    def fp32_gflops(self) -> float:
        return self.cores * self.ghz * self.fp32_per_cycle

    @property
    def bf16_gflops(self) -> float:
        return self.cores * self.ghz * self.bf16_per_cycle


def cpu_flags_and_clock() -> tuple[set[str], float | None]:
    """The CPU's feature flags and its clock in GHz (the highest it reports), from Linux's files."""
    try:
        text = CPUINFO.read_text()
    except OSError:
        return set(), None
    flags, mhz = set(), None
    for line in text.splitlines():
        key, _, value = (part.strip() for part in line.partition(":"))
        if key == "flags" and not flags:
            flags = set(value.split())
        elif key == "cpu MHz" and mhz is None:
            mhz = float(value)
    boost = max_clock_mhz()
    mhz = max(mhz or 0.0, boost or 0.0)
    return flags, (mhz / 1000 if mhz else None)


def max_clock_mhz() -> float | None:
    """The highest clock the kernel says this CPU reaches (its boost clock), or None where it does not say."""
    try:
        return int(MAX_FREQ.read_text()) / 1000
    except (OSError, ValueError):  # virtual machines and containers often hide cpufreq
        return None


def cpu_peak(flags: set[str], ghz: float, cores: int) -> CpuPeak:
    """This CPU's peak FLOPs per second, estimated from its flags (see CpuPeak).

    One fused multiply-add (FMA) is 2 FLOPs on every lane of a vector register: a 512-bit
    register holds 16 fp32 numbers, so one AVX-512 FMA unit does 32 FLOPs per cycle, two do 64.
    Two 256-bit AVX2 FMA units also do 32. AVX512-BF16 (and AMX) multiply pairs of bf16 numbers
    into each fp32 lane, doubling the rate; AMX's tile units can do far more, which this ignores.
    """
    if "avx512f" in flags:
        fp32, simd = 32, "AVX-512 with FMA"
        assumption = ("one 512-bit FMA unit per core (or two 256-bit halves, as on AMD Zen 4); "
                      "CPUs with two 512-bit units (many Xeons) double it")
    elif "avx2" in flags and "fma" in flags:
        fp32, simd, assumption = 32, "AVX2 with FMA", "two 256-bit FMA units per core"
    elif flags:
        fp32, simd, assumption = 8, "SSE or AVX without FMA", "one 128-bit add and one multiply per cycle"
    else:
        fp32, simd, assumption = 32, "unknown (no /proc/cpuinfo)", "a recent CPU's two 256-bit FMA units per core"
    native_bf16 = "avx512_bf16" in flags or "amx_bf16" in flags
    return CpuPeak(cores, ghz, fp32, 2 * fp32 if native_bf16 else fp32, simd, assumption)


def this_cpu_peak() -> CpuPeak | None:
    """cpu_peak for the machine running this, or None where its clock cannot be read."""
    flags, ghz = cpu_flags_and_clock()
    return cpu_peak(flags, ghz, physical_cores()) if ghz else None
