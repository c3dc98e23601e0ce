"""02_simple_nn.py: the network's shape, its parameter count, and the maths it teaches."""

import math

import pytest
import torch

import mnist_common
from mnist_common import SimpleNN


def test_output_shape_and_parameter_count():
    model = SimpleNN()
    assert model(torch.randn(5, 1, 28, 28)).shape == (5, 10)
    assert sum(p.numel() for p in model.parameters()) == 101_770 == 784 * 128 + 128 + 128 * 10 + 10


def test_other_architectures_count_their_parameters():
    model = SimpleNN([512, 256], "tanh", dropout=0.2, batch_norm=True)
    linear = 784 * 512 + 512 + 512 * 256 + 256 + 256 * 10 + 10
    batch_norm = 2 * (512 + 256)
    assert sum(p.numel() for p in model.parameters()) == linear + batch_norm
    assert model(torch.randn(3, 1, 28, 28)).shape == (3, 10)


def test_unknown_activation_is_a_clear_error():
    with pytest.raises(mnist_common.LearnerError, match="unknown activation 'swish'"):
        SimpleNN(activation="swish")


def test_softmax_worked_example_matches_hand_computation(simple_nn):
    steps = simple_nn.softmax_steps(simple_nn.PLAN_LOGITS)
    exps = [math.exp(z) for z in simple_nn.PLAN_LOGITS]
    by_hand = [e / sum(exps) for e in exps]
    assert steps["probs"].tolist() == pytest.approx(by_hand, abs=1e-12)
    assert round(steps["probs"][7].item(), 3) == 0.640
    assert steps["probs"].sum().item() == pytest.approx(1.0)


def test_the_plans_second_example_is_corrected(simple_nn):
    probs = simple_nn.softmax_steps([2.0, 3.5, 1.0])["probs"]
    assert [round(p, 3) for p in probs.tolist()] == [0.171, 0.766, 0.063]


def test_temperature_sharpens_and_flattens(simple_nn):
    cold = simple_nn.softmax_with_temperature(simple_nn.PLAN_LOGITS, 0.5)
    hot = simple_nn.softmax_with_temperature(simple_nn.PLAN_LOGITS, 5.0)
    standard = torch.softmax(torch.tensor(simple_nn.PLAN_LOGITS, dtype=torch.float64), 0)
    assert cold[7] > standard[7] > hot[7] > 0.1
    assert torch.allclose(simple_nn.softmax_with_temperature(simple_nn.PLAN_LOGITS, 1.0), standard)


def test_two_linear_layers_collapse_into_one(simple_nn):
    collapse = simple_nn.linear_collapse(seed=3)
    assert collapse["max_difference"] < 1e-4
    assert collapse["two_layer_parameters"] == 101_770 and collapse["merged_parameters"] == 7_850


def test_activation_gradients_match_the_formulas(simple_nn):
    x = torch.tensor([-2.0, -0.5, 0.5, 2.0])
    curves = simple_nn.activation_curves(x)
    assert curves["relu"][1].tolist() == [0, 0, 1, 1]
    s = torch.sigmoid(x)
    assert torch.allclose(curves["sigmoid"][1], s * (1 - s))
    assert torch.allclose(curves["tanh"][1], 1 - torch.tanh(x) ** 2)


def test_main_writes_figures_and_an_untrained_model_is_near_chance(simple_nn_run):
    result = simple_nn_run
    assert result["parameters"] == 101_770
    assert 0.02 < result["untrained_accuracy"] < 0.25
    assert [p.name for p in result["figures"]] == ["02_untrained_prediction.png", "02_softmax.png",
                                                   "02_activations.png"]
