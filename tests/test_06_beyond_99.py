"""06_beyond_99.py: augmentation helps on moved digits, and the ensemble votes, saves and resumes."""

from dataclasses import replace

import pytest
import torch

import mnist_common
from conftest import script, subset
from mnist_common import AugmentedCNNSettings, CNNSettings, DeepCNN, Ensemble, predict_logits, shifted_accuracy

beyond = script("06_beyond_99.py")

SHORT = AugmentedCNNSettings(epochs=1, batch_size=128, learning_rate=0.005, dropout=0.25, rotation=12, scale=0.1,
                             shift=2.5, label_smoothing=0.1, seed=0)


@pytest.fixture(scope="module")
def small(data):
    return subset(data, 6_000, 2_000)


@pytest.fixture(scope="module")
def device_and_precision():
    device = mnist_common.pick_device(verbose=False)
    return device, mnist_common.pick_precision(device, verbose=False, fastest=True)


def test_deep_cnn_shapes_and_parameters():
    model = DeepCNN()
    assert model(torch.randn(3, 1, 28, 28)).shape == (3, 10)
    assert mnist_common.count_parameters(model) == 141_418
    assert mnist_common.build_model(model.arch).arch == model.arch


def test_augmentation_helps_on_moved_digits(small, device_and_precision):
    device, precision = device_and_precision
    plain = replace(SHORT, rotation=0, scale=0.0, shift=0.0)
    background = -small.mean / small.std
    scores = {}
    for name, settings in (("augmented", SHORT), ("plain", plain)):
        run = mnist_common.train_cnn(settings, small.to(device), device, precision)
        scores[name] = shifted_accuracy(run.model, *small.test, 3, background)
    assert scores["augmented"] > scores["plain"] + 0.05, scores


def test_the_ensemble_averages_its_members_probabilities(data):
    torch.manual_seed(0)
    members = [DeepCNN().eval(), DeepCNN().eval()]
    x = data.test[0][:64]
    averaged = torch.stack([predict_logits(m, x).softmax(1) for m in members]).mean(0)
    assert torch.allclose(predict_logits(Ensemble(members), x).exp(), averaged, atol=1e-6)


def test_the_ensemble_saves_each_network_and_a_rerun_trains_only_the_missing_ones(data, tmp_path, monkeypatch,
                                                                               device_and_precision):
    device, precision = device_and_precision
    small = subset(data, 3_000, 2_000)
    first = beyond.train_members(SHORT, 2, small, device, precision, tmp_path)
    assert [m["trained_now"] for m in first] == [True, True]
    assert sorted(p.name for p in (tmp_path / "ensemble").iterdir()) == ["deepcnn_seed0.pt", "deepcnn_seed1.pt"]
    calls = []
    real = beyond.train_cnn

    def counted(settings, *args):
        calls.append(settings.seed)
        return real(settings, *args)

    monkeypatch.setattr(beyond, "train_cnn", counted)
    again = beyond.train_members(SHORT, 3, small, device, precision, tmp_path)
    assert calls == [2] and [m["trained_now"] for m in again] == [False, False, True]
    changed = beyond.train_members(replace(SHORT, rotation=5), 1, small, device, precision, tmp_path)
    assert calls == [2, 0] and changed[0]["trained_now"]  # other settings: trained again, not reused

    curve = beyond.ensemble_curve(again[:2], small)
    best = max(m["test_acc"] for m in again[:2])
    assert curve[-1] >= best - 0.005  # two voters are at least about as good as the better one


def test_a_ctrl_c_after_the_first_epoch_saves_nothing_for_that_network(small, tmp_path, monkeypatch,
                                                                      device_and_precision):
    device, precision = device_and_precision

    def interrupted(settings, data, device, precision):
        run = mnist_common.train_cnn(CNNSettings(epochs=1, batch_size=256, learning_rate=0.005, dropout=0.25,
                                                 seed=settings.seed), data, device, precision)
        run.history.stop_reason = "Ctrl-C"
        return run

    monkeypatch.setattr(beyond, "train_cnn", interrupted)
    assert beyond.train_members(SHORT, 2, small, device, precision, tmp_path) == []
    assert not (tmp_path / "ensemble").exists() or not list((tmp_path / "ensemble").iterdir())


@pytest.mark.parametrize("models", [0, 11, 99999999999999999999])
def test_bad_ensemble_size_is_one_line(tmp_path, models):
    with pytest.raises(mnist_common.LearnerError, match=f"--models {models} is not allowed.*from 1 to 10"):
        beyond.main(models=models, out_dir=tmp_path, models_dir=tmp_path)


def test_a_truncated_member_is_retrained_with_a_line_that_says_so(tmp_path, capsys):
    path = beyond.member_path(tmp_path, SHORT.seed)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"half a checkpoint")
    assert beyond.finished_member(path, SHORT, torch.device("cpu")) is None
    printed = capsys.readouterr().out
    assert "cannot be used" in printed and "training it again" in printed and "delete it" not in printed


def test_the_widths_knob_builds_that_network_and_older_checkpoints_count_as_the_default(data, tmp_path,
                                                                                       device_and_precision):
    device, precision = device_and_precision
    narrow = replace(SHORT, widths=(4, 8, 8, 16))
    run = mnist_common.train_cnn(narrow, subset(data, 3_000, 1_000).to(device), device, precision)
    assert [m.out_channels for m in run.model.modules() if isinstance(m, torch.nn.Conv2d)] == [4, 8, 8, 16]
    assert run.model.arch["widths"] == [4, 8, 8, 16]
    with pytest.raises(mnist_common.LearnerError, match="WIDTHS"):
        replace(SHORT, widths=(32, 64))
    # a checkpoint saved before the knob existed has no "widths" in its settings: it was the default network
    run = mnist_common.train_cnn(replace(SHORT, epochs=1), subset(data, 3_000, 1_000).to(device), device, precision)
    run.test_loss, run.test_acc = 0.0, 0.0
    path = beyond.member_path(tmp_path, SHORT.seed)
    mnist_common.save_run(run, data, path, "06_beyond_99.py", log_dir=tmp_path)
    checkpoint = torch.load(path, weights_only=True)
    del checkpoint["settings"]["widths"]
    torch.save(checkpoint, path)
    assert beyond.finished_member(path, SHORT, torch.device("cpu")) is not None
    assert beyond.finished_member(path, replace(SHORT, widths=(48, 96, 96, 192)), torch.device("cpu")) is None


def test_clothes_get_their_own_augmentation_and_wider_layers(monkeypatch):
    monkeypatch.setenv(mnist_common.DATASET_ENV, "fashion")
    clothes = beyond.settings_from_knobs()
    assert (clothes.flip, clothes.rotation, clothes.epochs, clothes.widths) == (True, 0, 30, (48, 96, 96, 192))
    monkeypatch.setenv(mnist_common.DATASET_ENV, "mnist")
    digits = beyond.settings_from_knobs()
    assert (digits.flip, digits.rotation, digits.widths) == (False, beyond.ROTATION, (32, 64, 64, 128))
