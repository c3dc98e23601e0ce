"""01_explore_mnist.py runs end to end and its answers hold."""

import torch


def test_explore_writes_every_figure(explore_run):
    result, out = explore_run, explore_run["printed"]
    assert len(result["figures"]) == 7
    for path in result["figures"]:
        assert path.parent == result["figures"][0].parent and path.stat().st_size > 10_000
    assert "54,000" in out and "6,000" in out and "10,000" in out
    assert 'A "7" as the network sees it' in out
    # the nearest-mean classifier is far better than chance and far worse than a network
    assert 0.75 < result["template_accuracy"] < 0.90
    assert result["rule_accuracy"] > 0.9


def test_template_matching_recognises_the_templates_themselves(explore_mnist):
    means = torch.rand(10, 28, 28)
    images = (means * 255).to(torch.uint8)
    per_digit, overall = explore_mnist.template_matching(means, images, torch.arange(10))
    assert overall == 1.0 and torch.all(per_digit == 1)


def test_centre_ink_measures_the_middle(explore_mnist):
    image = torch.zeros(1, 28, 28, dtype=torch.uint8)
    image[0, 12:16, 12:16] = 255
    assert explore_mnist.centre_ink(image, box=4, ink_level=128).item() == 1.0
    assert explore_mnist.centre_ink(image, box=8, ink_level=128).item() == 16 / 64
