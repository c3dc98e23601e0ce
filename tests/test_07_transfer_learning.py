"""07_transfer_learning.py and mnist_common/transfer.py: your own classes, read, learned, saved and refused."""

import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from conftest import run_quietly, script
from mnist_common import FASHION, LearnerError, MnistSplits, build_model, load_mnist, load_model
from mnist_common.handwriting import prepare_digit
from mnist_common.symbols import export_example_dataset
from mnist_common.transfer import (
    OpenSetRule,
    StopRule,
    check_class_name,
    fit_open_set_rule,
    load_transfer_model,
    per_class_subset,
    read_image_folder,
    stratified_split,
)

transfer = script("07_transfer_learning.py")
understand = script("05_understand_model.py")
SMALL = replace(transfer.settings_from_knobs(), own_stop=StopRule(batch_size=16, min_steps=10, max_rounds=4,
                                                                  patience=4), augmented_copies=2)


def symbols(folder: Path, per_class: int, names=("plus", "minus")) -> Path:
    export_example_dataset(folder, per_class, seed=7, names=names)
    return folder


# --- Reading a folder --------------------------------------------------------------------------------------
def test_image_folder_is_read_and_prepared_as_image_does(tmp_path):
    folder = symbols(tmp_path / "shapes", 3, ("plus", "minus", "times"))
    (folder / "plus" / "notes.txt").write_text("not an image")  # ignored, as torchvision's ImageFolder does
    data = read_image_folder(folder)
    assert data.classes == ["minus", "plus", "times"]  # sorted folder names, as ImageFolder orders them
    assert data.views.shape == (9, 28, 28) and data.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert [p.name for p in data.ignored] == ["notes.txt"]
    for view, path in zip(data.views, data.paths):  # exactly what 05 --image sees
        assert torch.equal(view, prepare_digit(path).view)


def test_unreadable_files_are_named_and_the_rest_kept(tmp_path):
    folder = symbols(tmp_path / "shapes", 3)
    (folder / "plus" / "broken.png").write_bytes(b"not a png at all")
    said = []
    data = read_image_folder(folder, warn=said.append)
    assert len(data.labels) == 6 and [p.name for p, _ in data.skipped] == ["broken.png"]
    assert len(said) == 1 and "broken.png" in said[0]


@pytest.mark.parametrize(("make", "message"), [
    (lambda root: root / "nowhere", "not found"),
    (lambda root: (root / "a_file").write_text("x") and root / "a_file", "is a file, not a folder"),
    (lambda root: (root / "empty").mkdir() or root / "empty", "holds no class folders"),
    (lambda root: symbols(root / "one", 3, ("plus",)), "only one class (plus)"),
    (lambda root: (symbols(root / "few", 3) and (root / "few" / "zero").mkdir()) or root / "few",
     "class 'zero' has 0 usable images"),
])
def test_bad_folders_stop_with_one_line(tmp_path, make, message):
    with pytest.raises(LearnerError, match=re.escape(message)):
        read_image_folder(make(tmp_path))


def test_a_class_with_one_image_left_stops(tmp_path):
    folder = symbols(tmp_path / "shapes", 2)
    (folder / "minus" / "minus_001.png").write_bytes(b"\x89PNG damaged")
    with pytest.raises(LearnerError, match=r"class 'minus' has 1 usable image \(1 more could not be read"):
        read_image_folder(folder, warn=lambda _: None)


@pytest.mark.parametrize("name", ["a:b", "what?", " lead", "trail ", "con", "COM1", "x" * 41, "", "..", "a*b"])
def test_folder_unsafe_class_names_are_refused(name):
    with pytest.raises(LearnerError):
        check_class_name(name)


@pytest.mark.parametrize("name", ["a/b", "a\\b", "../up"])
def test_path_separators_are_named(name):
    with pytest.raises(LearnerError, match="path separator"):
        check_class_name(name)


def test_a_folder_unsafe_class_folder_stops_the_reading(tmp_path):
    folder = symbols(tmp_path / "shapes", 2)
    shutil.copytree(folder / "plus", folder / "plus?")
    with pytest.raises(LearnerError, match=re.escape("'plus?' is not folder-safe")):
        read_image_folder(folder)


