"""05_understand_model.py: the analysis adds up, and your own digits are read correctly."""

import shutil
import subprocess
import sys

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFont

import mnist_common
from mnist_common.handwriting import prepare_digit


def test_confusion_matrix_sums_to_the_test_set_and_matches_accuracy(analysis, trained_cnn):
    matrix = analysis["confusion"]
    assert matrix.sum().item() == 10_000
    assert matrix.trace().item() / 10_000 == pytest.approx(analysis["accuracy"])
    assert analysis["accuracy"] == pytest.approx(trained_cnn["test_acc"], abs=1e-4)


def test_confused_pairs_count_both_directions(understand_model):
    matrix = torch.zeros(10, 10, dtype=torch.long)
    matrix[4, 9], matrix[9, 4], matrix[3, 5] = 3, 2, 4
    assert understand_model.confused_pairs(matrix)[:2] == [(5, 4, 9), (4, 3, 5)]


def test_fgsm_at_zero_is_clean_and_at_03_is_worse(analysis):
    fgsm = analysis["fgsm"]
    assert fgsm["epsilons"] == [0.0, 0.3]
    assert fgsm["CNN"][0] == pytest.approx(analysis["accuracy"])
    for name in ("MLP", "CNN"):
        assert fgsm[name][1] < fgsm[name][0] - 0.2


def test_fgsm_keeps_pixels_in_range_and_within_budget(understand_model, trained_cnn, data):
    images, labels = data.test[0][:64], data.test[1][:64]
    signs = understand_model.gradient_signs(trained_cnn["model"], images, labels)
    attacked = understand_model.perturb(images, signs, 0.1, data.mean, data.std)
    pixels, original = attacked * data.std + data.mean, images * data.std + data.mean
    assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5
    assert (pixels - original).abs().max() <= 0.1 + 1e-5


def test_temperature_scaling_does_not_raise_validation_nll(analysis):
    report = analysis["calibration"]
    assert report["after"].val_nll <= report["before"].val_nll + 1e-6
    assert 0.2 < report["after"].temperature < 5 and report["before"].temperature == 1.0


def test_temperature_fit_recovers_a_known_temperature(understand_model):
    """Labels drawn from softmax(z / 2): the fitted temperature should come out near 2."""
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(20_000, 10, generator=generator) * 4
    labels = torch.multinomial(torch.softmax(logits / 2, 1), 1, generator=generator).squeeze(1)
    assert understand_model.fit_temperature(logits, labels) == pytest.approx(2.0, rel=0.05)


def test_expected_calibration_error_by_hand(understand_model):
    probs = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    labels = torch.tensor([0, 1, 0, 0])
    ece, _ = understand_model.expected_calibration_error(probs, labels, bins=10)
    # bin 0.9: confidence 0.9, accuracy 0.5; bin 0.6: confidence 0.6, accuracy 1.0
    assert ece == pytest.approx(0.5 * 0.4 + 0.5 * 0.4)


def test_every_figure_is_written(analysis):
    names = {path.name for path in analysis["figures"]}
    assert names == {"05_correct_predictions.png", "05_wrong_predictions.png", "05_confusion_matrix.png",
                     "05_channel_activity.png", "05_saliency.png",
                     "05_confidence.png", "05_reliability.png", "05_fgsm_accuracy.png", "05_fgsm_examples.png",
                     "05_not_a_digit.png"}


# --- Your own digit --------------------------------------------------------------------------
def test_preparing_an_mnist_digit_gives_back_nearly_the_same_image(raw_data, tmp_path):
    """MNIST digits were prepared this very way, so preparing one again should change little."""
    correlations = []
    for i, image in enumerate(raw_data.test[0][:50]):
        Image.fromarray(image.numpy()).save(tmp_path / f"{i}.png")
        view = prepare_digit(tmp_path / f"{i}.png").view
        original = image.float() / 255
        correlations.append(torch.corrcoef(torch.stack([view.flatten(), original.flatten()]))[0, 1])
    correlations = torch.stack(correlations)
    assert correlations.median() > 0.99 and correlations.min() > 0.9


