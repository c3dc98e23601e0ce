"""03_train_model.py: training reaches the threshold, and its safety nets work."""

import csv

import pytest
import torch

import mnist_common
from conftest import subset


def test_short_training_run_reaches_97_percent(trained_mlp):
    assert trained_mlp["test_acc"] >= 0.970
    assert trained_mlp["parameters"] == 101_770
    assert (trained_mlp["root"] / "visualizations" / "03_training_curves.png").exists()


def test_checkpoint_round_trip_gives_identical_predictions(trained_mlp, phase2, phase3, data):
    path = trained_mlp["checkpoint"]
    checkpoint = mnist_common.load_checkpoint(path, "03_train_model.py")
    assert checkpoint["metrics"]["test_acc"] == trained_mlp["test_acc"]
    assert checkpoint["parameters"] == 101_770 and "learning_rate" in checkpoint["hyperparameters"]
    assert not list(path.parent.glob("*.part"))  # written under a temporary name, then renamed
    model = mnist_common.load_weights(phase3.build_model(checkpoint["arch"]), checkpoint, path)
    images = data.test[0][:500]
    assert torch.equal(phase3.predict_logits(model, images), phase3.predict_logits(trained_mlp["model"], images))


def test_wrong_architecture_is_one_line_naming_both(trained_mlp, phase2):
    path = trained_mlp["checkpoint"]
    checkpoint = mnist_common.load_checkpoint(path, "03_train_model.py")
    with pytest.raises(mnist_common.LearnerError) as error:
        mnist_common.load_weights(phase2.SimpleNN([64]), checkpoint, path)
    message = str(error.value)
    assert "hidden_sizes=[128]" in message and "hidden_sizes=[64]" in message and "\n" not in message


def test_missing_and_foreign_checkpoints_are_clear_errors(tmp_path):
    with pytest.raises(mnist_common.LearnerError, match="run `python 03_train_model.py` first"):
        mnist_common.load_checkpoint(tmp_path / "mlp.pt", "03_train_model.py")
    (tmp_path / "junk.pt").write_bytes(b"this is not a checkpoint")
    with pytest.raises(mnist_common.LearnerError, match="not a readable checkpoint"):
        mnist_common.load_checkpoint(tmp_path / "junk.pt", "03_train_model.py")
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(mnist_common.LearnerError, match="not written by this project"):
        mnist_common.load_checkpoint(tmp_path / "other.pt", "03_train_model.py")


def test_experiment_log_gains_a_row_per_run(trained_mlp):
    with open(trained_mlp["root"] / "models" / "experiments.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1
    assert float(rows[0]["test_acc"]) == pytest.approx(trained_mlp["test_acc"], abs=1e-4)
    assert rows[0]["epochs_run"] == "3"


def test_early_stopping_stops_and_restores_the_best_weights(phase2, phase3, data):
    small = subset(data, 2_000, 1_000)
    generator = mnist_common.set_seed(0)
    model = phase2.SimpleNN()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # nothing ever improves after epoch 1
    history = phase3.fit(model, small, optimizer, epochs=10, batch_size=100, generator=generator, patience=2)
    assert history["stopped_early"] and len(history["val_acc"]) == 3 and history["best_epoch"] == 1


def test_nan_guard_fires_with_an_absurd_learning_rate(phase2, phase3, data):
    small = subset(data, 3_000, 500)
    generator = mnist_common.set_seed(0)
    model = phase2.SimpleNN()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e6)
    with pytest.raises(phase3.DivergedError, match=r"learning rate \(1e\+06\) is too high"):
        phase3.fit(model, small, optimizer, epochs=2, batch_size=50, generator=generator, learning_rate=1e6)


def test_no_activation_is_a_linear_model(phase2):
    model = phase2.SimpleNN(activation="none")
    x, y = torch.randn(4, 1, 28, 28), torch.randn(4, 1, 28, 28)
    # linear: f(x + y) = f(x) + f(y) - f(0)
    zero = torch.zeros(1, 1, 28, 28)
    assert torch.allclose(model(x + y), model(x) + model(y) - model(zero), atol=1e-5)


def test_ctrl_c_keeps_the_best_weights_so_far(phase2, phase3, data, monkeypatch):
    small = subset(data, 2_000, 500)
    real_epoch, calls = phase3.train_one_epoch, []

    def interrupted_in_epoch_2(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(phase3, "train_one_epoch", interrupted_in_epoch_2)
    model = phase2.SimpleNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    history = phase3.fit(model, small, optimizer, epochs=5, batch_size=100, generator=mnist_common.set_seed(0))
    assert history["interrupted"] and history["best_epoch"] == 1 and len(history["val_acc"]) == 1
    _, accuracy = phase3.evaluate(model, *small.val)
    assert accuracy == pytest.approx(history["best_val_acc"])  # the model holds epoch 1's weights

    calls.clear()
    calls.append(1)  # the next call is "epoch 2" again: an interrupt before any epoch finished
    fresh = phase2.SimpleNN()
    with pytest.raises(KeyboardInterrupt):
        phase3.fit(fresh, small, torch.optim.Adam(fresh.parameters()), epochs=5, batch_size=100,
                   generator=mnist_common.set_seed(0))
