"""08_speedrun.py: each rung runs what its label says, the race stops at the right check, the
arithmetic is counted right, and the fastest recipe learns. No test here asserts a time."""

import itertools
import re
from dataclasses import replace

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from conftest import script
from mnist_common import (
    ConventionalCNN,
    FastCNN,
    LearnerError,
    MnistSplits,
    count_multiply_adds,
    cpu_peak,
    physical_cores,
    pick_precision,
)
from mnist_common.speed import layer_multiply_adds


@pytest.fixture(scope="module")
def speedrun():
    return script("08_speedrun.py")


@pytest.fixture(scope="module")
def race_data(speedrun):
    """10,000 training images and 1,000 of each evaluation split, in both data paths' forms."""
    return speedrun.load_race_data(train_size=10_000, eval_size=1_000)


def smaller(race_data, n_train: int, n_eval: int):
    """The first images of each split of a RaceData."""
    s = race_data.splits
    splits = MnistSplits((s.train[0][:n_train], s.train[1][:n_train]), (s.val[0][:n_eval], s.val[1][:n_eval]),
                         (s.test[0][:n_eval], s.test[1][:n_eval]), s.mean, s.std)
    return type(race_data)(splits, race_data.raw_train[:n_train])


@pytest.fixture(scope="module")
def ladder(speedrun):
    """Every rung, with bf16 forced where it applies, so the bf16 path is tested on every machine."""
    return {rung.key: rung for rung in speedrun.build_ladder(speedrun.RaceSettings(), "bf16", physical_cores())}


def first_check_stops(_model):
    return 1.0  # a stand-in for validation: every check is at the target, so a race stops at its first


def race_once(speedrun, rung, race_data, **changes):
    """One rung on 512 training images, stopped at its first check: what did it run with?"""
    settings = replace(speedrun.RaceSettings(), **changes)
    return speedrun.race(rung, smaller(race_data, 512, 200), settings, seed=0, validate=first_check_stops,
                         progress=False)


# --- The ladder: one change per rung, each label what runs ---------------------------------------------
def test_each_rung_changes_one_thing(ladder):
    rungs = list(ladder.values())
    assert [r.key for r in rungs] == ["conventional", "tensors", "small_net", "one_cycle", "channels_last", "bf16",
                                      "threads", "compile"]
    fields = ("network", "data_path", "optimizer", "batch_size", "precision", "channels_last", "threads", "compiled")
    changed = [{f for f in fields if getattr(a, f) != getattr(b, f)} for a, b in itertools.pairwise(rungs)]
    assert changed == [{"data_path"}, {"network"}, {"optimizer", "batch_size"}, {"channels_last"}, {"precision"},
                       {"threads"}, {"compiled"}]


def test_conventional_rung_feeds_a_dataloader_64_images_in_fp32(speedrun, ladder, race_data):
    result = race_once(speedrun, ladder["conventional"], race_data)
    assert result.observed["data"] == "DataLoader" and result.observed["batch_size"] == 64
    assert result.observed["compute_dtype"] == "float32" and result.observed["memory_format"] == "contiguous"
    assert len(result.checks) == 1 and result.seconds is not None  # stopped at its first check


def test_dataloader_and_tensors_give_identical_batches(speedrun, ladder, race_data):
    """Only the data path differs between rungs 0 and 1: the same images in the same order, each
    converted and normalized on its own giving exactly the numbers of the split normalized at once."""
    data = smaller(race_data, 512, 200)
    loader = speedrun.set_up(ladder["conventional"], data, speedrun.RaceSettings(), seed=3)
    tensors = speedrun.set_up(ladder["tensors"], data, speedrun.RaceSettings(), seed=3)
    for _ in range(2):  # two epochs: a fresh, identical order each time
        for (x1, y1), (x2, y2) in zip(loader.epoch(), tensors.epoch()):
            assert torch.equal(y1, y2) and torch.equal(x1, x2)


def test_rungs_0_and_1_follow_the_same_path(speedrun, ladder, race_data):
    accuracies = {}
    for key in ("conventional", "tensors"):
        result = speedrun.race(ladder[key], smaller(race_data, 256, 200), replace(speedrun.RaceSettings(),
                               max_epochs=1, checks_per_epoch=2), seed=0, progress=False)
        accuracies[key] = [c.val_acc for c in result.checks] + [result.test_acc]
    assert accuracies["conventional"] == accuracies["tensors"]