def test_a_resized_inverted_off_centre_test_digit_is_recognised(understand_model, models_dir, raw_data, tmp_path):
    images, labels = raw_data.test
    paths, truth = [], []
    for digit in range(10):
        image = images[(labels == digit).nonzero()[1, 0]].numpy()
        paper = Image.new("L", (300, 200), color=235)  # light paper, dark ink, digit off to one side
        paper.paste(Image.fromarray(255 - image).resize((84, 84)), (190, 20))
        paths.append(tmp_path / f"digit_{digit}.jpg")
        paper.save(paths[-1], quality=90)
        truth.append(digit)
    result = understand_model.main(image_paths=paths, models_dir=models_dir, out_dir=tmp_path)
    assert result["predictions"] == truth
    assert result["figure"].exists()


def render_font_digit(digit: int, size: int) -> Image.Image:
    """A digit that was never in MNIST: typed in DejaVu Sans (the font matplotlib ships)."""
    font_path = matplotlib.font_manager.findfont("DejaVu Sans")
    font = ImageFont.truetype(font_path, size)
    image = Image.new("L", (size * 2, size * 2), color=255)
    ImageDraw.Draw(image).text((size // 2, size // 3), str(digit), fill=0, font=font)
    return image


def test_digits_typed_in_a_font_are_mostly_recognised(understand_model, models_dir, tmp_path):
    paths = []
    for digit in range(10):
        paths.append(tmp_path / f"font_{digit}.png")
        render_font_digit(digit, 120).save(paths[-1])
    predictions = understand_model.main(image_paths=paths, models_dir=models_dir, out_dir=tmp_path)["predictions"]
    right = sum(p == d for d, p in enumerate(predictions))
    assert right >= 8, f"only {right} of 10 typed digits recognised: {predictions}"


@pytest.mark.parametrize(("content", "message"), [
    (None, "not found"),
    (b"these are not pixels", "is not an image"),
    ("blank", "looks blank"),
])
def test_bad_images_give_one_clear_line_and_a_nonzero_exit(content, message, tmp_path):
    path = tmp_path / "digit.png"
    if content == "blank":
        Image.fromarray(np.full((50, 50), 255, dtype=np.uint8)).save(path)
    elif content is not None:
        path.write_bytes(content)
    run = subprocess.run([sys.executable, str(mnist_common.ROOT / "05_understand_model.py"), "--image", str(path)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1
    assert run.stderr.strip().startswith("error:") and message in run.stderr
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1


def test_missing_cnn_checkpoint_says_which_script_to_run(understand_model, tmp_path):
    with pytest.raises(mnist_common.LearnerError, match=r"cnn.pt not found: run `python 04_improved_model.py`"):
        understand_model.main(out_dir=tmp_path, models_dir=tmp_path)


def test_exported_test_digits_are_images_of_their_label(understand_model, tmp_path):
    result = understand_model.main(export_dir=tmp_path / "digits")
    assert [p.name for p in result["exported"]] == [f"test_digit_{d}.png" for d in range(10)]
    with Image.open(result["exported"][3]) as image:
        assert image.size == (140, 140)


# --- Your own digit: files as drawing programs and cameras make them --------------------------------
def mnist_digit(raw_data, digit: int) -> np.ndarray:
    images, labels = raw_data.test
    return images[(labels == digit).nonzero()[2, 0]].numpy()


def test_a_transparent_drawing_uses_its_opaque_pixels_as_ink(understand_model, models_dir, raw_data, tmp_path):
    strokes = mnist_digit(raw_data, 7)  # (28, 28) ink 0-255
    big = np.asarray(Image.fromarray(strokes).resize((280, 280), Image.BILINEAR))
    rgba = np.zeros((280, 280, 4), dtype=np.uint8)  # black strokes, transparent everywhere else
    rgba[..., 3] = big
    Image.fromarray(rgba, "RGBA").save(tmp_path / "drawn.png")
    result = understand_model.main(image_paths=[tmp_path / "drawn.png"], models_dir=models_dir, out_dir=tmp_path)
    assert result["predictions"] == [7]


def test_a_16_bit_png_is_scaled_not_clipped(understand_model, models_dir, raw_data, tmp_path):
    seven = mnist_digit(raw_data, 7).astype(np.uint16) * 257  # full 16-bit range
    Image.fromarray(65535 - seven).save(tmp_path / "seven16.png")  # dark ink on white paper, 16 bits
    with Image.open(tmp_path / "seven16.png") as check:
        assert check.mode.startswith("I")
    result = understand_model.main(image_paths=[tmp_path / "seven16.png"], models_dir=models_dir, out_dir=tmp_path)
    assert result["predictions"] == [7]


def test_one_bad_file_among_several_is_reported_and_the_rest_predicted(understand_model, models_dir, raw_data,
                                                                        tmp_path, capsys):
    Image.fromarray(255 - mnist_digit(raw_data, 3)).resize((112, 112)).save(tmp_path / "three.png")
    (tmp_path / "folder.png").mkdir()
    paths = [tmp_path / "missing.png", tmp_path / "three.png", tmp_path / "folder.png"]
    result = understand_model.main(image_paths=paths, models_dir=models_dir, out_dir=tmp_path)
    assert result["predictions"] == [3] and result["failed"] == [paths[0], paths[2]]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "not found" in err[0] and "is a folder" in err[1]


def test_thin_and_damaged_files_are_one_line_each_and_the_others_answered(understand_model, models_dir, raw_data,
                                                                          tmp_path, capsys):
    Image.new("L", (400, 1), color=255).save(tmp_path / "line.png")
    Image.new("L", (20000, 10), color=255).save(tmp_path / "strip.png")
    Image.fromarray(255 - mnist_digit(raw_data, 3)).resize((112, 112)).save(tmp_path / "three.png")
    whole = (tmp_path / "three.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(whole[: len(whole) // 2])  # a download that stopped halfway
    short_chunk = b"\x00\x00\x00\x01pHYs\x00" + b"\x00" * 4  # a pHYs chunk one byte long: damaged
    (tmp_path / "damaged.png").write_bytes(whole[:33] + short_chunk + whole[33:])
    paths = [tmp_path / name for name in ("line.png", "strip.png", "cut.png", "damaged.png", "three.png")]
    result = understand_model.main(image_paths=paths, models_dir=models_dir, out_dir=tmp_path)
    assert result["predictions"] == [3] and result["failed"] == paths[:4]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(path.name in line for path, line in zip(paths, err)), err
    assert "too thin" in err[0] and "too thin" in err[1] and "Traceback" not in "".join(err)


def test_a_huge_image_is_refused_in_one_line(tmp_path):
    Image.new("L", (8000, 6000), color=255).save(tmp_path / "huge.png")
    with pytest.raises(mnist_common.LearnerError, match="is too large"):
        prepare_digit(tmp_path / "huge.png")


def test_image_mode_never_reads_the_mlp(understand_model, models_dir, raw_data, tmp_path, capsys):
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy(models_dir / "cnn.pt", folder / "cnn.pt")
    (folder / "mlp.pt").write_bytes(b"a broken file that must not be opened")
    Image.fromarray(255 - mnist_digit(raw_data, 0)).resize((112, 112)).save(tmp_path / "zero.png")
    result = understand_model.main(image_paths=[tmp_path / "zero.png"], models_dir=folder, out_dir=tmp_path)
    assert result["predictions"] == [0] and "mlp" not in capsys.readouterr().out


def test_the_not_a_digit_histogram_has_an_edge_on_each_threshold(understand_model):
    """So no bar straddles a line and every bar lies in one verdict's shading."""
    edges = understand_model.edges_through(-11, 30, -2.6, 0.85)
    assert edges[0] <= -11 and edges[-1] >= 30 and 40 <= len(edges) <= 70
    assert np.allclose(np.diff(edges), edges[1] - edges[0])
    for line in (-2.6, 0.85):
        assert np.isclose(edges, line, atol=1e-9).any()
