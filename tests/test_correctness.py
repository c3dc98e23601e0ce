"""Nothing a learner does can break the journey: bad knobs, runs that blow up, a broken
experiment log, folders that cannot be written, two fetches at once, mismatched checkpoints."""

import csv
import gzip
import math
import shutil
import subprocess
import sys
import warnings
from dataclasses import replace

import pytest
import torch

import mnist_common
from conftest import subset
from mnist_common import (
    AT_CHANCE,
    CNNSettings,
    DivergedError,
    EpochStats,
    History,
    LearnerError,
    MLPSettings,
    SimpleNN,
    TrainedRun,
    fit,
    log_experiment,
    read_experiments,
    save_run,
)
from mnist_common.training import is_overfitting

GOOD = dict(epochs=10, batch_size=64, learning_rate=0.001, optimizer="adam", hidden_sizes=[128], activation="relu",
            dropout=0.0, batch_norm=False, weight_decay=0.0, early_stopping_patience=5, seed=0)


# --- Knobs are checked before any work ------------------------------------------------------------
@pytest.mark.parametrize(("name", "value", "accepts"), [
    ("batch_size", 0, "whole number of at least 1"),
    ("batch_size", -64, "whole number of at least 1"),
    ("batch_size", 64.0, "whole number of at least 1"),
    ("epochs", 0, "whole number of at least 1"),
    ("hidden_sizes", [128, 0], "list of whole numbers of at least 1"),
    ("dropout", 1.0, "from 0 up to (not including) 1"),
    ("dropout", -0.1, "from 0 up to (not including) 1"),
    ("learning_rate", "0.001", "number above 0"),
    ("learning_rate", 0, "number above 0"),
    ("activation", "swish", "'relu'"),
    ("optimizer", "rmsprop", "'adam', 'sgd'"),
    ("weight_decay", -1e-4, "at least 0"),
    ("batch_norm", "yes", "True or False"),
    ("early_stopping_patience", 0, "or None"),
])
def test_a_bad_knob_is_one_line_naming_the_constant_and_what_it_accepts(name, value, accepts):
    with pytest.raises(LearnerError) as error:
        MLPSettings(**{**GOOD, name: value})
    message = str(error.value)
    assert message.startswith(f"{name.upper()} = {value!r} is not allowed") and accepts in message
    assert "\n" not in message


def test_a_number_written_as_a_string_says_so():
    with pytest.raises(LearnerError, match="without quotes"):
        MLPSettings(**{**GOOD, "learning_rate": "0.001"})


def test_cnn_knobs_are_checked_too():
    with pytest.raises(LearnerError, match=r"DROPOUT = 1.5 is not allowed"):
        CNNSettings(epochs=3, batch_size=128, learning_rate=0.005, dropout=1.5, seed=0)


def test_the_script_checks_its_knobs_before_loading_anything(train_model, monkeypatch, tmp_path):
    monkeypatch.setattr(train_model, "BATCH_SIZE", 0)
    monkeypatch.setattr(mnist_common.data, "ensure_mnist", lambda *_a, **_k: pytest.fail("loaded data first"))
    with pytest.raises(LearnerError, match="BATCH_SIZE = 0"):
        train_model.main(out_dir=tmp_path, models_dir=tmp_path, data_dir=tmp_path)


# --- A run that blows up never replaces a good model ---------------------------------------------------
@pytest.mark.parametrize(("optimizer", "learning_rate"), [("adam", 10.0), ("sgd", 10.0), ("sgd", 1.0)])
def test_a_diverging_run_is_named_and_leaves_the_old_checkpoint(train_model, trained_mlp, tmp_path, optimizer,
                                                               learning_rate):
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(trained_mlp["checkpoint"], models / "mlp.pt")
    before = (models / "mlp.pt").read_bytes()
    settings = replace(train_model.settings_from_knobs(), optimizer=optimizer, learning_rate=learning_rate)
    with pytest.raises(DivergedError) as error:
        train_model.main(settings, out_dir=tmp_path / "figures", models_dir=models)
    message = str(error.value)
    assert f"LEARNING_RATE = {learning_rate:g} is too high" in message and "Nothing was saved" in message
    assert "\n" not in message
    assert (models / "mlp.pt").read_bytes() == before and not (models / "mlp.prev.pt").exists()


