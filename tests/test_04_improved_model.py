"""04_improved_model.py: the plan's CNN, its honest parameter count, and what it learned."""

import shutil

import pytest
import torch
import torch.nn.functional as F

import mnist_common
from mnist_common import CNN, build_model, predict_logits


def test_layer_shapes_follow_the_plan(improved_model):
    shapes = [shape for _, shape, _ in improved_model.layer_table(CNN())]
    assert shapes == [(1, 28, 28), (32, 28, 28), (32, 14, 14), (64, 14, 14), (64, 7, 7), (3136,), (128,), (10,)]
    assert CNN()(torch.randn(4, 1, 28, 28)).shape == (4, 10)


def test_parameter_counts():
    model = CNN()
    assert mnist_common.count_parameters(model) == 421_642
    conv = mnist_common.count_parameters(model.conv1) + mnist_common.count_parameters(model.conv2)
    assert conv == 18_816 == (9 * 1 * 32 + 32) + (9 * 32 * 64 + 64)
    assert mnist_common.count_parameters(model.fc1) == 3136 * 128 + 128


def test_pooling_before_relu_is_the_plans_network():
    """The plan says conv -> ReLU -> pool; the code pools first. Same numbers, checked here."""
    model = CNN().eval()
    x = torch.randn(16, 1, 28, 28)

    def plan_order(x):
        x = F.max_pool2d(F.relu(model.conv1(x)), 2)
        x = F.max_pool2d(F.relu(model.conv2(x)), 2)
        return model.fc2(F.relu(model.fc1(x.flatten(1))))

    assert torch.allclose(model(x), plan_order(x), atol=1e-6)


def test_filter_descriptions_recognise_classic_kernels_and_their_sign(improved_model):
    sobel_x = torch.tensor([[[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]]])
    flipped_y = -torch.tensor([[[-1.0, -2, -1], [0, 0, 0], [1, 2, 1]]])
    dark_blob = -torch.ones(1, 3, 3)
    matches = improved_model.describe_filters(torch.stack([sobel_x, flipped_y, dark_blob]))
    assert (matches[0].pattern, matches[0].polarity) == ("vertical edge", "bright on the right")
    assert matches[0].similarity == pytest.approx(1.0)
    assert (matches[1].pattern, matches[1].polarity) == ("horizontal edge", "bright above")
    assert (matches[2].pattern, matches[2].polarity) == ("blob", "responds to darkness")


def test_random_filters_are_often_called_edges_too(improved_model):
    chance = improved_model.random_filter_baseline(seeds=50)
    assert 12 < chance["edges_mean"] < 22 and 0.4 < chance["similarity_mean"] < 0.65


def test_shift_test_and_filter_evidence_are_reported(trained_cnn):
    shifted = trained_cnn["shifted"]["CNN"]
    assert shifted[0] == pytest.approx(trained_cnn["test_acc"]) and shifted[0] > shifted[1] > shifted[2] > shifted[3]
    assert trained_cnn["filters"]["trained"]["edges"] + 0 >= 0 and len(trained_cnn["filters"]["random"]["edges"]) == 200


def test_short_training_run_reaches_99_percent(trained_cnn):
    assert trained_cnn["test_acc"] >= 0.990
    assert trained_cnn["parameters"]["total"] == 421_642


def test_figures_land_in_the_given_folder(trained_cnn):
    names = {path.name for path in trained_cnn["figures"]}
    assert {"04_filters.png", "04_feature_maps_conv1.png", "04_feature_maps_conv2.png",
            "04_training_curves.png", "04_mlp_vs_cnn.png", "04_shifted_digits.png"} == names
    assert all(path.parent == trained_cnn["root"] / "visualizations" for path in trained_cnn["figures"])


def test_comparison_without_mlp_checkpoint_carries_on(trained_cnn):
    assert list(trained_cnn["comparison"]) == ["CNN"]


def test_comparison_reads_the_mlp_checkpoint(improved_model, trained_mlp, data, tmp_path):
    shutil.copy(trained_mlp["checkpoint"], tmp_path / "mlp.pt")
    summary = improved_model.load_mlp_summary(tmp_path, data)
    assert summary["test_acc"] == trained_mlp["test_acc"]  # both evaluated in fp32: exactly equal
    assert summary["parameters"] == 101_770


def test_cnn_checkpoint_round_trip_and_wrong_architecture(trained_cnn, trained_mlp, data):
    path = trained_cnn["checkpoint"]
    checkpoint = mnist_common.load_checkpoint(path, "04_improved_model.py")
    model = mnist_common.load_weights(build_model(checkpoint["arch"]), checkpoint, path)
    images = data.test[0][:300]
    assert torch.equal(predict_logits(model, images), predict_logits(trained_cnn["model"], images))
    mlp_checkpoint = mnist_common.load_checkpoint(trained_mlp["checkpoint"], "03_train_model.py")
    with pytest.raises(mnist_common.LearnerError, match=r"holds a SimpleNN\(.*model here is a CNN"):
        mnist_common.load_weights(CNN(), mlp_checkpoint, trained_mlp["checkpoint"])
