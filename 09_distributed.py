"""Next step: more than one machine. The same training on several processes with torch.distributed.

When one computer is too slow, PyTorch spreads one training run over several processes, on one
machine or many, with DistributedDataParallel (DDP). Every process holds a whole copy of the
network and trains on its own shard of the data; at the end of each backward pass an all-reduce
averages the gradients of all the processes, so every copy takes exactly the same step. torchrun
starts the processes and connects them. This script:

  1. trains 04's CNN that way. Each process takes its own shard of the training images
     (`shard_indices` in mnist_common/distributed.py, DistributedSampler's idea on tensors), and
     the loop is Phase 3's `train_one_epoch` (mnist_common/training.py), unchanged: only the
     network is wrapped. Process 0 alone prints, draws and saves a checkpoint 05 can read;
  2. proves what DDP computes: W processes with batch B/W each end with the weights of one
     process with batch B, to the rounding; then measures what breaks that: batch normalization
     per process (unless synced, `sync_batch_norm`) and dropout drawn per process;
  3. measures the costs on this machine: 1 process with 2 threads against 2 processes with 1
     thread each, and the all-reduce's share of a step;
  4. with --ensemble, trains 06's networks instead, one per process, with no gradients shared;
  5. prints the torchrun lines that run it on several machines.

Run:     torchrun --standalone --nproc_per_node=2 09_distributed.py       (make distributed; under 2 min on 2 cores)
         torchrun --standalone --nproc_per_node=2 09_distributed.py --ensemble   (06's networks, one per process)
         add --as-cnn to save the CNN as models/cnn.pt, the model 05 reads (the old one is kept as cnn.prev.pt)
Writes:  models/cnn_ddp.pt (models/cnn.pt with --as-cnn), a row in models/experiments.csv,
         visualizations/09_distributed.png; with --ensemble, models/ensemble/deepcnn_seed*.pt
"""

import argparse
import copy
import datetime
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from mnist_common import (
    DATA_DIR,
    MODELS_DIR,
    VIS_DIR,
    AugmentedCNNSettings,
    CNNSettings,
    EpochStats,
    History,
    LearnerError,
    MnistSplits,
    TrainedRun,
    atomic_save,
    build_model,
    check_knob,
    count_batches,
    count_parameters,
    ensure_writable,
    evaluate,
    friendly_errors,
    is_whole,
    load_mnist,
    log_experiment,
    make_optimizer,
    one_cycle,
    pick_precision,
    previous_path,
    save_checkpoint,
    save_figure,
    save_run,
    say,
    set_seed,
    shown,
    train_cnn,
    train_one_epoch,
)
from mnist_common.distributed import (
    Team,
    cores,
    free_port,
    shard_indices,
    share_of_batch,
    sync_batch_norm,
    team_of_processes,
)

# --- Hyperparameters (edit and re-run) ------------------------------------------------------
EPOCHS = 3  # passes over the training images, shared out between the processes (2-15)
BATCH_SIZE = 128  # the GLOBAL batch: each of the W processes takes BATCH_SIZE / W images a step (64-512)
LEARNING_RATE = 0.005  # the peak of 04's one-cycle schedule (0.001-0.01)
DROPOUT = 0.25  # as in 04 (0.0-0.5); each process draws its own dropout masks
SEED = 0  # starting weights (the same in every process), the shards' order, dropout (SEED + rank)
PROOF_STEPS = 50  # steps of the equality check, DDP against one process (50-200; fewer only to try things)
PROOF_BATCH = 32  # the equality check's global batch, split between the processes (16-256; larger is slower)
PROOF_LEARNING_RATE = 0.003  # SGD's step size in the equality check (0.0003-0.01; larger lets fp32 rounding grow)
TIMING_STEPS = 30  # steps timed for each cost, after 3 warm-up steps (10-200)
TIMEOUT_S = 120  # the longest any process waits for another (each all-reduce, each barrier), seconds (10-1800)
ENSEMBLE_EPOCHS = 8  # --ensemble: epochs per network; 06 reuses a network only with its own EPOCHS (4-20)
ENSEMBLE_WAIT_S = 3600  # --ensemble: how long a process that has finished waits for the slowest one (60-36000)

SCRIPT = "09_distributed.py"
CHECKPOINT = "cnn_ddp.pt"  # beside 04's cnn.pt, not over it: --as-cnn writes cnn.pt instead
AS_CNN_CHECKPOINT = "cnn.pt"  # the file 05 reads
ENSEMBLE_DIR = "ensemble"  # inside the models folder, where 06 looks
PARTS = ("train", "proof", "costs")  # what a plain run does; --ensemble runs ("ensemble",)
EQUAL_WITHIN = 1e-5  # relative weight difference below which two runs took the same steps (fp32 rounding)