@pytest.mark.parametrize("name", ["plus", "question mark", "heart_2", "x-ray", "7up", "café"])
def test_ordinary_names_pass(name):
    assert check_class_name(name) == name


# --- Splits and subsets ------------------------------------------------------------------------------------
def test_stratified_split_is_disjoint_complete_and_keeps_every_class_on_both_sides():
    labels = torch.tensor([0] * 20 + [1] * 7 + [2] * 2)
    train, held = stratified_split(labels, 0.3, seed=0)
    assert not set(train.tolist()) & set(held.tolist())
    assert sorted(train.tolist() + held.tolist()) == list(range(len(labels)))
    assert torch.bincount(labels[held]).tolist() == [6, 2, 1]  # 30% of each class, at least one
    assert torch.bincount(labels[train]).tolist() == [14, 5, 1]
    again, _ = stratified_split(labels, 0.3, seed=0)
    assert torch.equal(train, again)


def test_per_class_subsets_are_seeded_and_balanced():
    labels = torch.arange(10).repeat(50)
    first, second = per_class_subset(labels, 5, seed=1), per_class_subset(labels, 5, seed=1)
    assert torch.equal(first, second) and torch.bincount(labels[first]).tolist() == [5] * 10
    assert not torch.equal(first, per_class_subset(labels, 5, seed=2))


# --- Learning ------------------------------------------------------------------------------------------
def test_head_only_leaves_the_frozen_weights_bit_identical():
    torch.manual_seed(0)
    base = build_model({"name": "CNN", "dropout": 0.25}).eval()
    before = {name: t.clone() for name, t in base.state_dict().items()}
    x, y = torch.randn(12, 1, 28, 28), torch.arange(3).repeat(4)
    model, _ = transfer.learn_head_only(base, x, y, 3, SMALL, seed=0, background=-0.42)
    for name, tensor in base.state_dict().items():
        assert torch.equal(tensor, before[name]), name
    body = {n: t for n, t in model.state_dict().items() if not n.startswith("fc2.")}
    assert body and all(torch.equal(t, before[n]) for n, t in body.items())
    assert model.fc2.out_features == 3 and not torch.equal(model.fc2.weight[:3], before["fc2.weight"][:3])


def test_open_set_rule_accepts_its_training_images_and_refuses_the_opposite():
    features = torch.rand(20, 8) + torch.tensor([[3.0] + [0.0] * 7]).repeat(20, 1) * (torch.arange(20) % 2)[:, None]
    labels = torch.arange(20) % 2
    rule = fit_open_set_rule(features, labels, margin=0.05)
    assert rule.accepts(features).all()
    assert not rule.accepts(-features).any()
    assert isinstance(rule, OpenSetRule) and rule.centres.shape == (2, 8)


@pytest.fixture(scope="module")
def learned(models_dir, tmp_path_factory):
    """The script's part 2 on a tiny two-class folder, with the session's short-trained CNN."""
    root = tmp_path_factory.mktemp("own")
    folder = symbols(root / "tiny", 10)
    models = root / "models"
    models.mkdir()
    shutil.copy(models_dir / "cnn.pt", models / "cnn.pt")
    result = run_quietly(transfer.main, settings=SMALL, dataset_dir=folder, out_dir=root / "vis", models_dir=models)
    return {**result, "folder": folder, "models": models, "root": root}


def test_a_tiny_two_class_dataset_is_learned_well_above_chance(learned):
    own = learned["own"]
    assert own["held_out"] == 6  # 3 of the 10 images of each class
    assert own["accuracy"] >= 5 / 6  # chance is 50%
    assert own["results"]["head only"]["accuracy"] >= 5 / 6
    assert re.search(r"^held-out accuracy: \d+\.\d% \(6 images\)$", learned["printed"], re.M)
    assert own["figure"].exists() and own["model_path"] == learned["models"] / "transfer_tiny.pt"


