"""Check the models YOU trained: `make check-models` (or `pytest -m my_models`).

Not part of the default test run, which stays self-contained: these read models/mlp.pt and
models/cnn.pt from your own runs of 03_train_model.py and 04_improved_model.py. The same
check runs, in the default suite, on short runs in a temporary folder (test_precision.py).
"""

from pathlib import Path

import pytest

import mnist_common

THRESHOLDS = [  # checkpoint, script that writes it, model class, minimum test accuracy
    ("mlp.pt", "03_train_model.py", "SimpleNN", 0.975),
    ("cnn.pt", "04_improved_model.py", "CNN", 0.990),
]


def check_model(path: Path, script: str, arch: str, minimum: float, data) -> float:
    """The checkpoint rebuilds as `arch`, scores what it recorded (both in fp32), and passes `minimum`."""
    model, checkpoint = mnist_common.load_model(path, script)
    assert checkpoint["arch"]["name"] == arch
    _, accuracy = mnist_common.evaluate(model, *data.test)
    assert accuracy == checkpoint["metrics"]["test_acc"], "the stored accuracy was measured another way"
    assert accuracy >= minimum, f"{path.name}: {accuracy:.2%} is below {minimum:.1%}"
    return accuracy


@pytest.mark.my_models
@pytest.mark.parametrize(("name", "script", "arch", "minimum"), THRESHOLDS)
def test_your_model_meets_its_threshold(name, script, arch, minimum, data):
    path = mnist_common.MODELS_DIR / name
    if not path.exists():
        pytest.skip(f"{mnist_common.shown(path)} not found: run `python {script}` first")
    check_model(path, script, arch, minimum, data)