def test_tensors_rung_slices_tensors(speedrun, ladder, race_data):
    result = race_once(speedrun, ladder["tensors"], race_data)
    assert result.observed["data"] == "tensors" and result.observed["batch_size"] == 64


def test_small_net_rung_trains_the_cheaper_network(speedrun, ladder, race_data):
    setup = speedrun.set_up(ladder["small_net"], smaller(race_data, 512, 200), speedrun.RaceSettings(), seed=0)
    assert isinstance(setup.model, FastCNN)
    assert sum(count_multiply_adds(FastCNN()).values()) * 14 < sum(count_multiply_adds(ConventionalCNN()).values())
    observed = race_once(speedrun, ladder["small_net"], race_data).observed
    assert observed["batch_size"] == 64 and observed["memory_format"] == "contiguous"


def test_one_cycle_rung_uses_its_labelled_batch_adam_and_one_cycle(speedrun, ladder, race_data):
    result = race_once(speedrun, ladder["one_cycle"], race_data)
    assert f"batch {speedrun.FAST_BATCH}," in ladder["one_cycle"].change
    assert result.observed["batch_size"] == speedrun.FAST_BATCH and result.observed["compute_dtype"] == "float32"
    setup = speedrun.set_up(ladder["one_cycle"], smaller(race_data, 512, 200), speedrun.RaceSettings(), seed=0)
    assert isinstance(setup.optimizer, torch.optim.Adam)
    assert setup.optimizer.param_groups[0]["betas"] == speedrun.ADAM_BETAS
    assert isinstance(setup.step_scheduler, torch.optim.lr_scheduler.OneCycleLR) and setup.epoch_scheduler is None


def test_channels_last_rung_lays_out_channels_last(speedrun, ladder, race_data):
    result = race_once(speedrun, ladder["channels_last"], race_data)
    assert result.observed["memory_format"] == "channels_last" and result.observed["compute_dtype"] == "float32"


def test_bf16_rung_computes_in_bfloat16(speedrun, ladder, race_data):
    result = race_once(speedrun, ladder["bf16"], race_data)
    assert result.observed["compute_dtype"] == "bfloat16" and result.observed["memory_format"] == "channels_last"


def test_bf16_rung_is_skipped_without_native_bf16(speedrun):
    rungs = speedrun.build_ladder(speedrun.RaceSettings(), "fp32", 2)
    bf16 = next(r for r in rungs if r.key == "bf16")
    assert bf16.skipped and "MNIST_PRECISION" in bf16.skipped
    assert all(r.precision == "fp32" for r in rungs)  # and every rung after it trains in fp32


def test_threads_rung_sets_the_physical_core_count_and_restores_it(speedrun, ladder, race_data):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)  # so the rung has something to change, on any machine
        result = race_once(speedrun, ladder["threads"], race_data)
        assert result.observed["threads"] == physical_cores()
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_compile_rung_compiles_before_the_clock_starts(speedrun, ladder, race_data, monkeypatch):
    """A stand-in for torch.compile (the real one takes a minute): the rung goes through it, warms up
    both batch shapes before the race, and times that apart."""
    compiled = []

    def fake_compile(model):
        compiled.append(model)
        return lambda x: model(x)

    monkeypatch.setattr(torch, "compile", fake_compile)
    result = race_once(speedrun, ladder["compile"], race_data)
    assert len(compiled) == 1 and result.observed["compiled"] and result.compile_seconds > 0


def test_compile_failure_skips_the_rung_with_its_reason(speedrun, ladder, race_data, monkeypatch, capsys):
    def broken_compile(_model):
        raise RuntimeError("no C++ compiler found")

    monkeypatch.setattr(torch, "compile", broken_compile)
    results = speedrun.run_ladder([ladder["compile"]], smaller(race_data, 512, 200), speedrun.RaceSettings(),
                                  progress=False)
    assert results[0].skipped and "no C++ compiler found" in results[0].skipped
    assert "skipped: torch.compile does not work here" in capsys.readouterr().out