def ensemble_settings(epochs: int = ENSEMBLE_EPOCHS, seed: int = 0) -> AugmentedCNNSettings:
    """06_beyond_99.py's recipe, written out (a script never imports another): 06 reuses a network
    from models/ensemble/ only when its settings are exactly these, so keep them in step with 06."""
    return AugmentedCNNSettings(epochs=epochs, batch_size=128, learning_rate=0.005, dropout=0.25, rotation=12,
                                scale=0.1, shift=2.5, label_smoothing=0.1, seed=seed)


# --- The data, shared out ---------------------------------------------------------------------
def load_data(data_dir: Path, train_images: int | None, eval_images: int | None) -> MnistSplits:
    """MNIST in every process (each holds all of it: shards are positions, not copies), or its first
    `train_images` training and `eval_images` validation and test images, for short runs."""
    data = load_mnist(data_dir=data_dir)
    if train_images is None and eval_images is None:
        return data
    n, m = train_images or len(data.train[1]), eval_images or len(data.test[1])
    return MnistSplits((data.train[0][:n], data.train[1][:n]), (data.val[0][:m], data.val[1][:m]),
                       (data.test[0][:m], data.test[1][:m]), data.mean, data.std, data.dataset)


def collective_device() -> torch.device:
    """Where small tensors for a collective must live: the GPU for nccl, the CPU for gloo."""
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def sum_over_processes(*values: float) -> list[float]:
    """Each number added up over all the processes (one all_reduce)."""
    totals = torch.tensor(values, dtype=torch.float64, device=collective_device())
    dist.all_reduce(totals)
    return totals.tolist()


def evaluate_together(model, images, labels, team: Team) -> tuple[float, float]:
    """(loss, accuracy) on a whole split, each process judging every W-th image; the sums are all-reduced."""
    mine_x, mine_y = share_of_batch(images, team.rank, team.world_size), share_of_batch(labels, team.rank,
                                                                                       team.world_size)
    loss, accuracy = evaluate(model, mine_x, mine_y) if len(mine_y) else (0.0, 0.0)
    loss_sum, correct, count = sum_over_processes(loss * len(mine_y), round(accuracy * len(mine_y)), len(mine_y))
    return loss_sum / count, correct / count