def test_a_run_stuck_at_chance_is_stopped(data):
    small = subset(data, 3_000, 1_000)
    model = SimpleNN()
    settings = MLPSettings(**{**GOOD, "epochs": 3, "hidden_sizes": (128,)})
    with pytest.raises(DivergedError, match="no better than guessing"):
        fit(model, small, torch.optim.SGD(model.parameters(), lr=0.0), settings)


def test_a_run_at_chance_or_without_an_epoch_is_not_saved(tmp_path, data, capsys):
    settings = MLPSettings(**GOOD)
    path = tmp_path / "mlp.pt"
    path.write_bytes(b"the learner's good model")
    at_chance = History([EpochStats(1, 2.3, 0.1, 2.3, 0.11, 1.0)], best_epoch=1, best_val_acc=0.11)
    for history in (History(), at_chance):
        assert save_run(TrainedRun(SimpleNN(), settings, history, "fp32", 2.3, 0.1), data, path, "03") is None
    assert path.read_bytes() == b"the learner's good model"
    assert "not saved" in capsys.readouterr().out


def test_the_overfitting_warning_stays_quiet_at_chance():
    def history(train_acc, val_acc):
        epochs = [EpochStats(1, 1.0, train_acc, 2.0, val_acc, 1), EpochStats(2, 0.9, train_acc, 2.2, val_acc, 1)]
        return History(epochs, best_epoch=1, best_val_acc=val_acc)

    assert is_overfitting(history(0.99, 0.95))
    assert not is_overfitting(history(0.30, AT_CHANCE))


# --- The experiment log cannot break a run ------------------------------------------------------------
def log_one(folder, test_acc=0.97):
    return log_experiment(folder, "03_train_model.py", {"learning_rate": 0.001}, "fp32", 3, 0.97, test_acc, 101_770,
                          4.2)