# --- The race: timed to the first check at the target ------------------------------------------------
def test_race_stops_at_the_first_check_that_reaches_the_target(speedrun, ladder, race_data):
    accuracies = iter([0.50, 0.97, 0.991, 0.999, 0.999])
    settings = replace(speedrun.RaceSettings(), checks_per_epoch=4)
    result = speedrun.race(ladder["one_cycle"], smaller(race_data, 8 * speedrun.FAST_BATCH, 200), settings, seed=0,
                           validate=lambda _model: next(accuracies), progress=False)
    assert [c.val_acc for c in result.checks] == [0.50, 0.97, 0.991]
    assert result.seconds == result.checks[-1].seconds == result.trained_seconds
    assert result.steps == 6 and result.epochs == pytest.approx(0.75)  # 8 steps per epoch, checked every 2


def test_race_that_never_reaches_the_target_says_so(speedrun, ladder, race_data):
    settings = replace(speedrun.RaceSettings(), checks_per_epoch=2, max_epochs=1.5)
    result = speedrun.race(ladder["small_net"], smaller(race_data, 256, 200), settings, seed=0,
                           validate=lambda _model: 0.5, progress=False)
    assert result.seconds is None and result.epochs == pytest.approx(1.5) and len(result.checks) == 3


def test_checks_are_evenly_spread_and_include_the_last_step(speedrun):
    assert speedrun.check_steps(8, 4, 16) == {2, 4, 6, 8, 10, 12, 14, 16}
    assert speedrun.check_steps(211, 4, 422) == {53, 106, 158, 211, 264, 317, 369, 422}
    assert speedrun.check_steps(10, 2, 7) == {5, 7}  # a cap inside an epoch is checked too


# --- Where the time goes ---------------------------------------------------------------------------------
def test_multiply_adds_of_known_layers_match_a_hand_count():
    assert layer_multiply_adds(nn.Conv2d(1, 24, 5), torch.zeros(1, 24, 24, 24)) == 24 * 24 * 24 * (1 * 5 * 5)
    assert layer_multiply_adds(nn.Linear(800, 256), torch.zeros(1, 256)) == 800 * 256
    counts = count_multiply_adds(FastCNN())
    assert counts == {"conv1": 24 * 24 * 16 * 25, "conv2": 10 * 10 * 32 * 16 * 9, "fc1": 800 * 128, "fc2": 128 * 10}
    assert count_multiply_adds(ConventionalCNN())["conv2"] == 24 * 24 * 64 * (32 * 3 * 3)


@pytest.mark.parametrize("network", [FastCNN, ConventionalCNN])
def test_multiply_adds_agree_with_pytorchs_own_flop_counter(network):
    """A second, trusted count: PyTorch's FlopCounterMode counts 2 FLOPs per multiply-add."""
    model = network().eval()
    with FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 1, 28, 28))
    assert counter.get_total_flops() == 2 * sum(count_multiply_adds(model).values())


def test_cpu_peak_from_flags():
    peak = cpu_peak({"avx512f", "avx2", "fma", "avx512_bf16"}, ghz=2.6, cores=2)
    assert peak.fp32_gflops == pytest.approx(2 * 2.6 * 32) and peak.bf16_gflops == pytest.approx(2 * 2.6 * 64)
    avx2 = cpu_peak({"avx2", "fma"}, ghz=3.0, cores=4)
    assert avx2.fp32_gflops == pytest.approx(4 * 3.0 * 32) and avx2.bf16_gflops == avx2.fp32_gflops
    assert physical_cores() >= 1


# --- The fastest recipe learns, and the script runs end to end --------------------------------------------
@pytest.mark.precision
def test_fastest_rung_beats_chance_by_far_in_a_fraction_of_an_epoch(speedrun, race_data):
    """The last rung on 10,000 images, a one-cycle schedule of one pass over them (under a fifth of a
    real epoch): far above the 10% of guessing."""
    rungs = speedrun.build_ladder(speedrun.RaceSettings(), pick_precision(torch.device("cpu"), verbose=False,
                                                                          fastest=True), physical_cores())
    settings = replace(speedrun.RaceSettings(), one_cycle_epochs=1)
    result = speedrun.race(rungs[-2], race_data, settings, seed=0, progress=False)  # the rung before torch.compile
    assert result.test_acc > 0.90