# --- 1. Data-parallel training ------------------------------------------------------------------
def train_with_ddp(settings: CNNSettings, data: MnistSplits, team: Team, precision: str) -> TrainedRun:
    """04's CNN and recipe, trained by all the processes together: returns the run, best epoch kept."""
    set_seed(settings.seed)  # the same starting weights in every process
    model = build_model({"name": "CNN", "dropout": settings.dropout}).to(team.device)
    ddp = DistributedDataParallel(model)  # copies process 0's weights to all; each backward() now all-reduces
    torch.manual_seed(settings.seed + team.rank)  # but each process its own dropout masks
    local_batch = settings.batch_size // team.world_size
    n = len(data.train[1])
    steps = count_batches(n // team.world_size, local_batch)  # as many as one process with the whole batch
    optimizer = make_optimizer("adam", ddp, settings.learning_rate)
    scheduler = one_cycle(optimizer, settings.learning_rate, settings.epochs, steps)
    generator = torch.Generator().manual_seed(settings.seed + team.rank)
    history, best_state = History(), None
    print(f"{'epoch':>5}  {'train loss':>10} {'train acc':>9}  {'val loss':>8} {'val acc':>8}  {'seconds':>7}")
    for epoch in range(1, settings.epochs + 1):
        start = time.perf_counter()
        shard = shard_indices(n, team.rank, team.world_size, settings.seed, epoch)  # new shards every epoch
        images, labels = data.train[0][shard], data.train[1][shard]  # (n / W, 1, 28, 28): this process's part
        # Phase 3's loop, unchanged (it shuffles the shard once more, as always); only the network is DDP's
        loss, acc = train_one_epoch(ddp, images, labels, optimizer, batch_size=local_batch, generator=generator,
                                    precision=precision, scheduler=scheduler, description=f"epoch {epoch}")
        loss_sum, correct, count = sum_over_processes(loss * len(labels), acc * len(labels), len(labels))
        val_loss, val_acc = evaluate_together(model, *data.val, team)
        history.epochs.append(EpochStats(epoch, loss_sum / count, correct / count, val_loss, val_acc,
                                         time.perf_counter() - start))
        improved = val_acc > history.best_val_acc
        stats = history.epochs[-1]
        print(f"{epoch:>5}  {stats.train_loss:>10.4f} {stats.train_acc:>9.2%}  {val_loss:>8.4f} {val_acc:>8.2%}  "
              f"{stats.seconds:>7.1f}{'  *best' if improved else ''}")
        if improved:
            history.best_epoch, history.best_val_acc = epoch, val_acc
            best_state = copy.deepcopy(model.state_dict())  # the same in every process: DDP keeps them equal
    model.load_state_dict(best_state)
    run = TrainedRun(model, settings, history, precision)
    run.test_loss, run.test_acc = evaluate_together(model, *data.test, team)
    return run


def save_ddp_run(run: TrainedRun, data: MnistSplits, team: Team, models_dir: Path, as_cnn: bool) -> Path:
    """Process 0 writes the checkpoint the way 04 writes its own (atomically), and a row of the log.

    The network and recipe are 04's, so the checkpoint names 04 as its script: 05, which asks for
    04's CNN, reads it. `trained_by` says who actually trained it, and how.
    """
    path = Path(models_dir) / (AS_CNN_CHECKPOINT if as_cnn else CHECKPOINT)
    if as_cnn and path.exists():
        keep = previous_path(path)
        shutil.copyfile(path, keep.with_name(keep.name + ".part"))
        os.replace(keep.with_name(keep.name + ".part"), keep)  # whole or not at all, as every checkpoint
        say(f"--as-cnn: {shown(path)} is replaced; the model it held is kept as {shown(keep)}")
    history = run.history
    metrics = {"best_val_acc": history.best_val_acc, "best_epoch": history.best_epoch,
               "epochs_run": history.epochs_run, "test_acc": run.test_acc, "test_loss": run.test_loss}
    save_checkpoint(path, run.model, script="04_improved_model.py",
                    trained_by=f"{SCRIPT}: DDP, {team.world_size} processes, {team.backend}",
                    settings=run.settings.as_record(), metrics=metrics, parameters=count_parameters(run.model),
                    train_seconds=history.train_seconds, normalization={"mean": data.mean, "std": data.std},
                    precision=run.precision, dataset=data.dataset.key, device=team.device.type,
                    history=[vars(stats) for stats in history.epochs], torch_version=str(torch.__version__))
    log_experiment(models_dir, SCRIPT, {**run.settings.as_record(), "processes": team.world_size}, run.precision,
                   history.epochs_run, history.best_val_acc, run.test_acc, count_parameters(run.model),
                   history.train_seconds)
    return path


def section_train(settings, data, team, precision, models_dir, as_cnn) -> dict:
    local = settings.batch_size // team.world_size
    print(f"\n== 1. 04's CNN, trained by {team.world_size} processes together ==")
    say(f"each process trains on its own {len(data.train[1]) // team.world_size:,} of the "
        f"{len(data.train[1]):,} training images (new shards every epoch), {local} images a step: a global "
        f"batch of {settings.batch_size}. Adam with 04's one-cycle schedule peaking at {settings.learning_rate:g}, "
        f"{settings.epochs} epochs, {precision}")
    run = train_with_ddp(settings, data, team, precision)
    seconds = run.history.train_seconds
    print(f"\ntest accuracy {run.test_acc:.2%} ({round((1 - run.test_acc) * len(data.test[1]))} of "
          f"{len(data.test[1]):,} wrong) after {seconds:.1f} s of training "
          f"({seconds / run.history.epochs_run:.1f} s per epoch)")
    path = save_ddp_run(run, data, team, models_dir, as_cnn) if team.leader else None
    if path:
        print(f"saved {shown(path)} (04's network, as 04 writes it: "
              + ("05 reads it)" if as_cnn else "add --as-cnn to make it the models/cnn.pt that 05 reads)"))
    return {"test_acc": run.test_acc, "val_acc": run.history.best_val_acc, "seconds": seconds,
            "epoch_seconds": run.history.column("seconds"), "checkpoint": str(path) if path else None,
            "model": run.model}


# --- 2. What DDP computes ----------------------------------------------------------------------
PROOF_CASES = [  # (what is compared, the network, batch norm synced across the processes)
    ("04's CNN, no dropout", {"name": "CNN", "dropout": 0.0}, False),
    ("04's CNN, dropout 0.25 (own masks)", {"name": "CNN", "dropout": 0.25}, False),
    ("06's DeepCNN, batch norm per process", {"name": "DeepCNN", "dropout": 0.0}, False),
    ("06's DeepCNN, batch norm synced", {"name": "DeepCNN", "dropout": 0.0}, True),
]


def global_batches(data: MnistSplits, steps: int, batch_size: int, seed: int):
    """`steps` batches of `batch_size` training images in a seeded order, the same in every process."""
    images, labels = data.train
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    for t in range(steps):
        idx = order[(torch.arange(batch_size) + t * batch_size) % len(labels)]  # wraps round a small subset
        yield images[idx], labels[idx]


def train_step(model, optimizer, x, y) -> None:
    """Phase 3's step: predict, measure, backpropagate, step (in fp32)."""
    loss = F.cross_entropy(model(x), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def steps_with_ddp(arch: dict, synced_bn: bool, batches, team: Team, seed: int, learning_rate: float,
                   dtype: torch.dtype) -> dict:
    """A fresh network trained by all processes, each on its share of every global batch; its final weights."""
    set_seed(seed)
    model = build_model(arch).to(team.device, dtype)
    if synced_bn:
        model = sync_batch_norm(model, team.device)
    ddp = DistributedDataParallel(model)
    optimizer = make_optimizer("sgd", ddp, learning_rate)
    torch.manual_seed(seed + team.rank)  # each process its own dropout masks, as in training
    for x, y in batches:
        train_step(ddp, optimizer, share_of_batch(x.to(dtype), team.rank, team.world_size),
                   share_of_batch(y, team.rank, team.world_size))
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def steps_in_one_process(arch: dict, batches, device, seed: int, learning_rate: float, dtype: torch.dtype) -> dict:
    """The same network from the same start, trained by this process alone on the whole global batches."""
    set_seed(seed)
    model = build_model(arch).to(device, dtype)
    optimizer = make_optimizer("sgd", model, learning_rate)
    for x, y in batches:
        train_step(model, optimizer, x.to(dtype), y)
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def relative_difference(a: dict, b: dict) -> float:
    """The largest difference between two networks' weights, as a share of the largest weight of the network."""
    return max((a[name] - b[name]).abs().max().item() for name in b) / max(w.abs().max().item() for w in b.values())


def compare(batches, team: Team, seed: int, learning_rate: float, dtype: torch.dtype) -> list[float]:
    """Each case's relative difference, DDP against one process, in one precision."""
    with_ddp = [steps_with_ddp(arch, synced, batches, team, seed, learning_rate, dtype)
                for _, arch, synced in PROOF_CASES]
    # the one-process references are shared out as well: process r computes cases r, r + W, ...
    differences = [0.0] * len(PROOF_CASES)
    for k in range(team.rank, len(PROOF_CASES), team.world_size):
        alone = steps_in_one_process(PROOF_CASES[k][1], batches, team.device, seed, learning_rate, dtype)
        differences[k] = relative_difference(with_ddp[k], alone)
    return sum_over_processes(*differences)  # each one was filled in by one process, zeros elsewhere


def section_proof(data, team: Team, steps: int, batch_size: int, seed: int, learning_rate: float) -> list[dict]:
    local = batch_size // team.world_size
    print(f"\n== 2. What DDP computes: {team.world_size} processes x batch {local} against 1 process x batch "
          f"{batch_size}, {steps} steps of SGD (momentum 0.9, step size {learning_rate:g}) from the same weights ==")
    batches = list(global_batches(data, steps, batch_size, seed))
    fp32, fp64 = (compare(batches, team, seed, learning_rate, dtype) for dtype in (torch.float32, torch.float64))
    rows = [{"case": name, "fp32": a, "fp64": b, "difference": a, "equal": b <= EQUAL_WITHIN, "steps": steps}
            for (name, _, _), a, b in zip(PROOF_CASES, fp32, fp64)]
    print(f"{'largest relative weight difference':<40} {'fp32':>9} {'fp64':>9}")
    for row in rows:
        print(f"{row['case']:<40} {row['fp32']:>9.1e} {row['fp64']:>9.1e}  "
              f"{'the same steps' if row['equal'] else 'different'}")
    say(f"why the first is equal: each process computes the mean gradient of its {local} images, and the "
        f"all-reduce averages those means, which is the mean gradient of all {batch_size}; every copy then takes "
        "that same step. What is left is rounding: the two runs add the same numbers in another order (about 1e-7 "
        "apart in fp32, 1e-16 in fp64), and training carries such differences along; with larger steps or many "
        "more of them, fp32's can grow (a ReLU input that sits within rounding of 0 switches a neuron on in one "
        "run and off in the other), which is why the fp64 column is the proof and fp32 the everyday case.")
    say("what breaks it: dropout silences other neurons in each process (other random numbers, the same "
        "statistics: harmless, but not the same weights); batch normalization normalizes with the mean and spread "
        f"of each process's {local} images instead of all {batch_size}: a different function, in any precision, "
        "unless its statistics are computed over the global batch (nn.SyncBatchNorm; on a CPU, where PyTorch's "
        "refuses to run, mnist_common's GlobalBatchNorm2d: the same sums, through torch.distributed's all_reduce). "
        "In fp32 the synced network still drifts further than the plain CNN: normalizing divides by each "
        "channel's spread, which magnifies rounding.")
    return rows


# --- 3. What it costs --------------------------------------------------------------------------
def ms_per_step(step, steps: int, warmup: int = 3) -> float:
    """Milliseconds per call of step(), after a few calls that warm the caches up."""
    for _ in range(warmup):
        step()
    finish_gpu_work()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    finish_gpu_work()
    return (time.perf_counter() - start) / steps * 1000


def finish_gpu_work() -> None:
    """A GPU runs ahead of Python: wait for it before reading the clock (nothing to do on a CPU)."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def slowest(value: float) -> float:
    """The largest value over all processes: a DDP step lasts as long as its slowest process's."""
    t = torch.tensor([value], dtype=torch.float64, device=collective_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.item()


def time_ddp(data, team: Team, batch_size: int, dropout: float, steps: int) -> dict:
    """ms per DDP step as trained, with the all-reduce and without it (no_sync: gradients stay local)."""
    set_seed(0)
    model = build_model({"name": "CNN", "dropout": dropout}).to(team.device)
    ddp = DistributedDataParallel(model)
    optimizer = make_optimizer("adam", ddp, 1e-4)
    x, y = next(global_batches(data, 1, batch_size, 0))
    x, y = share_of_batch(x, team.rank, team.world_size), share_of_batch(y, team.rank, team.world_size)
    synced = slowest(ms_per_step(lambda: train_step(ddp, optimizer, x, y), steps))

    def local_step():
        with ddp.no_sync():  # the same work, minus the all-reduce
            train_step(ddp, optimizer, x, y)

    alone = slowest(ms_per_step(local_step, steps))
    flat = torch.zeros(count_parameters(model), device=team.device)  # one gradient's worth of numbers
    all_reduce = slowest(ms_per_step(lambda: dist.all_reduce(flat), steps))
    return {"step_ms": synced, "no_sync_ms": alone, "all_reduce_ms": all_reduce, "numbers": flat.numel()}


def time_one_process(data, team: Team, batch_size: int, dropout: float, steps: int) -> float | None:
    """ms per step of one process with the whole batch and all of this machine's cores (process 0
    measures while the others wait at a barrier); None in the other processes."""
    result = None
    if team.leader:
        threads = torch.get_num_threads()
        torch.set_num_threads(cores())
        set_seed(0)
        model = build_model({"name": "CNN", "dropout": dropout}).to(team.device)
        optimizer = make_optimizer("adam", model, 1e-4)
        x, y = next(global_batches(data, 1, batch_size, 0))
        try:
            result = ms_per_step(lambda: train_step(model, optimizer, x, y), steps)
        finally:
            torch.set_num_threads(threads)
    dist.barrier()
    return result


def section_costs(data, team: Team, batch_size: int, dropout: float, steps: int, trained: dict | None) -> dict:
    print(f"\n== 3. What it costs on this machine ({cores()} cores), {steps} steps timed each ==")
    ddp = time_ddp(data, team, batch_size, dropout, steps)
    alone_ms = time_one_process(data, team, batch_size, dropout, steps)
    steps_per_epoch = count_batches(len(data.train[1]), batch_size)
    share = max(0.0, ddp["step_ms"] - ddp["no_sync_ms"]) / ddp["step_ms"]
    costs = {**ddp, "one_process_ms": alone_ms, "steps_per_epoch": steps_per_epoch, "all_reduce_share": share,
             "cores": cores(), "threads": team.threads, "processes": team.world_size}
    if not team.leader:
        return costs
    costs["one_process_epoch_s"] = alone_ms * steps_per_epoch / 1000
    costs["ddp_epoch_s"] = ddp["step_ms"] * steps_per_epoch / 1000
    print(f"{'':<44} {'ms per step':>11} {'s per epoch':>12}")
    print(f"{f'1 process x {cores()} threads, batch {batch_size}':<44} {alone_ms:>11.1f} "
          f"{costs['one_process_epoch_s']:>12.1f}")
    label = f"{team.world_size} processes x {team.threads} thread, batch {batch_size // team.world_size} each"
    print(f"{label:<44} {ddp['step_ms']:>11.1f} {costs['ddp_epoch_s']:>12.1f}")
    print(f"{'  the same without the all-reduce (no_sync)':<44} {ddp['no_sync_ms']:>11.1f}")
    say(f"seconds per epoch are ms per step x {steps_per_epoch} steps (extrapolated from {steps} timed steps). "
        f"The all-reduce's share of a DDP step: {share:.0%} ({ddp['step_ms'] - ddp['no_sync_ms']:.1f} ms; one "
        f"all_reduce of all {ddp['numbers']:,} gradients ({ddp['numbers'] * 4 / 1e6:.1f} MB) alone takes "
        f"{ddp['all_reduce_ms']:.1f} ms; DDP starts it in buckets while backward is still running, which hides part)")
    if hasattr(os, "getloadavg"):
        load = os.getloadavg()[0]
        say(f"load average while measuring: {load:.1f} on {cores()} cores"
            + (" (other programs were running: these timings are not this machine's best)" if load > cores() + 0.5
               else ""))
        costs["load_average"] = load
    if trained:
        say(f"section 1 measured {sum(trained['epoch_seconds']) / len(trained['epoch_seconds']):.1f} s per epoch "
            f"with {team.world_size} processes (validation included)")
    ratio = costs["ddp_epoch_s"] / costs["one_process_epoch_s"]
    if ratio >= 1:
        say(f"on this machine, {team.world_size} processes are {ratio:.2f}x slower than 1 process with all "
            f"{cores()} cores, as expected: both use the same cores, and splitting the batch between processes "
            "adds the all-reduce without adding any arithmetic.")
    else:
        say(f"on this machine, {team.world_size} processes came out {1 / ratio:.2f}x faster than 1 process with "
            f"all {cores()} cores. Not because of DDP: a process with {cores()} threads waits at every layer for "
            "its slowest thread, and when other programs keep the cores busy a thread often waits for a core; "
            "one thread per process never waits for another. On a quiet machine the two are close, and DDP pays "
            "its all-reduce.")
    say("data parallelism pays when each process brings hardware of its own (a GPU each, or a machine each), "
        "and when a step's computing outweighs its all-reduce: large models, large batches, fast links between "
        "the machines.")
    return costs


# --- 4. The ensemble, one network per process ------------------------------------------------------
def section_ensemble(data, team: Team, models_dir: Path, epochs: int) -> list[dict]:
    """06's networks trained at the same time, one per process, each from its own seed; process 0 gathers
    the checkpoints (06's exact format) into models/ensemble/, where 06 and 05 read them."""
    settings = ensemble_settings(epochs, seed=team.rank)  # network k has seed k, as 06 numbers them
    precision = pick_precision(team.device, fastest=True)  # like 06: bf16 where the hardware computes it
    print(f"\n== 4. 06's ensemble, one network per process: {team.world_size} networks, {epochs} epochs each ==")
    say("no gradients are shared: each process trains a whole network of its own (06's recipe, seed = its rank), "
        "so W processes train W networks in the time of one. Process 0's epochs are shown; the others train "
        "silently at the same time")
    # a process that finishes first waits for the slowest at the gather: a group of its own, with a long timeout
    gather_group = dist.new_group(backend="gloo", timeout=datetime.timedelta(seconds=ENSEMBLE_WAIT_S))
    run = train_cnn(settings, data, team.device, precision)
    run.test_loss, run.test_acc = evaluate(run.model, *data.test)
    with tempfile.TemporaryDirectory() as private:  # save_run writes 06's format; its bytes travel to process 0
        written = save_run(run, data, Path(private) / "member.pt", "06_beyond_99.py")
        checkpoint = torch.load(written, weights_only=True) if written else None
    gathered = [None] * team.world_size if team.leader else None
    dist.gather_object(checkpoint, gathered, dst=0, group=gather_group)
    rows = []
    if team.leader:
        width = len(shown(Path(models_dir) / ENSEMBLE_DIR / "deepcnn_seed0.pt")) + 2
        print(f"\n{'network':<{width}} {'process':>7} {'test acc':>8} {'seconds':>8}")
        for rank, member in enumerate(gathered):
            if member is None:
                print(f"process {rank}'s network finished no useful epoch: not saved")
                continue
            seed = member["settings"]["seed"]
            path = Path(models_dir) / ENSEMBLE_DIR / f"deepcnn_seed{seed}.pt"
            atomic_save(member, path)
            log_experiment(models_dir, SCRIPT, {**member["settings"], "ensemble_member": True}, member["precision"],
                           member["metrics"]["epochs_run"], member["metrics"]["best_val_acc"],
                           member["metrics"]["test_acc"], member["parameters"], member["train_seconds"])
            accuracy, seconds = member["metrics"]["test_acc"], member["train_seconds"]
            print(f"{shown(path):<{width}} {rank:>7} {accuracy:>8.2%} {seconds:>8.0f}")
            rows.append({"path": str(path), "seed": seed, "rank": rank, "test_acc": member["metrics"]["test_acc"]})
        reuse = "" if epochs == ENSEMBLE_EPOCHS else f" (with EPOCHS = {epochs} in 06)"
        say(f"06_beyond_99.py --models {team.world_size} finds these networks and trains none again{reuse}")
    dist.destroy_process_group(gather_group)
    return rows


# --- 5. Several machines -----------------------------------------------------------------------------
def multi_node_lines(host: str, port: int, nodes: int = 2, per_node: int = 1) -> list[str]:
    """The torchrun line to type on each machine: the same on all, but for --node_rank."""
    return [f"torchrun --nnodes={nodes} --node_rank={rank} --nproc_per_node={per_node} --rdzv_backend=c10d "
            f"--rdzv_endpoint={host}:{port} --rdzv_id=mnist09 {SCRIPT}" for rank in range(nodes)]


def section_machines() -> list[str]:
    print("\n== 5. Several machines ==")
    host, port = socket.gethostname(), free_port("0.0.0.0")
    lines = multi_node_lines(host, port)
    say(f"with the project and its data on each machine (make setup), type on this machine ({host}) and on a "
        "second one:")
    for line in lines:
        print(f"  {line}")
    say(f"--nnodes: machines in all; --node_rank: which one this is; --nproc_per_node: processes on it (one per "
        f"GPU, or 1 on a CPU); --rdzv_endpoint: a machine all can reach and a free port on it (port {port} was "
        "free here just now) where torchrun's rendezvous meets; --rdzv_id: the run's name, the same on all. "
        "Process 0 (on the first machine to arrive) saves the checkpoint and the figure.")
    return lines


# --- The figure -------------------------------------------------------------------------------------
def plot_distributed(costs: dict | None, proof: list[dict] | None):
    panels = [p for p in (costs, proof) if p]
    fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 4.6), layout="constrained", squeeze=False)
    axes = iter(axes[0])
    if costs:
        ax = next(axes)
        per_step = costs["one_process_epoch_s"] / costs["one_process_ms"]  # seconds of epoch per ms of step
        names = [f"1 process\nx {costs['cores']} threads",
                 f"{costs['processes']} processes\nx {costs['threads']} thread"]
        compute = [costs["one_process_epoch_s"], costs["no_sync_ms"] * per_step]
        reduce = [0.0, max(0.0, costs["step_ms"] - costs["no_sync_ms"]) * per_step]
        # grey and red, never orange and blue: those mean the MLP and the CNN in every figure of the journey
        ax.bar(names, compute, color="tab:gray", label="computing")
        bars = ax.bar(names, reduce, bottom=compute, color="tab:red", alpha=0.6, hatch="//",
                      label="all-reduce (not hidden)")
        ax.bar_label(bars, labels=[f"{c + r:.1f} s" for c, r in zip(compute, reduce)], fontsize=10)
        ax.set_ylabel(f"seconds per epoch ({costs['steps_per_epoch']} steps, extrapolated)")
        ax.set_ylim(0, max(c + r for c, r in zip(compute, reduce)) * 1.45)  # room for the legend above the labels
        ax.legend(fontsize=9, loc="upper left", ncol=2)
        load = f", load average {costs['load_average']:.1f}" if "load_average" in costs else ""
        ax.set_title(f"The same {costs['cores']} cores, split two ways\n(all-reduce: "
                     f"{costs['all_reduce_share']:.0%} of a DDP step{load})")
    if proof:
        ax = next(axes)
        names = [row["case"] for row in proof][::-1]
        rows = range(len(names))
        for shift, precision, colour in ((0.2, "fp32", "tab:green"), (-0.2, "fp64", "tab:purple")):
            values = [max(row[precision], 1e-18) for row in proof][::-1]
            ax.barh([r + shift for r in rows], values, height=0.38, color=colour, label=precision)
        ax.set_yticks(list(rows), names)
        ax.axvline(EQUAL_WITHIN, color="black", linestyle="--", label=f"{EQUAL_WITHIN:g}: left of it, the same steps")
        ax.set_xscale("log")
        ax.set_xlabel("largest weight difference / largest weight, DDP against one process")
        ax.legend(fontsize=9, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3)
        same = [row["case"] for row in proof if row["equal"]]
        ax.set_title(f"Does DDP take one process's steps? Weights after {proof[0]['steps']} steps.\n"
                     f"The same in fp64: {'; '.join(same) or 'none'};\nin fp32, rounding differs and can grow",
                     fontsize=9)
    fig.suptitle("09: several processes training one network (DistributedDataParallel, "
                 f"{costs['processes'] if costs else 'W'} processes)")
    return fig


# --- The story ----------------------------------------------------------------------------------
def check_arguments(epochs, batch_size, proof_steps, proof_batch, timing_steps, timeout_s, ensemble_epochs) -> None:
    """The knobs main() was given, checked before any work (one line naming a bad one)."""
    for name, value, low in (("EPOCHS", epochs, 1), ("BATCH_SIZE", batch_size, 1), ("PROOF_STEPS", proof_steps, 1),
                             ("PROOF_BATCH", proof_batch, 2),
                             ("TIMING_STEPS", timing_steps, 1), ("ENSEMBLE_EPOCHS", ensemble_epochs, 1),
                             ("TIMEOUT_S", timeout_s, 1)):
        check_knob(name, value, is_whole(value, low), f"use a whole number of at least {low}")


def main(parts=PARTS, epochs: int = EPOCHS, batch_size: int = BATCH_SIZE, learning_rate: float = LEARNING_RATE,
         dropout: float = DROPOUT, seed: int = SEED, proof_steps: int = PROOF_STEPS, proof_batch: int = PROOF_BATCH,
         proof_learning_rate: float = PROOF_LEARNING_RATE, timing_steps: int = TIMING_STEPS,
         train_images: int | None = None, eval_images: int | None = None, ensemble_epochs: int = ENSEMBLE_EPOCHS,
         as_cnn: bool = False, timeout_s: int = TIMEOUT_S, out_dir: Path = VIS_DIR, models_dir: Path = MODELS_DIR,
         data_dir: Path = DATA_DIR) -> dict:
    """Run in every process torchrun starts; returns what was measured (complete in process 0)."""
    check_arguments(epochs, batch_size, proof_steps, proof_batch, timing_steps, timeout_s, ensemble_epochs)
    settings = CNNSettings(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, dropout=dropout,
                           seed=seed)
    with team_of_processes(SCRIPT, timeout_s) as team:
        if team.world_size < 2:
            raise LearnerError(f"{SCRIPT} compares several processes: start at least 2 (--nproc_per_node=2)")
        for name, value in (("BATCH_SIZE", batch_size), ("PROOF_BATCH", proof_batch)):
            if value % team.world_size:
                raise LearnerError(f"{name} = {value} cannot be split between {team.world_size} processes: "
                                   f"use a multiple of {team.world_size}")
        if team.leader:
            ensure_writable(models_dir, "checkpoints")
            ensure_writable(out_dir, "figures")
        precision = pick_precision(team.device)
        data = load_data(data_dir, train_images, eval_images).to(team.device)
        say(f"team: {team.world_size} processes ({team.local_world_size} on this machine), {team.threads} CPU "
            f"thread(s) each, {team.backend} on {team.device.type}. This is process 0: the only one that prints, "
            "draws and saves")
        results = {"processes": team.world_size, "threads": team.threads, "backend": team.backend}
        if "train" in parts:
            results["train"] = section_train(settings, data, team, precision, models_dir, as_cnn)
        if "proof" in parts:
            results["proof"] = section_proof(data, team, proof_steps, proof_batch, seed, proof_learning_rate)
        if "costs" in parts:
            results["costs"] = section_costs(data, team, batch_size, dropout, timing_steps, results.get("train"))
        if "ensemble" in parts:
            results["ensemble"] = section_ensemble(data, team, models_dir, ensemble_epochs)
        elif team.leader:
            print("\n== 4. The ensemble ==")
            say(f"`torchrun --standalone --nproc_per_node=2 {SCRIPT} --ensemble` trains 06's networks one per "
                "process, each its own, and gathers them into models/ensemble/ for 06 and 05")
        if team.leader:
            results["machines"] = section_machines()
            if results.get("costs") or results.get("proof"):
                print("\n== Figure ==")
                results["figure"] = save_figure(plot_distributed(results.get("costs"), results.get("proof")),
                                                out_dir, "09_distributed.png")
        dist.barrier()  # nobody leaves while process 0 still writes
    return results


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     epilog=f"Start it with torchrun --standalone --nproc_per_node=2 {SCRIPT}")
    parser.add_argument("--ensemble", action="store_true", help="train 06's networks, one per process, instead")
    parser.add_argument("--as-cnn", action="store_true",
                        help="save the CNN as models/cnn.pt, the model 05 reads (the old one kept as cnn.prev.pt)")
    return parser.parse_args()


if __name__ == "__main__":
    with friendly_errors():
        args = parse_args()
        main(parts=("ensemble",) if args.ensemble else PARTS, as_cnn=args.as_cnn)
