"""Shared fixtures: the real data once per session, the numbered scripts, and short training
runs whose checkpoints several tests inspect. Every output goes to a temporary folder.

The numbered scripts are story files, not a library: nothing imports them except these tests,
which load each one from its path (a file named 03_train_model.py cannot be imported with a
plain `import`) to call its main() with a small configuration.
"""

import contextlib
import importlib.util
import io
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

import mnist_common
import mnist_common.rejection
from mnist_common import MnistSplits

SCRIPTS = mnist_common.ROOT


def script(filename: str):
    """Load a numbered script as a module (its main() does not run)."""
    path = SCRIPTS / filename
    spec = importlib.util.spec_from_file_location(path.stem.replace("-", "_"), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
def explore_mnist():
    return script("01_explore_mnist.py")


@pytest.fixture(scope="session")
def simple_nn():
    return script("02_simple_nn.py")


@pytest.fixture(scope="session")
def train_model():
    return script("03_train_model.py")


@pytest.fixture(scope="session")
def improved_model():
    return script("04_improved_model.py")


@pytest.fixture(scope="session")
def understand_model():
    return script("05_understand_model.py")


def run_into_tmp(main, tmp_path_factory, name: str, **kwargs) -> dict:
    """Call a script's main() with its figures and models sent to a fresh temporary folder."""
    root = tmp_path_factory.mktemp(name)
    result = main(out_dir=root / "visualizations", models_dir=root / "models", **kwargs)
    result["root"] = root
    return result


@pytest.fixture(scope="session")
def trained_mlp(train_model, tmp_path_factory):
    """03's main() with 3 epochs instead of 10."""
    return run_into_tmp(train_model.main, tmp_path_factory, "mlp_run",
                        settings=replace(train_model.settings_from_knobs(), epochs=3))


@pytest.fixture(scope="session")
def trained_cnn(improved_model, tmp_path_factory):
    """04's main() with a 2-epoch schedule, into an empty folder (so it finds no mlp.pt)."""
    return run_into_tmp(improved_model.main, tmp_path_factory, "cnn_run",
                        settings=replace(improved_model.settings_from_knobs(), epochs=2))


TEST_EXPOSURE_STEPS = 150  # the tests show the CNN non-digits for 150 steps, not 844: the machinery, in seconds


@pytest.fixture(scope="session", autouse=True)
def short_outlier_exposure():
    """Every cnn_taught.pt the tests make (05 --image, 05's analysis, the page) comes from a short exposure;
    benchmarks/handwriting_eval.py measures the real one."""
    steps, mnist_common.rejection.EXPOSURE_STEPS = mnist_common.rejection.EXPOSURE_STEPS, TEST_EXPOSURE_STEPS
    yield
    mnist_common.rejection.EXPOSURE_STEPS = steps


@pytest.fixture(scope="session")
def models_dir(trained_mlp, trained_cnn, tmp_path_factory):
    """A models folder holding the short runs' mlp.pt and cnn.pt and their experiment logs."""
    folder = tmp_path_factory.mktemp("models")
    for result in (trained_mlp, trained_cnn):
        shutil.copy(result["checkpoint"], folder / Path(result["checkpoint"]).name)
        with open(result["root"] / "models" / "experiments.csv") as src, \
                open(folder / "experiments.csv", "a") as dst:
            lines = src.readlines()
            dst.writelines(lines if dst.tell() == 0 else lines[1:])
    return folder


@pytest.fixture(scope="session")
def analysis(understand_model, models_dir, tmp_path_factory):
    """05's full analysis with a two-point FGSM sweep, into a temporary folder."""
    out = tmp_path_factory.mktemp("understand")
    return understand_model.main(out_dir=out, models_dir=models_dir, epsilons=[0.0, 0.3])


def run_quietly(main, **kwargs) -> dict:
    """Call a script's main() and keep what it printed, as result["printed"]."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        result = main(**kwargs)
    result["printed"] = printed.getvalue()
    return result


@pytest.fixture(scope="session")
def explore_run(explore_mnist, tmp_path_factory):
    """01's main(), once per session, figures into a temporary folder."""
    return run_quietly(explore_mnist.main, out_dir=tmp_path_factory.mktemp("explore"))


@pytest.fixture(scope="session")
def simple_nn_run(simple_nn, tmp_path_factory):
    """02's main(), once per session, figures into a temporary folder."""
    return run_quietly(simple_nn.main, out_dir=tmp_path_factory.mktemp("simple_nn"))
