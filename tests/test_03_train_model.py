"""03_train_model.py and the training loop it uses: the threshold, and the safety nets."""

import csv
from dataclasses import replace

import pytest
import torch

import mnist_common
import mnist_common.training as training
from conftest import subset
from mnist_common import MLPSettings, SimpleNN, build_model, evaluate, fit, predict_logits

TINY = MLPSettings(epochs=5, batch_size=100, learning_rate=1e-3, optimizer="adam", hidden_sizes=(128,),
                   activation="relu", dropout=0.0, batch_norm=False, weight_decay=0.0, seed=0)


def test_short_training_run_reaches_97_percent(trained_mlp):
    assert trained_mlp["test_acc"] >= 0.970
    assert trained_mlp["parameters"] == 101_770
    assert (trained_mlp["root"] / "visualizations" / "03_training_curves.png").exists()


def test_checkpoint_round_trip_gives_identical_predictions(trained_mlp, data):
    path = trained_mlp["checkpoint"]
    checkpoint = mnist_common.load_checkpoint(path, "03_train_model.py")
    assert checkpoint["metrics"]["test_acc"] == trained_mlp["test_acc"]
    assert checkpoint["parameters"] == 101_770 and checkpoint["settings"]["learning_rate"] == 0.001
    assert checkpoint["settings"]["hidden_sizes"] == [128] and checkpoint["script"] == "03_train_model.py"
    assert not list(path.parent.glob("*.part"))  # written under a temporary name, then renamed
    model = mnist_common.load_weights(build_model(checkpoint["arch"]), checkpoint, path)
    images = data.test[0][:500]
    assert torch.equal(predict_logits(model, images), predict_logits(trained_mlp["model"], images))


def test_wrong_architecture_is_one_line_naming_both(trained_mlp):
    path = trained_mlp["checkpoint"]
    checkpoint = mnist_common.load_checkpoint(path, "03_train_model.py")
    with pytest.raises(mnist_common.LearnerError) as error:
        mnist_common.load_weights(SimpleNN([64]), checkpoint, path)
    message = str(error.value)
    assert "hidden_sizes=[128]" in message and "hidden_sizes=[64]" in message and "\n" not in message


def test_missing_and_foreign_checkpoints_are_clear_errors(tmp_path):
    with pytest.raises(mnist_common.LearnerError, match=r"run `python 03_train_model\.py` first"):
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
    assert rows[0]["epochs_run"] == "3" and '"learning_rate": 0.001' in rows[0]["settings"]


def test_early_stopping_stops_and_restores_the_best_weights(data, monkeypatch):
    small = subset(data, 2_000, 1_000)
    real_evaluate, calls = training.evaluate, []

    def best_at_epoch_1(model, images, labels):  # validation gets worse after the first epoch
        loss, _ = real_evaluate(model, images, labels)
        calls.append(1)
        return loss, 0.9 - 0.01 * len(calls)

    monkeypatch.setattr(training, "evaluate", best_at_epoch_1)
    mnist_common.set_seed(0)
    model = SimpleNN()
    after_epoch_1 = {}
    real_epoch = training.train_one_epoch

    def remember(*args, **kwargs):
        result = real_epoch(*args, **kwargs)
        if not after_epoch_1:
            after_epoch_1.update({k: v.clone() for k, v in model.state_dict().items()})
        return result

    monkeypatch.setattr(training, "train_one_epoch", remember)
    history = fit(model, small, torch.optim.Adam(model.parameters()), replace(TINY, early_stopping_patience=2))
    assert history.stop_reason == "early stopping" and history.epochs_run == 3 and history.best_epoch == 1
    assert all(torch.equal(model.state_dict()[k], v) for k, v in after_epoch_1.items())


def test_nan_guard_fires_with_an_absurd_learning_rate(data):
    small = subset(data, 3_000, 500)
    model = SimpleNN()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e6)
    with pytest.raises(mnist_common.DivergedError, match=r"LEARNING_RATE = 1e\+06 is too high"):
        fit(model, small, optimizer, replace(TINY, learning_rate=1e6, batch_size=50))


def test_no_activation_is_a_linear_model():
    model = SimpleNN(activation="none")
    x, y = torch.randn(4, 1, 28, 28), torch.randn(4, 1, 28, 28)
    # linear: f(x + y) = f(x) + f(y) - f(0)
    zero = torch.zeros(1, 1, 28, 28)
    assert torch.allclose(model(x + y), model(x) + model(y) - model(zero), atol=1e-5)


