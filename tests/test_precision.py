"""Results that depend on the training precision, checked in whichever precision this run uses.

`make test` runs the whole suite with the automatic choice (bf16 where the CPU computes it
natively, fp32 elsewhere), then this file again (`pytest -m precision`) with MNIST_PRECISION
forced to the OTHER precision, so both paths run on every machine. The runs are short: a
1-epoch MLP and a 1-epoch CNN on part of the training set (emulated bf16 is slow).
"""

import os
from dataclasses import replace

import pytest
import torch

import mnist_common
from conftest import subset
from mnist_common import (
    CNNSettings,
    MLPSettings,
    build_model,
    evaluate,
    load_checkpoint,
    load_weights,
    predict_logits,
    save_run,
    train_cnn,
    train_mlp,
)
from test_my_models import check_model

pytestmark = pytest.mark.precision

MLP = MLPSettings(epochs=1, batch_size=64, learning_rate=1e-3, optimizer="adam", hidden_sizes=(128,),
                  activation="relu", dropout=0.0, batch_norm=False, weight_decay=0.0, seed=0)
CNN = CNNSettings(epochs=1, batch_size=128, learning_rate=0.005, dropout=0.25, seed=0)
CNN_TRAIN_IMAGES = 12_000  # enough for a clearly trained CNN in one short epoch


@pytest.fixture(scope="module")
def device_and_precision():
    device = mnist_common.pick_device(verbose=False)
    return device, mnist_common.pick_precision(device, verbose=False)


def trained(recipe, settings, data, folder, name, script, device_and_precision):
    """Train with the recipe the script uses, evaluate once on test, save as the script would."""
    device, precision = device_and_precision
    run = recipe(settings, data, device, precision)
    run.test_loss, run.test_acc = evaluate(run.model, *data.test)
    return run, save_run(run, data, folder / name, script)


@pytest.fixture(scope="module")
def short_runs(data, tmp_path_factory, device_and_precision):
    folder = tmp_path_factory.mktemp("precision_models")
    cnn_data = subset(data, CNN_TRAIN_IMAGES, 10_000)
    return {
        "mlp": trained(train_mlp, MLP, data, folder, "mlp.pt", "03_train_model.py", device_and_precision),
        "cnn": trained(train_cnn, CNN, cnn_data, folder, "cnn.pt", "04_improved_model.py", device_and_precision),
        "folder": folder,
    }


def test_the_runs_trained_in_the_precision_asked_for(short_runs, device_and_precision):
    wanted = os.environ.get("MNIST_PRECISION") or device_and_precision[1]
    for key in ("mlp", "cnn"):
        run, path = short_runs[key]
        assert run.precision == wanted == load_checkpoint(path, "03_train_model.py")["precision"]


def test_short_runs_learn_in_either_precision(short_runs):
    assert short_runs["mlp"][0].test_acc >= 0.95
    assert short_runs["cnn"][0].test_acc >= 0.96


@pytest.mark.parametrize(("key", "script", "arch"), [("mlp", "03_train_model.py", "SimpleNN"),
                                                      ("cnn", "04_improved_model.py", "CNN")])
def test_check_models_agrees_with_the_stored_metric(short_runs, key, script, arch, data):
    """`make check-models` re-evaluates in fp32; the stored figure was measured in fp32 too."""
    run, path = short_runs[key]
    assert check_model(path, script, arch, 0.9, data) == run.test_acc


@pytest.mark.parametrize("key", ["mlp", "cnn"])
def test_checkpoint_round_trip_gives_identical_predictions(short_runs, key, data):
    run, path = short_runs[key]
    checkpoint = load_checkpoint(path, "either script")
    model = load_weights(build_model(checkpoint["arch"]), checkpoint, path)
    images = data.test[0][:500]
    assert torch.equal(predict_logits(model, images), predict_logits(run.model, images))


def test_04_reads_the_mlp_checkpoint_as_03_measured_it(improved_model, short_runs, data):
    summary = improved_model.load_mlp_summary(short_runs["folder"], data)
    assert summary["test_acc"] == short_runs["mlp"][0].test_acc


def test_05_reports_the_accuracy_04_measured(understand_model, short_runs, data, tmp_path):
    run, path = short_runs["cnn"]
    model, _ = mnist_common.load_model(path, "04_improved_model.py")
    section = understand_model.section_predictions(model, data, torch.Generator().manual_seed(0), tmp_path)
    assert section["accuracy"] == run.test_acc


def test_a_worse_run_still_saves_and_keeps_the_previous_model(short_runs, data, tmp_path, device_and_precision,
                                                             capsys):
    good = tmp_path / "mlp.pt"
    good.write_bytes(short_runs["mlp"][1].read_bytes())
    worse = replace(MLP, learning_rate=1e-4)  # learns, but less in one epoch
    _, path = trained(train_mlp, worse, data, tmp_path, "mlp.pt", "03_train_model.py", device_and_precision)
    assert path == good and load_checkpoint(good, "")["settings"]["learning_rate"] == 1e-4
    previous = mnist_common.previous_path(good)
    assert previous.read_bytes() == short_runs["mlp"][1].read_bytes()
    out = capsys.readouterr().out
    assert "points below the model it replaces" in out and "mlp.prev.pt" in out