def test_an_empty_log_gets_a_header(tmp_path):
    (tmp_path / "experiments.csv").write_text("")
    log_one(tmp_path)
    with open(tmp_path / "experiments.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == mnist_common.experiments.LOG_COLUMNS and len(rows) == 2
    assert len(read_experiments(tmp_path)) == 1


def test_truncated_and_hand_edited_rows_are_skipped_with_one_warning(tmp_path):
    log_one(tmp_path, 0.97)
    log_one(tmp_path, 0.98)
    path = tmp_path / "experiments.csv"
    lines = path.read_text().splitlines()
    lines[1] = lines[1].replace("0.9700", "ninety-seven")  # hand-edited
    path.write_text("\n".join(lines) + "\n" + lines[2][:25])  # and a truncated last line
    with pytest.warns(UserWarning, match=r"skipped unreadable line\(s\) 2, 4") as caught:
        rows = read_experiments(tmp_path)
    assert len(caught) == 1 and len(rows) == 1 and rows[0]["test_acc"] == 0.98


def test_a_log_that_cannot_be_written_costs_no_model(tmp_path, data):
    (tmp_path / "experiments.csv").mkdir()  # a folder where the log file should be
    history = History([EpochStats(1, 0.3, 0.9, 0.2, 0.95, 1.0)], best_epoch=1, best_val_acc=0.95)
    run = TrainedRun(SimpleNN(), MLPSettings(**GOOD), history, "fp32", 0.2, 0.95)
    with pytest.warns(UserWarning, match="could not add this run"):
        path = save_run(run, data, tmp_path / "mlp.pt", "03_train_model.py")
    assert path.exists() and mnist_common.load_checkpoint(path, "03")["metrics"]["test_acc"] == 0.95


def test_an_old_log_with_other_columns_is_kept_aside(tmp_path):
    (tmp_path / "experiments.csv").write_text("time,script,hyperparameters\n2025,03,{}\n")
    with pytest.warns(UserWarning, match="had other columns"):
        log_one(tmp_path)
    assert (tmp_path / "experiments.old.csv").exists() and len(read_experiments(tmp_path)) == 1


# --- File-system problems speak a learner's language ------------------------------------------------------
def test_a_file_where_the_models_folder_should_be_stops_before_training(train_model, tmp_path, monkeypatch):
    (tmp_path / "models").write_text("not a folder")
    monkeypatch.setattr(mnist_common.data, "ensure_mnist", lambda *_a, **_k: pytest.fail("loaded data first"))
    with pytest.raises(LearnerError) as error:
        train_model.main(out_dir=tmp_path / "figures", models_dir=tmp_path / "models")
    assert "models is a file, not a folder" in str(error.value) and "\n" not in str(error.value)


def test_a_file_where_the_data_folder_should_be_is_one_line(tmp_path):
    (tmp_path / "data").write_text("not a folder")
    with pytest.raises(LearnerError, match="a file stands where a folder should be"):
        mnist_common.load_mnist(data_dir=tmp_path / "data")


def test_the_scripts_turn_it_into_one_line_and_no_traceback(explore_mnist, tmp_path, capsys):
    (tmp_path / "figures").write_text("not a folder")
    with pytest.raises(SystemExit) as stopped, mnist_common.friendly_errors():  # as `python 01_...` runs main()
        explore_mnist.main(out_dir=tmp_path / "figures")
    err = capsys.readouterr().err
    assert stopped.value.code == 1 and err.startswith("error: cannot store figures in")
    assert "is a file, not a folder" in err and len(err.strip().splitlines()) == 1


FETCH = ("import sys; from pathlib import Path; import mnist_common as m; "
         "m.ensure_mnist(Path(sys.argv[1]), (('files', m.data.from_local_files),), verbose=False)")


def test_two_processes_fetching_into_one_folder_both_succeed(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in mnist_common.MNIST_FILES:
        with open(mnist_common.DATA_DIR / "MNIST" / "raw" / name, "rb") as src, gzip.open(raw / f"{name}.gz",
                                                                                            "wb") as dst:
            shutil.copyfileobj(src, dst)
    for _ in range(2):
        for name in mnist_common.MNIST_FILES:
            (raw / name).unlink(missing_ok=True)
        both = [subprocess.Popen([sys.executable, "-c", FETCH, str(tmp_path)], cwd=mnist_common.ROOT,
                                 stderr=subprocess.PIPE, text=True) for _ in range(2)]
        for process in both:
            _, err = process.communicate(timeout=120)
            assert process.returncode == 0, err
    for name, digest in mnist_common.MNIST_FILES.items():
        assert mnist_common.sha256_of(raw / name) == digest


def test_a_file_that_vanishes_while_checked_is_just_missing(tmp_path, monkeypatch):
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"half")

    def removed_by_the_other_process(path):
        path.unlink()
        raise FileNotFoundError(path)

    monkeypatch.setattr(mnist_common.data, "sha256_of", removed_by_the_other_process)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not mnist_common.data._verified(mnist_common.MNIST, tmp_path / "t10k-labels-idx1-ubyte",
                                               "t10k-labels-idx1-ubyte")


# --- A checkpoint that does not fit ------------------------------------------------------------------------
def test_a_checkpoint_whose_tensors_do_not_fit_is_one_line(trained_mlp, tmp_path):
    checkpoint = mnist_common.load_checkpoint(trained_mlp["checkpoint"], "03_train_model.py")
    checkpoint["state_dict"]["layers.0.weight"] = torch.zeros(64, 784)  # same record, other shapes
    torch.save(checkpoint, tmp_path / "mlp.pt")
    with pytest.raises(LearnerError) as error:
        mnist_common.load_model(tmp_path / "mlp.pt", "03_train_model.py")
    message = str(error.value)
    assert "weights do not fit" in message and "(64, 784)" in message and "(128, 784)" in message
    assert "\n" not in message and "03_train_model.py" in message


def test_loss_watch_tolerates_a_healthy_start_and_catches_a_blow_up():
    watch = mnist_common.training.LossWatch()
    watch.first(2.30)
    for loss in (1.2, 0.6, 0.5, 0.4):
        watch.check(loss, 50)
    with pytest.raises(DivergedError, match="stayed there"):
        for loss in (400.0, 3.1, 2.9):
            watch.check(loss, 100)
    with pytest.raises(DivergedError, match="became nan"):
        watch.check(math.nan, 150)


def test_a_later_epoch_called_on_its_own_is_not_mistaken_for_divergence(data):
    """Benchmarks call train_one_epoch directly: a low first loss in epoch 3 is not a 'starting value'."""
    small = subset(data, 6_000, 1_000)
    model = SimpleNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(4):
        loss, _ = mnist_common.train_one_epoch(model, *small.train, optimizer, batch_size=64, generator=generator)
    assert loss < 0.3
