"""MNIST_DATASET=fashion: the same journey on Fashion-MNIST, its own files, checksums, names and models."""

import gzip
import hashlib

import pytest
import torch

import mnist_common
from mnist_common import FASHION, MNIST, Dataset, LearnerError, MLPSettings, current_dataset
from mnist_common.data import DEBIAN_FASHION, from_debian


def fashion_files_available() -> bool:
    raw = mnist_common.DATA_DIR / "FashionMNIST" / "raw"
    return DEBIAN_FASHION.is_dir() or all((raw / name).exists() for name in FASHION.files)


def test_the_switch_selects_fashion_and_its_names(monkeypatch):
    monkeypatch.setenv("MNIST_DATASET", "fashion")
    dataset = current_dataset()
    assert dataset is FASHION and dataset.folder == "FashionMNIST" and dataset.item == "item"
    assert dataset.classes[0] == "T-shirt/top" and dataset.classes[9] == "Ankle boot" and len(dataset.classes) == 10
    assert dataset.files["train-images-idx3-ubyte"].startswith("c59f468a")
    assert set(dataset.files) == set(MNIST.files) and dataset.files != MNIST.files
    monkeypatch.delenv("MNIST_DATASET")
    assert current_dataset() is MNIST


def test_an_unknown_dataset_is_one_line(monkeypatch):
    monkeypatch.setenv("MNIST_DATASET", "cifar")
    with pytest.raises(LearnerError, match="MNIST_DATASET=cifar is not a dataset: use mnist or fashion"):
        current_dataset()


def test_a_debian_style_source_is_verified_and_placed_atomically(tmp_path):
    """A simulated package folder of .gz files: the right one lands, the corrupted one is refused."""
    package, raw, work = tmp_path / "package", tmp_path / "raw", tmp_path / "work"
    for folder in (package, raw, work):
        folder.mkdir()
    good, bad = b"\x00\x00\x08\x01" + bytes(range(200)), b"\x00\x00\x08\x01" + b"tampered"
    files = {"train-labels-idx1-ubyte": hashlib.sha256(good).hexdigest(),
             "t10k-labels-idx1-ubyte": hashlib.sha256(good + b"!").hexdigest()}
    simulated = Dataset("fashion", "Fashion-MNIST", "FashionMNIST", files, FASHION.classes, "item")
    with gzip.open(package / "train-labels-idx1-ubyte.gz", "wb") as f:
        f.write(good)
    with gzip.open(package / "t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write(bad)
    with pytest.warns(UserWarning, match="wrong SHA-256"):
        from_debian(simulated, raw, list(files), work, folder=package)
    assert [p.name for p in raw.iterdir()] == ["train-labels-idx1-ubyte"]
    assert (raw / "train-labels-idx1-ubyte").read_bytes() == good and not list(work.iterdir())


def test_a_missing_debian_package_says_how_to_install_it(tmp_path):
    with pytest.raises(LearnerError, match="sudo apt install dataset-fashion-mnist"):
        from_debian(FASHION, tmp_path, list(FASHION.files), tmp_path, folder=tmp_path / "nowhere")


def test_a_fashion_checkpoint_in_an_mnist_run_is_one_clear_line(trained_mlp, tmp_path):
    checkpoint = mnist_common.load_checkpoint(trained_mlp["checkpoint"], "03_train_model.py")
    checkpoint["dataset"] = "fashion"
    torch.save(checkpoint, tmp_path / "mlp.pt")
    with pytest.raises(LearnerError) as error:
        mnist_common.load_model(tmp_path / "mlp.pt", "03_train_model.py")
    message = str(error.value)
    assert "was trained on Fashion-MNIST, but this run uses MNIST" in message and "\n" not in message


def test_mnist_and_fashion_never_share_folders():
    assert MNIST.folder != FASHION.folder
    fashion_models = mnist_common.ROOT / "models" / "fashion"
    assert fashion_models != mnist_common.MODELS_DIR  # this run is MNIST's; Fashion's runs use models/fashion


@pytest.fixture(scope="module")
def fashion_data():
    if not fashion_files_available():
        pytest.skip("Fashion-MNIST's files are not here: on Debian or Ubuntu, sudo apt install "
                    "dataset-fashion-mnist (CI installs it), or put the four files in data/FashionMNIST/raw")
    return mnist_common.load_mnist(dataset=FASHION)


def test_real_fashion_files_verify_and_split_as_mnist_does(fashion_data):
    assert [len(split[1]) for split in (fashion_data.train, fashion_data.val, fashion_data.test)] == [54_000, 6_000,
                                                                                                    10_000]
    assert torch.bincount(fashion_data.test[1], minlength=10).tolist() == [1_000] * 10  # exactly balanced
    assert fashion_data.classes[7] == "Sneaker" and 0.28 < fashion_data.mean < 0.29


def test_a_short_mlp_run_on_fashion_passes_84_percent(fashion_data):
    settings = MLPSettings(epochs=1, batch_size=64, learning_rate=0.001, optimizer="adam", hidden_sizes=(128,),
                           activation="relu", dropout=0.0, batch_norm=False, weight_decay=0.0, seed=0)
    device = torch.device("cpu")
    run = mnist_common.train_mlp(settings, fashion_data, device, mnist_common.pick_precision(device, verbose=False))
    _, accuracy = mnist_common.evaluate(run.model, *fashion_data.test)
    assert accuracy >= 0.84
