"""Check the models YOU trained: `make check-models` (or `pytest -m my_models`).

Not part of the default test run, which stays self-contained: these read models/mlp.pt and
models/cnn.pt from your own runs of 03_train_model.py and 04_improved_model.py.
"""

import pytest

import mnist_common

pytestmark = pytest.mark.my_models

THRESHOLDS = [  # checkpoint, script that writes it, model class, minimum test accuracy
    ("mlp.pt", "03_train_model.py", "SimpleNN", 0.975),
    ("cnn.pt", "04_improved_model.py", "CNN", 0.992),
]


@pytest.mark.parametrize(("name", "script", "arch", "minimum"), THRESHOLDS)
def test_your_model_meets_its_threshold(name, script, arch, minimum, data):
    path = mnist_common.MODELS_DIR / name
    if not path.exists():
        pytest.skip(f"{mnist_common.shown(path)} not found: run `python {script}` first")
    phase = mnist_common.load_script(script.removesuffix(".py"))
    model, checkpoint = mnist_common.load_model(path, script, phase.build_model)
    assert checkpoint["arch"]["name"] == arch
    evaluate = mnist_common.load_script("03_train_model").evaluate
    _, accuracy = evaluate(model, *data.test)
    assert accuracy == pytest.approx(checkpoint["metrics"]["test_acc"], abs=1e-4)
    assert accuracy >= minimum, f"{name}: {accuracy:.2%} is below {minimum:.1%}"