def test_rung_1_is_timed_in_part_at_rung_0s_step_count(speedrun, ladder, race_data, capsys):
    """Rung 1 retraces rung 0, so it trains only TENSORS_TIMED_EPOCHS and is charged rung 0's steps at its own speed."""
    data = smaller(race_data, 256, 200)
    settings = replace(speedrun.RaceSettings(), target=1.0, max_epochs=2, checks_per_epoch=2)  # 100%: never reached
    reference = speedrun.race(ladder["conventional"], data, settings, seed=0, progress=False)  # all 2 epochs
    reference.seconds = reference.trained_seconds  # as if it had reached it at its last step
    result = speedrun.retrace(ladder["tensors"], data, settings, reference, epochs=0.5, progress=False)
    assert result.steps == reference.steps_per_epoch // 2 and result.estimated_steps == reference.steps
    assert result.seconds == pytest.approx(result.trained_seconds / result.steps * reference.steps)
    assert "match rung 0's, check for check" in " ".join(capsys.readouterr().out.split())  # say() wraps lines
    assert result.test_acc == reference.test_acc  # the same weights at the target step


def test_dataloader_cost_is_the_difference_of_rungs_0_and_1(speedrun, ladder, capsys):
    def result(key, seconds):
        return speedrun.RaceResult(ladder[key], trained_seconds=seconds, steps=1688, steps_per_epoch=844)

    assert speedrun.report_data_path([result("conventional", 100.0), result("tensors", 80.0)]) == pytest.approx(10.0)
    assert "10.0 s per epoch (20% of" in capsys.readouterr().out
    assert speedrun.report_data_path([result("conventional", 80.0), result("tensors", 100.0)]) is None  # a busy machine
    assert "cannot be read from this run" in capsys.readouterr().out


def test_fastest_recipe_leaves_out_a_compile_that_did_not_help(speedrun, ladder):
    threads = speedrun.RaceResult(ladder["threads"], seconds=4.0)
    slower = speedrun.RaceResult(ladder["compile"], seconds=5.0)
    faster = speedrun.RaceResult(ladder["compile"], seconds=3.0)
    assert speedrun.fastest_recipe([threads, slower]) is threads
    assert speedrun.fastest_recipe([threads, faster]) is faster
    assert speedrun.fastest_recipe([threads, speedrun.RaceResult(ladder["compile"], skipped="no")]) is threads


def test_final_line_has_the_promised_form(speedrun):
    summary = {"runs": [None] * 5, "mean": 0.99123, "worst": 0.9894, "median_seconds": 4.26}
    line = speedrun.final_line(summary, 200.0, speedrun.RaceSettings())
    assert line == "fastest: 99.12% test (mean of 5 seeds, worst 98.94%) in 4.3 s of training, " \
                   "47x the conventional recipe in this run"


def test_knobs_are_checked(speedrun, tmp_path):
    with pytest.raises(LearnerError, match="CHECKS_PER_EPOCH = 0 is not allowed"):
        speedrun.RaceSettings(checks_per_epoch=0)
    with pytest.raises(LearnerError, match=r"rungs .* is not allowed"):
        speedrun.main(rungs=["warp_drive"], out_dir=tmp_path)


def test_main_runs_end_to_end_on_a_tiny_subset(speedrun, tmp_path, capsys):
    settings = speedrun.RaceSettings(target=0.2, max_epochs=0.5, one_cycle_epochs=1)
    result = speedrun.main(settings, rungs=["conventional", "tensors", "small_net"], seeds=[0, 1], profile_steps=2,
                           train_size=512, eval_size=200, out_dir=tmp_path, progress=False)
    printed = capsys.readouterr().out
    assert [row["change"] for row in result["rows"]] == [r.rung.change for r in result["results"]]
    assert "the DataLoader's cost" in printed  # measured, or "cannot be read" when the machine was busy meanwhile
    assert result["figure"] == tmp_path / "08_speed_ladder.png" and result["figure"].stat().st_size > 10_000
    assert set(result["profiles"]) == {"conventional", "small_net"}
    assert "fetching batches from the DataLoader" in printed and "GFLOP/s" in printed
    assert re.fullmatch(r"fastest: \d+\.\d\d% test \(mean of 2 seeds, worst \d+\.\d\d%\) in \d+\.\d s of training, "
                        r"(\d+x the conventional recipe in this run|the conventional recipe did not reach .*)",
                        result["final_line"])
    assert printed.rstrip().endswith(result["final_line"])
