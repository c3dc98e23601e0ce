"""learning_plan.md states the numbers of Phases 1 and 2 exactly as the scripts compute them.

These numbers are the same on every machine (counting, averaging, softmax by hand, a seeded
untrained network), so the guide can quote them exactly, and this test keeps it honest: edit a
script or the guide, and a stale number fails here. Trained numbers are not pinned: they depend
on the processor and the precision, and the guide says so.
"""

import pytest
import torch

import mnist_common

GUIDE = " ".join((mnist_common.ROOT / "learning_plan.md").read_text().split())  # line breaks folded


def in_guide(*phrases: str) -> None:
    for phrase in phrases:
        assert phrase in GUIDE, f"learning_plan.md should say: {phrase!r}"


def pct(x: float, digits: int = 0) -> str:
    return f"{x * 100:.{digits}f}%"


def test_phase_1_splits_and_counts(explore_run):
    data = explore_run["data"]
    sizes = [len(split[1]) for split in (data.train, data.val, data.test)]
    shares = " / ".join(f"{n / sum(sizes):.0%}".rstrip("%") for n in sizes)
    in_guide(f"{sizes[0]:,} / {sizes[1]:,} / {sizes[2]:,}, or {shares}%")
    full = torch.bincount(torch.cat([data.train[1], data.val[1]]), minlength=10)
    in_guide(f"{full[0]:,} zeros and {full[1]:,} ones")
    train = torch.bincount(data.train[1], minlength=10)
    rare, common = train.argmin().item(), train.argmax().item()
    in_guide(f"the rarest digit in our training split is {rare} ({train[rare]:,} images), "
             f"the commonest {common} ({train[common]:,})")
    zeros = (data.train[0] == 0).float().mean().item()
    in_guide(f"{pct(zeros)} of all pixels are exactly 0")


def test_phase_1_normalization_and_centre(explore_run):
    in_guide(f"mean brightness of the training split is {explore_run['mean']:.4f} and its standard deviation "
             f"{explore_run['std']:.4f}", f"(pixel/255 - {explore_run['mean']:.4f}) / {explore_run['std']:.4f}")
    row, col = explore_run["centre"]
    in_guide(f"on average at row {row:.2f}, column {col:.2f}")


def test_phase_1_hard_digits_and_the_zero_eight_rule(explore_run):
    acc = explore_run["per_digit_accuracy"]
    in_guide(f"It gets {pct(explore_run['template_accuracy'], 1)} of the test images right",
             f"{pct(acc[1])} of the ones, only {pct(acc[5])} of the fives, {pct(acc[8])} of the eights and "
             f"{pct(acc[2])} of the twos")
    (d1, a1, b1), (d2, a2, b2), (d3, a3, b3) = explore_run["closest_pairs"]
    in_guide(f"{a1} and {b1} (distance {d1:.2f}), {a2} and {b2} ({d2:.2f}), and {a3} and {b3} ({d3:.2f})")
    in_guide(f"more than {pct(explore_run['rule_threshold'])} of the central 6x6 square is ink",
             f"right on {pct(explore_run['rule_accuracy'], 1)} of the test 0s and 8s",
             f"leftover {pct(1 - explore_run['rule_accuracy'], 1)}")


def test_phase_2_parameters_and_softmax(simple_nn_run):
    model = simple_nn_run["model"]
    first, second = model.layers[0], model.layers[2]
    count = mnist_common.count_parameters
    in_guide(f"{simple_nn_run['parameters']:,}: the hidden layer", f"({count(first):,})", f"({count(second):,})",
             f"only do what {simple_nn_run['collapse']['merged_parameters']:,} can")
    probs, total = simple_nn_run["softmax"], simple_nn_run["softmax_sum"]
    in_guide(f"the exponentials sum to {total:.2f}, the \"7\" gets {total * probs[7].item():.2f} / {total:.2f} = "
             f"{probs[7]:.3f} and the \"1\" {probs[1]:.3f}")
    scores = simple_nn_run["scores_softmax"].tolist()
    in_guide("softmax gives [" + ", ".join(f"{p:.3f}" for p in scores) + "]",
             f"the true sum is {simple_nn_run['scores_sum']:.2f}")
    temps = simple_nn_run["temperatures"]
    in_guide(f"the \"7\" gets {temps[0.5][7]:.3f} at T = 0.5, {temps[1.0][7]:.3f} at T = 1, {temps[2.0][7]:.3f} "
             f"at T = 2 and {temps[5.0][7]:.3f} at T = 5")


def test_phase_2_forward_pass_and_untrained_guess(simple_nn_run):
    example = simple_nn_run["example"]
    label, probs, scores = example["label"], example["probs"], example["scores"]
    guess = probs.argmax().item()
    in_guide(f"between {scores.min():.3f} and {scores.max():.3f}",
             f"gave that \"{label}\" {pct(probs[label].item(), 1)} and guessed \"{guess}\" with "
             f"{pct(probs[guess].item(), 1)}",
             f"it is right {pct(simple_nn_run['untrained_accuracy'], 1)} of the time")
    first = ", ".join(f"{v:+.3f}" for v in example["pre_activations"][:3].tolist())
    in_guide(f"(for example {first})", f"For this image {pct(example['silent_share'])} of the hidden neurons")


@pytest.mark.parametrize("name", ["01_explore_mnist.py", "02_simple_nn.py", "03_train_model.py",
                                  "03b_backprop_by_hand.py", "04_improved_model.py", "05_understand_model.py"])
def test_every_script_is_in_the_guide_the_readme_and_make_run(name):
    readme = (mnist_common.ROOT / "README.md").read_text()
    makefile = (mnist_common.ROOT / "Makefile").read_text()
    assert name in GUIDE and name in readme and f'"{name}' in makefile
