"""03b_backprop_by_hand.py: the hand-written gradients are right, and the experiments show what they claim."""

import numpy as np
import pytest

from conftest import script

backprop = script("03b_backprop_by_hand.py")


@pytest.fixture(scope="module")
def arrays(data):
    return backprop.numpy_splits(data)


@pytest.fixture(scope="module")
def float64_batch(arrays):
    rng = np.random.default_rng(1)
    net = backprop.init_network([784, 32, 10], rng, dtype=np.float64)
    x, labels = arrays["train_x"][:16].astype(np.float64), arrays["train_y"][:16]
    return net, x, labels, rng


def test_the_gradient_check_passes_for_the_right_backward_pass(float64_batch):
    net, x, labels, rng = float64_batch
    y = backprop.one_hot(labels, dtype=np.float64)
    assert backprop.finite_difference_check(net, x, y, per_array=15, rng=rng) < 1e-6


def test_the_gradient_check_catches_a_forgotten_relu_derivative(float64_batch):
    net, x, labels, rng = float64_batch
    broken = backprop.Network(net.W, net.b, backprop.RELU_WITHOUT_DERIVATIVE)
    y = backprop.one_hot(labels, dtype=np.float64)
    assert backprop.finite_difference_check(broken, x, y, per_array=15, rng=rng) > 1e-2


def test_hand_gradients_equal_autograd_in_float64(float64_batch):
    net, x, labels, _ = float64_batch
    assert backprop.autograd_difference(net, x, labels) < 1e-10


@pytest.mark.parametrize("output", ["sigmoid-ce", "sigmoid-quadratic"])
def test_the_other_costs_pass_the_gradient_check_too(arrays, output):
    rng = np.random.default_rng(2)
    net = backprop.init_network([784, 16, 10], rng, scheme="scaled", hidden=backprop.SIGMOID, output=output,
                                dtype=np.float64)
    x, labels = arrays["train_x"][:8].astype(np.float64), arrays["train_y"][:8]
    assert backprop.finite_difference_check(net, x, backprop.one_hot(labels, dtype=np.float64), 10, rng) < 1e-6


def test_one_epoch_by_hand_passes_95_percent(arrays):
    result = backprop.train_by_hand(arrays, hidden=128, epochs=1, batch_size=64, learning_rate=0.1, seed=0)
    assert result["test_acc"] >= 0.95


def test_cross_entropy_escapes_a_saturated_start_faster_than_the_quadratic_cost(arrays):
    curves = backprop.cost_experiment(arrays, steps=60, batch_size=64, rate=0.05, seed=0)
    quadratic, cross_entropy = curves["sigmoid-quadratic"]["quadratic"], curves["sigmoid-ce"]["quadratic"]
    assert quadratic[0] == pytest.approx(cross_entropy[0])  # the same start
    assert np.mean(cross_entropy[20:60]) < np.mean(quadratic[20:60]) / 2


def test_a_deep_sigmoid_network_starts_with_a_vanishing_first_layer_gradient(arrays):
    rng = np.random.default_rng(0)
    net = backprop.init_network([784, 30, 30, 30, 30, 10], rng, scheme="normal", hidden=backprop.SIGMOID)
    norms = backprop.gradient_norms(net, arrays["val_x"][:1000], arrays["val_y"][:1000])
    assert norms[-1] >= 10 * norms[0]
    relu = backprop.init_network([784, 30, 30, 30, 30, 10], np.random.default_rng(0), scheme="he")
    relu_norms = backprop.gradient_norms(relu, arrays["val_x"][:1000], arrays["val_y"][:1000])
    assert relu_norms[-1] < 3 * relu_norms[0]  # with ReLU and He's initialization the layers learn alike


def test_l2_keeps_the_weights_smaller(arrays):
    results = backprop.l2_experiment(arrays, n_train=500, epochs=10, l2=0.01, seed=0, batch_size=64, rate=0.1)
    assert results[0.01][-1, 3] < results[0.0][-1, 3]  # sum of squared weights


def test_main_writes_its_figures(tmp_path):
    result = backprop.main(out_dir=tmp_path, models_dir=tmp_path, per_array=3, epochs=1)
    assert [p.name for p in result["figures"]] == [
        "03b_gradient_check.png", "03b_training.png", "03b_cost_functions.png", "03b_initialization.png",
        "03b_vanishing_gradients.png", "03b_regularization.png"]
    assert result["checks"]["right"] < 1e-6 < 1e-2 < result["checks"]["broken"]
    assert result["training"]["test_acc"] >= 0.95 and result["training"]["torch_seconds"] is None
