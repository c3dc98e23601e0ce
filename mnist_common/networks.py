"""The networks of the journey: Phase 2's SimpleNN, Phase 5's CNN, and 06's DeepCNN.

Each network records its own architecture in `model.arch`, a small dict that checkpoints
store, so `build_model(arch)` can rebuild exactly the network a checkpoint was trained as.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .runtime import LearnerError

IMAGE_PIXELS = 28 * 28  # one input per pixel
NUM_CLASSES = 10  # one output score per class (digit)

# ReLU keeps positive values and zeroes the rest; the others are its classic rivals.
# "none" leaves the layers linear, which (02_simple_nn.py shows why) makes them one layer.
ACTIVATIONS = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,  # like ReLU, but lets 1% of a negative value through
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "none": nn.Identity,
}


DEAD_ACTIVITY = 0.01  # a channel whose average output is below 1% of the median channel's counts as dead


def dead_channels(activity: torch.Tensor) -> torch.Tensor:
    """(C,) True for channels that (almost) never fire, from each channel's average output (C,).

    After ReLU a channel outputs 0 wherever its weighted sum is negative; one whose sum is
    negative for nearly every image has (almost) stopped learning: a "dead" channel.
    """
    return activity < DEAD_ACTIVITY * activity.median()


def count_parameters(model: nn.Module) -> int:
    """Every weight and bias the optimizer can change."""
    return sum(p.numel() for p in model.parameters())


class SimpleNN(nn.Module):
    """Phase 2's fully-connected network: 784 pixels -> hidden layers -> 10 scores (logits).

    The defaults are the plan's network, 784 -> 128 (ReLU) -> 10. Phase 4 (03_train_model.py)
    turns the other knobs: more layers, another activation, dropout, batch normalization.
    """

    def __init__(self, hidden_sizes=(128,), activation="relu", dropout=0.0, batch_norm=False):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise LearnerError(f"unknown activation {activation!r}: choose one of {', '.join(ACTIVATIONS)}")
        self.arch = {"name": "SimpleNN", "hidden_sizes": list(hidden_sizes), "activation": activation,
                     "dropout": float(dropout), "batch_norm": bool(batch_norm)}
        layers, width = [], IMAGE_PIXELS
        for size in hidden_sizes:
            layers.append(nn.Linear(width, size))  # every neuron weighs every input
            if batch_norm:
                # per batch, shift and rescale each neuron's output to mean 0 and spread 1,
                # then apply a learned scale and shift of its own
                layers.append(nn.BatchNorm1d(size))
            layers.append(ACTIVATIONS[activation]())
            if dropout:
                layers.append(nn.Dropout(dropout))  # silence random neurons while training
            width = size
        layers.append(nn.Linear(width, NUM_CLASSES))  # one score per digit
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        x = x.flatten(1)  # (N, 1, 28, 28) -> (N, 784): the grid becomes one row of numbers
        return self.layers(x)  # (N, 10) logits: raw scores, softmax makes them probabilities


class CNN(nn.Module):
    """Phase 5's CNN, the plan's: two conv+ReLU+pool stages (28 -> 14 -> 7), then two dense layers."""

    def __init__(self, dropout: float = 0.25):
        super().__init__()
        self.arch = {"name": "CNN", "dropout": float(dropout)}
        self.conv1 = nn.Conv2d(1, 32, kernel_size=3, padding=1)  # 32 filters, each 3x3 over 1 channel
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3, padding=1)  # 64 filters, each 3x3 over 32 channels
        self.fc1 = nn.Linear(64 * 7 * 7, 128)  # 3,136 -> 128: where most parameters live
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(128, NUM_CLASSES)

    def forward(self, x):  # x: (N, 1, 28, 28)
        # Max-pooling and ReLU commute (ReLU never reorders values), so pooling first gives
        # exactly the plan's conv -> ReLU -> pool while applying ReLU to 4x fewer numbers.
        x = F.relu(F.max_pool2d(self.conv1(x), 2))  # (N, 32, 14, 14)
        x = F.relu(F.max_pool2d(self.conv2(x), 2))  # (N, 64, 7, 7)
        x = x.flatten(1)  # (N, 3136)
        x = self.dropout(F.relu(self.fc1(x)))  # (N, 128)
        return self.fc2(x)  # (N, 10) logits

    @torch.no_grad()
    def feature_maps(self, x):
        """What each filter sees, after ReLU: conv1 (N, 32, 28, 28) and conv2 (N, 64, 14, 14)."""
        first = F.relu(self.conv1(x))
        second = F.relu(self.conv2(F.max_pool2d(first, 2)))
        return first, second


def conv_block(channels_in: int, channels_out: int) -> nn.Sequential:
    """3x3 convolution, batch normalization, ReLU: the building block of DeepCNN (no bias: BN adds one)."""
    return nn.Sequential(nn.Conv2d(channels_in, channels_out, 3, padding=1, bias=False),
                         nn.BatchNorm2d(channels_out), nn.ReLU(inplace=True))


class DeepCNN(nn.Module):
    """06_beyond_99.py's network: four conv blocks with batch normalization, three poolings, one dense layer.

    Against Phase 5's CNN it is deeper (four convolutions instead of two, so each output sees more
    of the digit), normalizes every layer (so a high learning rate stays stable), and ends with a
    small dense layer (3x3x128 -> 10) instead of a large one (3136 -> 128): a third of the
    parameters, spent on convolutions that are reused across the image.
    """

    def __init__(self, dropout: float = 0.25, widths=(32, 64, 64, 128)):
        super().__init__()
        self.arch = {"name": "DeepCNN", "dropout": float(dropout), "widths": list(widths)}
        a, b, c, d = widths
        self.features = nn.Sequential(
            conv_block(1, a), nn.MaxPool2d(2),  # (N, a, 14, 14)
            conv_block(a, b), conv_block(b, c), nn.MaxPool2d(2),  # (N, c, 7, 7)
            conv_block(c, d), nn.MaxPool2d(2),  # (N, d, 3, 3)
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(d * 3 * 3, NUM_CLASSES))

    def forward(self, x):  # x: (N, 1, 28, 28)
        return self.classifier(self.features(x))  # (N, 10) logits


class Ensemble(nn.Module):
    """Several trained networks voting: the average of their probabilities.

    It returns the log of that average, so that argmax, softmax and every function written for
    one network work unchanged on the ensemble.
    """

    def __init__(self, members):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x):
        probs = torch.stack([member(x).float().softmax(1) for member in self.members])  # (M, N, 10)
        return probs.mean(0).log()  # (N, 10)


NETWORKS = {"SimpleNN": SimpleNN, "CNN": CNN, "DeepCNN": DeepCNN}


def build_model(arch: dict) -> nn.Module:
    """The network an architecture record describes (as `model.arch` and checkpoints hold it)."""
    if arch.get("name") not in NETWORKS:
        raise LearnerError(f"unknown network {arch.get('name')!r} in a checkpoint: this project builds "
                           f"{', '.join(NETWORKS)}")
    model = NETWORKS[arch["name"]](**{key: value for key, value in arch.items() if key != "name"})
    if any(isinstance(layer, nn.Conv2d) for layer in model.modules()):
        # channels_last stores each pixel's channels side by side, the layout the CPU's (and the
        # GPU's) fastest convolution kernels expect: about 1.5x faster here, same results.
        model = model.to(memory_format=torch.channels_last)
    return model