def test_the_saved_model_round_trips(learned):
    model, checkpoint, rule = load_transfer_model(learned["own"]["model_path"])
    assert checkpoint["classes"] == ["minus", "plus"] and checkpoint["script"] == "07_transfer_learning.py"
    assert "prepare_image" in checkpoint["preparation"] and checkpoint["rule"]["accept"] == rule.accept
    saved = torch.load(learned["own"]["model_path"], weights_only=True)["state_dict"]
    assert all(torch.equal(t, saved[n]) for n, t in model.state_dict().items())
    folder = learned["folder"]
    files = sorted((folder / "plus").glob("*.png"))[:2] + sorted((folder / "minus").glob("*.png"))[:2]
    result = run_quietly(transfer.main, image_paths=files, models_dir=learned["models"])
    lines = [line for line in result["printed"].splitlines() if line.startswith(str(learned["folder"]))]
    assert len(lines) == 4
    assert [a.name for a in result["answers"]] == ["plus", "plus", "minus", "minus"]


def test_image_names_a_bad_file_and_answers_the_rest(learned, tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"nope")
    good = sorted((learned["folder"] / "plus").glob("*.png"))[0]
    result = transfer.main(image_paths=[bad, good], models_dir=learned["models"])
    assert result["failed"] == [bad] and len(result["answers"]) == 1
    assert "bad.png" in capsys.readouterr().err


def test_a_transfer_model_refuses_to_load_as_a_digit_model(learned, tmp_path):
    path = learned["own"]["model_path"]
    with pytest.raises(LearnerError, match=re.escape("written by 07_transfer_learning.py")):
        load_model(path, "04_improved_model.py")
    digit_models = tmp_path / "models"
    digit_models.mkdir()
    shutil.copy(path, digit_models / "cnn.pt")  # someone copies it over the digit model
    picture = sorted((learned["folder"] / "plus").glob("*.png"))[0]
    with pytest.raises(LearnerError, match=re.escape("not the network 04_improved_model.py trains")):
        understand.main(image_paths=[picture], models_dir=digit_models, out_dir=tmp_path / "vis")
    with pytest.raises(LearnerError, match="not a model of your own classes"):
        load_transfer_model(learned["models"] / "cnn.pt")


# --- What transfers ------------------------------------------------------------------------------------
def test_the_three_methods_run_on_the_same_small_subsets(models_dir):
    fashion = load_mnist(normalized=False, dataset=FASHION)
    small = MnistSplits((fashion.train[0][:600], fashion.train[1][:600]), (fashion.val[0][:300], fashion.val[1][:300]),
                        (fashion.test[0][:300], fashion.test[1][:300]), fashion.mean, fashion.std, FASHION)
    base, checkpoint = load_model(models_dir / "cnn.pt", "04_improved_model.py")
    settings = replace(SMALL, validation_per_class=5, stop=StopRule(batch_size=16, min_steps=5, max_rounds=3,
                                                                      patience=2))
    table = transfer.measure_transfer(base, checkpoint["normalization"], small, [2], 2, settings, "cpu", "test")
    assert set(table) == set(transfer.METHODS)
    for method in transfer.METHODS:
        assert len(table[method][2]) == 2 and all(0 <= acc <= 1 and seconds >= 0 for acc, seconds in table[method][2])
    conv = transfer.conv_head_line(base, checkpoint["normalization"], small, table, replace(settings, conv_sizes=(2,)),
                                   "cpu")
    assert list(conv) == [2] and 0 <= conv[2] <= 1
    assert transfer.conv_head_line(build_model({"name": "DeepCNN", "dropout": 0.25}), checkpoint["normalization"],
                                   small, table, settings, "cpu") == {}  # its only dense layer is the head


def test_where_pretraining_stops_helping():
    def table(gaps):
        return {"head only": {n: [(0.5 + g / 100, 1)] for n, g in gaps.items()},
                "fine-tuned": {n: [(0.5, 1)] for n in gaps}, "from scratch": {n: [(0.5, 1)] for n in gaps}}

    assert transfer.where_pretraining_stops(table({1: 9, 10: 4, 100: 0.5, 1000: -1}), 1.0)["stops_at"] == 100
    assert transfer.where_pretraining_stops(table({1: 9, 10: 0.2, 100: 3}), 1.0)["stops_at"] is None
    assert transfer.where_pretraining_stops(table({1: 0.5, 10: 0.2}), 1.0)["stops_at"] == 1
