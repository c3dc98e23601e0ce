"""Your own handwriting: photos and drawings prepared robustly, and "that is not a digit" said honestly.

Every picture here is drawn by the test itself: a thin pen stroke on a large canvas, a digit on
unevenly lit paper, a digit with a stray dot, letters, noise and blank paper.
"""

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

import mnist_common
from mnist_common.handwriting import PreparedDigit, predict_views, prepare_digit, prepare_image
from mnist_common.pictures import TEST_FONTS, font, letter, noise, paper
from mnist_common.rejection import auroc, energy, fit_rejection_rule

SEVEN = [[(0.25, 0.2), (0.75, 0.2), (0.4, 0.85)]]  # a 7: top bar, then the long stroke down
ONE = [[(0.42, 0.3), (0.55, 0.15), (0.55, 0.85)]]


def draw(strokes, size: int, width: int, ink: int = 0, background: int = 255) -> Image.Image:
    image = Image.new("L", (size, size), background)
    pen = ImageDraw.Draw(image)
    for points in strokes:
        pen.line([(x * size, y * size) for x, y in points], fill=ink, width=width, joint="curve")
    return image


@pytest.fixture(scope="module")
def cnn_and_rule(models_dir, data):
    model, checkpoint = mnist_common.load_model(models_dir / "cnn.pt", "04_improved_model.py")
    return model, checkpoint["normalization"], fit_rejection_rule(model, data.val[0])


def verdict_of(prepared: PreparedDigit, cnn_and_rule):
    model, norm, rule = cnn_and_rule
    return rule.verdicts(predict_views(model, prepared.view[None], norm["mean"], norm["std"]))[0]


def test_a_thin_pen_stroke_on_a_large_canvas_keeps_its_brightness(cnn_and_rule, tmp_path):
    draw(SEVEN, 600, 2).save(tmp_path / "thin7.png")
    prepared = prepare_digit(tmp_path / "thin7.png")
    assert prepared.view.max() == pytest.approx(1.0)
    assert (prepared.view > 0.5).sum() >= 25  # a stroke as wide as MNIST's, not a faint hairline
    assert verdict_of(prepared, cnn_and_rule).digit == 7


def test_uneven_lighting_is_not_taken_for_ink(cnn_and_rule):
    rng = np.random.default_rng(0)
    size = 300
    ramp = np.linspace(0.35, 0.95, size)[None, :].repeat(size, 0)  # a shadow across the page
    strokes = np.asarray(draw(ONE, size, 14, ink=255, background=0), dtype=np.float32) / 255
    photo = np.clip(ramp * (1 - 0.8 * strokes) + rng.normal(0, 0.01, (size, size)), 0, 1)
    prepared = prepare_image(photo)
    _, cols = np.nonzero(prepared.mask)
    assert cols.max() - cols.min() < size // 3  # the box holds the stroke, not the shadow
    assert verdict_of(prepared, cnn_and_rule).digit == 1


def test_a_stray_dot_does_not_shrink_the_digit(cnn_and_rule):
    image = draw(SEVEN, 300, 12)
    ImageDraw.Draw(image).ellipse((20, 260, 28, 268), fill=0)  # a speck of dirt far from the digit
    with_dot = prepare_image(np.asarray(image, dtype=np.float32) / 255)
    without = prepare_image(np.asarray(draw(SEVEN, 300, 12), dtype=np.float32) / 255)
    assert torch.allclose(with_dot.view, without.view, atol=0.05)
    assert verdict_of(with_dot, cnn_and_rule).digit == 7


def test_blank_paper_and_a_lone_speck_are_refused_in_one_line():
    rng = np.random.default_rng(0)
    with pytest.raises(mnist_common.LearnerError, match="looks blank"):
        prepare_image(paper(rng), "blank.png")
    speck = paper(rng)
    speck[100:103, 100:103] = 0.05
    with pytest.raises(mnist_common.LearnerError, match="speck"):
        prepare_image(speck, "speck.png")


def test_noise_and_letters_are_not_read_as_confident_digits(cnn_and_rule):
    rng = np.random.default_rng(3)
    verdicts = [verdict_of(prepare_image(noise(rng)), cnn_and_rule) for _ in range(5)]
    assert all(v.kind != "digit" for v in verdicts), [v.text for v in verdicts]
    letters = []
    for _ in range(12):
        try:
            letters.append(verdict_of(prepare_image(letter(rng, "AEFHKMNRTWXY")), cnn_and_rule))
        except mnist_common.LearnerError:
            letters.append(None)  # refused by the preparation: fine too
    refused = sum(v is None or v.kind != "digit" for v in letters)
    assert refused >= 8, [v.text if v else "refused" for v in letters]


def test_typed_digits_in_the_test_fonts_are_read(cnn_and_rule):
    rng = np.random.default_rng(1)
    right = 0
    for name in TEST_FONTS:
        for digit in range(10):
            glyph = Image.new("L", (200, 200), 255)
            ImageDraw.Draw(glyph).text((50, 30), str(digit), fill=int(rng.uniform(40, 90)), font=font(name, 110))
            right += verdict_of(prepare_image(np.asarray(glyph, dtype=np.float32) / 255), cnn_and_rule).digit == digit
    assert right >= 26, f"{right} of 30"


def test_the_rule_keeps_most_test_digits_and_separates_noise(cnn_and_rule, data):
    model, _, rule = cnn_and_rule
    scores = energy(mnist_common.predict_logits(model, data.test[0]))
    assert (scores >= rule.confident).float().mean() >= 0.94  # fitted on validation, judged on test
    assert rule.anything < rule.confident


def test_auroc_by_hand():
    assert auroc(torch.tensor([3.0, 4.0]), torch.tensor([1.0, 2.0])) == 1.0
    assert auroc(torch.tensor([1.0]), torch.tensor([2.0])) == 0.0
    assert auroc(torch.tensor([1.0, 3.0]), torch.tensor([2.0])) == 0.5


def test_explain_draws_every_step_and_pages_stay_small(understand_model, models_dir, tmp_path):
    paths = []
    for i in range(8):
        paths.append(tmp_path / f"seven_{i}.png")
        draw(SEVEN, 200 + 20 * i, 10).save(paths[-1])
    result = understand_model.main(image_paths=paths, explain=True, models_dir=models_dir, out_dir=tmp_path)
    names = [p.name for p in result["figures"]]
    assert names == ["05_your_digits.png", "05_your_digits_2.png", "05_preparation_steps.png"]
    with Image.open(result["figures"][0]) as page:
        assert page.height < 2500  # six pictures per page at most
