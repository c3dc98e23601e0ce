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
from conftest import script, subset
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
from mnist_common.training import is_overfitting, overfitting_note

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


def test_the_overfitting_note_speaks_only_when_the_curves_show_it():
    def history(train_acc, val_acc, val_losses):
        epochs = [EpochStats(n, 1.0 / n, train_acc, loss, val_acc, 1) for n, loss in enumerate(val_losses, 1)]
        return History(epochs, best_epoch=1, best_val_acc=val_acc)

    rising = [0.10, 0.11, 0.12, 0.13]  # ends 30% above its lowest, three epochs after it
    assert is_overfitting(history(0.99, 0.95, rising))
    assert "rose 30% above its lowest (0.1000 -> 0.1300)" in overfitting_note(history(0.99, 0.95, rising))
    assert not is_overfitting(history(0.30, AT_CHANCE, rising))  # at chance: not overfitting, whatever the curves
    assert not is_overfitting(history(0.99, 0.95, [0.10, 0.105, 0.11, 0.11]))  # a 10% wobble is not a trend
    assert not is_overfitting(history(0.96, 0.955, rising))  # no gap between training and validation
    assert overfitting_note(history(0.96, 0.955, rising)) is None


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


# --- Every script's knobs, and its command line ------------------------------------------------------------
KNOB_CASES = [  # (script, constant, a value a learner might write, words of what it accepts)
    ("01_explore_mnist.py", "DIGIT_TO_PRINT", 12, "from 0 to 9"),
    ("01_explore_mnist.py", "INK_LEVEL", "128", "without quotes"),
    ("02_simple_nn.py", "HIDDEN_SIZES", [0], "at least 1"),
    ("02_simple_nn.py", "TEMPERATURES", [0], "above 0"),
    ("03b_backprop_by_hand.py", "BATCH_SIZE", 0, "at least 1"),
    ("03b_backprop_by_hand.py", "DEEP_SIZES", [784, 30, 5], "ends with 10"),
    ("04_improved_model.py", "FEATURE_MAP_DIGIT", 10_000, "0 to 9,999"),
    ("04_improved_model.py", "SHIFTS", [2.5], "whole numbers of pixels"),
    ("04_improved_model.py", "DROPOUT", 1.5, "up to (not including) 1"),
    ("05_understand_model.py", "PAGE_ROWS", 0, "at least 1"),
    ("05_understand_model.py", "EXPORT_FONTS", ["Comic Sans.ttf"], "font files"),
    ("05b_draw_a_digit.py", "SALIENCY_SAMPLES", 0, "at least 1"),
    ("06_beyond_99.py", "ROTATIONS", [200], "0 to 180"),
    ("06_beyond_99.py", "ROBUSTNESS_IMAGES", 50, "100 to 10,000"),
]


@pytest.mark.parametrize("filename", sorted({case[0] for case in KNOB_CASES}))
def test_the_shipped_knobs_pass_their_own_check(filename):
    script(filename).check_knobs()


@pytest.mark.parametrize(("filename", "name", "value", "accepts"), KNOB_CASES)
def test_every_scripts_knobs_are_checked_in_one_line(filename, name, value, accepts, monkeypatch):
    module = script(filename)
    monkeypatch.setattr(module, name, value)
    with pytest.raises(LearnerError) as error:
        module.check_knobs()
    message = str(error.value)
    assert message.startswith(f"{name} = {value!r} is not allowed") and accepts in message and "\n" not in message


def test_a_port_out_of_range_is_one_line():
    with pytest.raises(LearnerError, match=r"--port 99999 is not allowed: use 0 \(any free port\) or a port number"):
        script("05b_draw_a_digit.py").check_knobs(99_999)


