"""09_distributed.py: several processes on loopback (torchrun, gloo) train one network, and prove what DDP computes.

Every multi-process run here is started with torchrun on 127.0.0.1 only, with ports the operating
system picked free, in a process group of its own that is killed if it outlives its time limit.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import mnist_common
from conftest import script
from mnist_common.distributed import (
    device_and_backend,
    free_port,
    shard_indices,
    share_of_batch,
    team_of_processes,
)

distributed = script("09_distributed.py")
ROOT = mnist_common.ROOT
WORKER = ROOT / "tests" / "ddp_worker.py"
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]
RUN_LIMIT_S = 240  # no launch may take longer than this; a hang is killed, process group and all
TINY = {"epochs": 1, "train_images": 4096, "eval_images": 512, "proof_steps": 10, "timing_steps": 3,
        "ensemble_epochs": 1, "timeout_s": 60}


def start(args: list[str], env: dict | None = None) -> subprocess.Popen:
    """A launch in a session of its own, so that it and every process it starts can be killed together."""
    return subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


def finish(process: subprocess.Popen, limit_s: float = RUN_LIMIT_S) -> str:
    """Wait for a launch; past the limit, kill its whole process group and fail."""
    try:
        output, _ = process.communicate(timeout=limit_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"the run did not finish within {limit_s} s and was killed:\n{output[-3000:]}")
    return output


def worker_args(folder: Path, knobs: dict, launcher: list[str]) -> list[str]:
    """torchrun `launcher` options, then the test worker with its knobs file and its result file."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "knobs.json").write_text(json.dumps({**knobs, "out_dir": str(folder / "visualizations"),
                                                   "models_dir": str(folder / "models")}))
    return [*TORCHRUN, *launcher, str(WORKER), str(folder / "knobs.json"), str(folder / "result.json")]


def standalone(processes: int = 2) -> list[str]:
    """torchrun on this machine alone: it picks a free port on the loopback itself."""
    return ["--standalone", f"--nproc_per_node={processes}"]


@pytest.fixture(scope="module")
def one_node(tmp_path_factory):
    """A whole tiny run, 2 processes on this machine: training, the equality check, costs, the ensemble."""
    folder = tmp_path_factory.mktemp("one_node")
    knobs = {**TINY, "parts": ["train", "proof", "costs", "ensemble"], "as_cnn": True}
    process = start(worker_args(folder, knobs, standalone()))
    output = finish(process)
    assert process.returncode == 0, output[-3000:]
    return {"folder": folder, "output": output, **json.loads((folder / "result.json").read_text())}


# --- Shards and batches (no processes needed) -------------------------------------------------------
@pytest.mark.parametrize("n, world", [(1000, 2), (1001, 2), (999, 4)])
def test_shards_are_disjoint_and_cover_the_data(n, world):
    for epoch in (1, 2):
        shards = [shard_indices(n, rank, world, seed=0, epoch=epoch) for rank in range(world)]
        assert len({len(s) for s in shards}) == 1  # the same number of steps in every process
        seen = torch.cat(shards)
        assert len(seen.unique()) == len(seen) == n - n % world  # disjoint, and only n % W left out
    first, second = (shard_indices(n, 0, world, seed=0, epoch=e) for e in (1, 2))
    assert not torch.equal(first, second)  # reshuffled each epoch
    assert torch.equal(first, shard_indices(n, 0, world, seed=0, epoch=1))  # seeded: the same again


