"""Shared fixtures: the real data once per session, the numbered scripts as modules, and a
short MLP training run whose checkpoint several tests inspect. Every output goes to tmp."""

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


@pytest.fixture(scope="session")
def trained_mlp(phase3, tmp_path_factory):
    """03's main() with 3 epochs instead of 10, writing into a temporary folder."""
    root = tmp_path_factory.mktemp("mlp_run")
    result = phase3.main(epochs=3, out_dir=root / "visualizations", models_dir=root / "models")
    result["root"] = root
    return result