def test_ctrl_c_keeps_the_best_weights_so_far(data, monkeypatch):
    small = subset(data, 2_000, 500)
    real_epoch, calls = training.train_one_epoch, []

    def interrupted_in_epoch_2(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(training, "train_one_epoch", interrupted_in_epoch_2)
    model = SimpleNN()
    history = fit(model, small, torch.optim.Adam(model.parameters(), lr=1e-3), TINY)
    assert history.stop_reason == "Ctrl-C" and history.best_epoch == 1 and history.epochs_run == 1
    _, accuracy = evaluate(model, *small.val)
    assert accuracy == pytest.approx(history.best_val_acc)  # the model holds epoch 1's weights

    calls.clear()
    calls.append(1)  # the next call is "epoch 2" again: an interrupt before any epoch finished
    fresh = SimpleNN()
    with pytest.raises(KeyboardInterrupt):
        fit(fresh, small, torch.optim.Adam(fresh.parameters()), TINY)


def test_an_experiment_trains_each_variant_once_and_draws_one_figure(train_model, data, tmp_path):
    settings = replace(train_model.settings_from_knobs(), epochs=1)
    small, done = subset(data, 10_000, 2_000), {}
    result = train_model.run_experiment("weight-decay", settings, small, torch.device("cpu"), "fp32", tmp_path,
                                        tmp_path, done)
    assert list(result["results"]) == ["the knobs above, unchanged", "weight decay 0.0001", "weight decay 0.001"]
    assert all(r["val_acc"] > 0.8 and not r["reused"] for r in result["results"].values())
    assert result["figures"][0].name == "03_experiment_weight-decay.png" and result["figures"][0].exists()
    assert len(mnist_common.read_experiments(tmp_path)) == 3
    again = train_model.run_experiment("weight-decay", settings, small, torch.device("cpu"), "fp32", tmp_path,
                                       tmp_path, done)  # the same session: nothing is trained twice
    assert len(mnist_common.read_experiments(tmp_path)) == 3 and again["results"] == result["results"]


def test_an_experiment_reads_the_unchanged_knobs_from_a_matching_mlp_pt(train_model, trained_mlp, data):
    settings = trained_mlp["run"].settings
    reused = train_model.reuse_saved_run(settings, "fp32", data, trained_mlp["root"] / "models")
    if trained_mlp["run"].precision != "fp32":
        pytest.skip("the short run was trained in bf16")
    assert reused["reused"] and reused["test_acc"] == pytest.approx(trained_mlp["test_acc"])
    assert train_model.reuse_saved_run(replace(settings, dropout=0.2), "fp32", data,
                                       trained_mlp["root"] / "models") is None  # other settings: train it


def test_phase_4_key_questions_are_answered_from_the_table(train_model):
    def row(train, val, test):
        return {"diverged": False, "train_acc": train, "val_acc": val, "test_acc": test}
    label = train_model.variant_label
    wide = train_model.WIDE
    results = {label({}): row(0.995, 0.973, 0.979), label({"activation": "none"}): row(0.93, 0.92, 0.92),
               label(wide): row(0.998, 0.980, 0.981), label({**wide, "dropout": 0.2}): row(0.997, 0.982, 0.9814),
               label({**wide, "dropout": 0.5}): row(0.992, 0.979, 0.975), "lr 0.1": {"diverged": True}}
    answers = train_model.answer_key_questions(results)
    assert answers["best"] == "hidden 512-256, 15 epochs, dropout 0.2"
    assert answers["above_98"] == [label(wide), label({**wide, "dropout": 0.2})]
    assert answers["linear"]["test_acc"] == 0.92


def test_best_runs_collapse_identical_runs_and_show_the_fastest(tmp_path, capsys):
    for seconds in (40.0, 9.5, 12.0):  # the same settings and results three times, on a machine of varying load
        mnist_common.log_experiment(tmp_path, "03_train_model.py", {"epochs": 10}, "fp32", 10, 0.9735, 0.9787,
                                    101_770, seconds)
    mnist_common.log_experiment(tmp_path, "03_train_model.py", {"epochs": 5}, "fp32", 5, 0.97, 0.975, 101_770, 5.0)
    mnist_common.print_best_runs(tmp_path, "03_train_model.py", {"epochs": 10})
    rows = [line.split() for line in capsys.readouterr().out.splitlines() if line.strip().startswith("97.")]
    assert [(row[3], row[4]) for row in rows] == [("9.5", "3"), ("5.0", "1")]  # fastest seconds, times run


def test_experiment_figures_keep_the_mlp_orange_and_give_variants_colours_no_network_owns():
    colours = mnist_common.variant_colors(["lr 0.01", "the knobs above, unchanged", "lr 0.1", "lr 0.0001"],
                                          "the knobs above, unchanged")
    assert colours["the knobs above, unchanged"] == mnist_common.MODEL_COLORS["MLP"]
    variants = [colour for label, colour in colours.items() if label != "the knobs above, unchanged"]
    assert len(set(variants)) == 3 and not set(variants) & {"tab:orange", "tab:blue", "tab:green"}
