"""python -m mnist_common: fetch and verify the data, nothing else."""

from . import ensure_mnist, friendly_errors, shown

with friendly_errors():
    print(f"MNIST files verified in {shown(ensure_mnist())}/")