@pytest.mark.parametrize("command", [
    ["01_explore_mnist.py", "--samples", "5"], ["02_simple_nn.py", "--seed", "1"],
    ["03b_backprop_by_hand.py", "--epochs", "2"], ["04_improved_model.py", "--epochs=5"],
    ["-m", "mnist_common", "--fashion"], ["05_understand_model.py", "--explain"],
])
def test_an_unknown_option_stops_the_script_before_any_work(command):
    done = subprocess.run([sys.executable, *command], cwd=mnist_common.ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and "error:" in done.stderr and "Traceback" not in done.stderr
    assert "==" not in done.stdout  # no section of the script started


# --- Checkpoints that are not what the script needs -------------------------------------------------------
def test_the_mlp_copied_over_the_cnn_is_one_line(trained_mlp, tmp_path):
    shutil.copy(trained_mlp["checkpoint"], tmp_path / "cnn.pt")
    with pytest.raises(LearnerError, match=r"holds a SimpleNN.* written by 03_train_model.py, not the network "
                                           r"04_improved_model.py trains: run `python 04_improved_model.py`"):
        mnist_common.load_model(tmp_path / "cnn.pt", "04_improved_model.py")


@pytest.mark.parametrize("damage", ["no normalization", "arch is a string", "unknown network"])
def test_a_hand_made_checkpoint_is_one_line_naming_the_file(trained_mlp, tmp_path, damage):
    checkpoint = torch.load(trained_mlp["checkpoint"], weights_only=True)
    if damage == "no normalization":
        del checkpoint["normalization"]
    elif damage == "arch is a string":
        checkpoint["arch"] = "SimpleNN"
    else:
        checkpoint["arch"] = {"name": "ResNet"}
    torch.save(checkpoint, tmp_path / "mlp.pt")
    with pytest.raises(LearnerError, match=r"mlp.pt (was not written by this project|describes a network this code "
                                           r"cannot build).*run `python 03_train_model.py`"):
        mnist_common.load_model(tmp_path / "mlp.pt", "03_train_model.py")


def test_a_file_where_the_models_folder_should_be_is_named_when_loading(tmp_path):
    (tmp_path / "models").write_text("not a folder")
    with pytest.raises(LearnerError, match="models is a file, not a folder"):
        mnist_common.load_model(tmp_path / "models" / "cnn.pt", "04_improved_model.py")


def test_a_broken_mlp_checkpoint_stops_04_before_it_trains(improved_model, tmp_path, monkeypatch):
    (tmp_path / "mlp.pt").write_bytes(b"half a checkpoint")
    monkeypatch.setattr(improved_model, "train_and_report", lambda *_a: pytest.fail("trained first"))
    with pytest.raises(LearnerError, match=r"mlp\.pt is not a readable checkpoint"):
        improved_model.main(out_dir=tmp_path / "figures", models_dir=tmp_path)


def test_an_image_that_cannot_be_read_is_one_line(tmp_path, monkeypatch):
    path = tmp_path / "locked.png"
    path.write_bytes(b"\x89PNG")

    def refuse(_self):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(type(path), "read_bytes", refuse)
    with pytest.raises(LearnerError, match=r"locked.png cannot be read \(Permission denied\)"):
        mnist_common.read_image(path)


# --- The experiment log, edited by hand into something no run writes -----------------------------------------
@pytest.mark.parametrize("bad", ['"3"', '"[1, 2]"', "{}"])
def test_log_rows_with_odd_settings_or_numbers_are_skipped(tmp_path, bad):
    log_one(tmp_path, 0.98)
    with open(tmp_path / "experiments.csv", "a") as f:
        if bad == "{}":  # settings fine, an infinite parameter count
            f.write('2026-01-01 00:00:00,03_train_model.py,{},fp32,3,0.9,0.9,inf,1.0\n')
        else:
            f.write(f'2026-01-01 00:00:00,03_train_model.py,{bad},fp32,3,0.9,0.9,100,1.0\n')
    with pytest.warns(UserWarning, match=r"skipped unreadable line\(s\) 3"):
        rows = read_experiments(tmp_path)
    assert len(rows) == 1 and rows[0]["test_acc"] == 0.98


def test_the_projects_warnings_are_one_line_and_others_keep_their_format():
    ours = str(mnist_common.ROOT / "mnist_common" / "experiments.py")
    with mnist_common.friendly_errors():
        assert warnings.formatwarning("a note", UserWarning, ours, 10) == "warning: a note\n"
        assert warnings.formatwarning("theirs", UserWarning, "/usr/lib/x.py", 3).startswith("/usr/lib/x.py:3")
    assert warnings.formatwarning("a note", UserWarning, ours, 10).startswith(ours)


def test_npm_says_why_it_failed_not_where_its_log_is():
    stderr = (b"npm error code ECONNREFUSED\nnpm error FetchError: request failed, reason: connect ECONNREFUSED\n"
              b"npm error A complete log of this run can be found in: /root/.npm/_logs/debug.log\n")
    assert mnist_common.data.npm_reason(stderr).endswith("reason: connect ECONNREFUSED")
    assert mnist_common.data.npm_reason(b"") == "no output"


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_a_checkpoint_with_weights_that_are_not_numbers_is_one_line(trained_mlp, tmp_path, bad):
    checkpoint = mnist_common.load_checkpoint(trained_mlp["checkpoint"], "03_train_model.py")
    name = next(iter(checkpoint["state_dict"]))
    checkpoint["state_dict"][name] = checkpoint["state_dict"][name].clone().fill_(bad)
    torch.save(checkpoint, tmp_path / "mlp.pt")
    with pytest.raises(LearnerError, match=rf"mlp\.pt holds weights that are not numbers .*in {name}\).*diverged"):
        mnist_common.load_model(tmp_path / "mlp.pt", "03_train_model.py")


def test_a_checkpoint_of_an_unknown_dataset_is_refused(trained_mlp, tmp_path):
    checkpoint = mnist_common.load_checkpoint(trained_mlp["checkpoint"], "03_train_model.py")
    checkpoint["dataset"] = "cifar10"
    torch.save(checkpoint, tmp_path / "mlp.pt")
    with pytest.raises(LearnerError, match=r"mlp\.pt was trained on a dataset this code does not know \('cifar10'"):
        mnist_common.load_model(tmp_path / "mlp.pt", "03_train_model.py")