def test_the_shards_read_in_batches_make_the_global_batches():
    n, world, local = 64, 2, 4
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0 * 1_000_003 + 1))
    shards = [shard_indices(n, rank, world, seed=0, epoch=1) for rank in range(world)]
    for t in range(n // (world * local)):
        global_batch = order[t * world * local:(t + 1) * world * local]
        for rank in range(world):
            assert torch.equal(shards[rank][t * local:(t + 1) * local], share_of_batch(global_batch, rank, world))


def test_the_ensemble_is_trained_with_06s_settings():
    beyond = script("06_beyond_99.py")
    assert distributed.ensemble_settings(beyond.EPOCHS) == beyond.settings_from_knobs()


# --- One-line errors ------------------------------------------------------------------------------
def test_without_torchrun_it_says_the_command():
    env = {key: value for key, value in os.environ.items() if key not in ("RANK", "WORLD_SIZE", "MASTER_ADDR")}
    done = subprocess.run([sys.executable, "09_distributed.py"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: 09_distributed.py runs as several processes that torchrun starts and connects: run "
        "`torchrun --standalone --nproc_per_node=2 09_distributed.py` (or `make distributed`), not "
        "`python 09_distributed.py`"]


def test_a_port_already_in_use_is_one_line(monkeypatch):
    threads = torch.get_num_threads()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        for key, value in {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1",
                           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(squatter.getsockname()[1])}.items():
            monkeypatch.setenv(key, value)
        monkeypatch.delenv("TORCHELASTIC_USE_AGENT_STORE", raising=False)
        start_s = time.perf_counter()
        with pytest.raises(mnist_common.LearnerError, match=r"already in use .*another port"), \
                team_of_processes("09_distributed.py", timeout_s=20):
            pass
        assert time.perf_counter() - start_s < 20
    torch.set_num_threads(threads)  # joining a team set this process's threads
    assert not torch.distributed.is_initialized()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_asked_for_but_absent_is_one_line(monkeypatch):
    monkeypatch.setenv("MNIST_DEVICE", "cuda")
    with pytest.raises(mnist_common.LearnerError, match="MNIST_DEVICE=cuda but this machine has no cuda"):
        device_and_backend(0, 2)


def test_a_killed_process_ends_the_run_within_the_timeout(tmp_path):
    process = start(worker_args(tmp_path, {**TINY, "parts": ["train"], "timeout_s": 20, "die": 1}, standalone()))
    started = time.perf_counter()
    output = finish(process, limit_s=120)
    assert process.returncode != 0
    assert time.perf_counter() - started < 100  # start-up, then the end: no waiting out a long timeout
    assert "exitcode: -9" in output or "Signal 9" in output  # torchrun names the killed process
    assert not (tmp_path / "result.json").exists()


# --- A real run on two processes --------------------------------------------------------------------
def test_two_processes_train_on_the_loopback(one_node):
    assert (one_node["processes"], one_node["backend"]) == (2, "gloo")
    assert one_node["train"]["test_acc"] > 0.8  # 32 steps on 4,096 images: far above chance
    assert "only one that prints" in one_node["output"]
    assert one_node["output"].count("== 1. 04's CNN") == 1  # process 1 printed nothing


def test_ddp_takes_the_same_steps_as_one_process(one_node):
    proof = {row["case"]: row for row in one_node["proof"]}
    plain, synced = proof["04's CNN, no dropout"], proof["06's DeepCNN, batch norm synced"]
    assert plain["fp32"] <= 1e-5 and plain["fp64"] <= 1e-12
    assert synced["fp64"] <= 1e-10  # SyncBatchNorm's computation: the global batch's statistics
    for broken in ("04's CNN, dropout 0.25 (own masks)", "06's DeepCNN, batch norm per process"):
        assert proof[broken]["fp64"] > 1e-4, broken  # different computations, not rounding


def test_the_checkpoint_of_process_0_loads_in_05(one_node, data):
    understand = script("05_understand_model.py")
    models = one_node["folder"] / "models"
    cnn, checkpoint, _ = understand.load_models(models, torch.device("cpu"), with_mlp=False)  # 05's own loader
    assert checkpoint["trained_by"].startswith("09_distributed.py: DDP, 2 processes")
    _, accuracy = mnist_common.evaluate(cnn, data.test[0][:512], data.test[1][:512])
    assert accuracy == pytest.approx(one_node["train"]["test_acc"])
    assert not list(models.glob("*.part"))  # written atomically


def test_the_ensemble_lands_where_06_finds_it(one_node):
    beyond = script("06_beyond_99.py")
    for seed in (0, 1):
        path = one_node["folder"] / "models" / "ensemble" / f"deepcnn_seed{seed}.pt"
        found = beyond.finished_member(path, distributed.ensemble_settings(1, seed), torch.device("cpu"))
        assert found is not None, path
        assert found[1]["script"] == "06_beyond_99.py"


def test_costs_and_figure(one_node):
    costs = one_node["costs"]
    assert costs["step_ms"] > 0 and costs["no_sync_ms"] > 0 and costs["one_process_ms"] > 0
    assert 0 <= costs["all_reduce_share"] < 1 and costs["numbers"] == 421_642
    assert Path(one_node["figure"]).name == "09_distributed.png" and Path(one_node["figure"]).exists()


def test_two_machines_simulated_give_the_one_machine_weights(one_node, tmp_path):
    """Two torchrun launches on 127.0.0.1 as two "machines", one process each: the same training as one_node."""
    port = free_port()
    knobs = {**TINY, "parts": ["train"], "as_cnn": True}
    nodes = [start(worker_args(tmp_path, knobs, ["--nnodes=2", f"--node_rank={rank}", "--nproc_per_node=1",
                                                 "--rdzv_backend=c10d", f"--rdzv_endpoint=127.0.0.1:{port}",
                                                 "--rdzv_id=test09"]))
             for rank in (0, 1)]
    outputs = [finish(node) for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    two = torch.load(tmp_path / "models" / "cnn.pt", weights_only=True)["state_dict"]
    one = torch.load(one_node["folder"] / "models" / "cnn.pt", weights_only=True)["state_dict"]
    largest = max((two[name].float() - one[name].float()).abs().max().item() for name in one)
    assert largest <= 1e-6, largest
