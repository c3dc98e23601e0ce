"""Shared fixtures: the real data once per session, the numbered scripts as modules, and a
short MLP training run whose checkpoint several tests inspect. Every output goes to tmp."""

import shutil

import pytest

import mnist_common
from mnist_common import MnistSplits


@pytest.fixture(scope="session")
def data():
    """Real, normalized MNIST (fetched by `make test` beforehand, or here on first use)."""
    return mnist_common.load_mnist()


@pytest.fixture(scope="session")
def raw_data():
    return mnist_common.load_mnist(normalized=False)


def subset(data: MnistSplits, n_train: int, n_eval: int) -> MnistSplits:
    """A small slice of every split, for tests that only need the machinery to run."""
    return MnistSplits((data.train[0][:n_train], data.train[1][:n_train]),
                       (data.val[0][:n_eval], data.val[1][:n_eval]),
                       (data.test[0][:n_eval], data.test[1][:n_eval]), data.mean, data.std)


@pytest.fixture(scope="session")
def phase1():
    return mnist_common.load_script("01_explore_mnist")


@pytest.fixture(scope="session")
def phase2():
    return mnist_common.load_script("02_simple_nn")


@pytest.fixture(scope="session")
def phase3():
    return mnist_common.load_script("03_train_model")


def run_into_tmp(main, tmp_path_factory, name: str, **settings) -> dict:
    """Call a script's main() with its figures and models sent to a fresh temporary folder."""
    root = tmp_path_factory.mktemp(name)
    result = main(out_dir=root / "visualizations", models_dir=root / "models", **settings)
    result["root"] = root
    return result


@pytest.fixture(scope="session")
def trained_mlp(phase3, tmp_path_factory):
    """03's main() with 3 epochs instead of 10."""
    return run_into_tmp(phase3.main, tmp_path_factory, "mlp_run", epochs=3)


@pytest.fixture(scope="session")
def phase5():
    return mnist_common.load_script("04_improved_model")


@pytest.fixture(scope="session")
def trained_cnn(phase5, tmp_path_factory):
    """04's main() with a 2-epoch schedule, into an empty folder (so it finds no mlp.pt)."""
    return run_into_tmp(phase5.main, tmp_path_factory, "cnn_run", epochs=2)


@pytest.fixture(scope="session")
def phase6():
    return mnist_common.load_script("05_understand_model")


@pytest.fixture(scope="session")
def models_dir(trained_mlp, trained_cnn, tmp_path_factory):
    """A models folder holding the short runs' mlp.pt and cnn.pt and their experiment logs."""
    folder = tmp_path_factory.mktemp("models")
    for result in (trained_mlp, trained_cnn):
        shutil.copy(result["checkpoint"], folder / result["checkpoint"].name)
        with open(result["root"] / "models" / "experiments.csv") as src, \
                open(folder / "experiments.csv", "a") as dst:
            lines = src.readlines()
            dst.writelines(lines if dst.tell() == 0 else lines[1:])
    return folder


@pytest.fixture(scope="session")
def analysis(phase6, models_dir, tmp_path_factory):
    """05's full analysis with a two-point FGSM sweep, into a temporary folder."""
    out = tmp_path_factory.mktemp("understand")
    return phase6.main(out_dir=out, models_dir=models_dir, epsilons=[0.0, 0.3])
