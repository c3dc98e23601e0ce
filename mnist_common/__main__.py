"""python -m mnist_common: fetch and verify the data, nothing else."""

from . import ensure_mnist, friendly_errors, parse_no_options, shown

with friendly_errors():
    parse_no_options(__doc__)
    print(f"MNIST files verified in {shown(ensure_mnist())}/")
