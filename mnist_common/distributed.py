"""Several processes, one training run: the plumbing of 09_distributed.py, written once.

torchrun starts the processes and tells each one who it is in environment variables (RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT). `team_of_processes` connects them with
torch.distributed (gloo on CPUs, nccl on CUDA GPUs), lets only process 0 print, and turns the
ways a team fails (started without torchrun, a port already in use, a process that dies or
hangs) into one line each. `shard_indices` is what PyTorch's DistributedSampler does, on
tensors held in memory. `sync_batch_norm` makes batch normalization use the statistics of the
whole global batch. Every message between processes goes through torch.distributed's own
collectives (all_reduce, broadcast, gather): nothing here sends a byte itself.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import socket
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from .runtime import LearnerError, pick_device

LAUNCH_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")  # what torchrun sets
TEAM_FAILURES = ("gloo", "NCCL", "Connection reset", "Connection closed", "Connection refused", "Timed out",
                 "Broken pipe")  # words in the errors a collective raises when another process is gone


@dataclass(frozen=True)
class Team:
    """Who this process is among the processes torchrun started (all of them: the "world")."""

    rank: int  # 0 .. world_size - 1, unique across every machine; process 0 prints, draws and saves
    world_size: int  # processes in all, on all machines
    local_rank: int  # its number on this machine (which GPU it takes)
    local_world_size: int  # processes on this machine
    device: torch.device
    backend: str  # "gloo" (CPUs) or "nccl" (CUDA GPUs)
    threads: int  # CPU threads this process computes with

    @property
    def leader(self) -> bool:
        return self.rank == 0


def torchrun_command(script: str, processes: int = 2) -> str:
    """The command that starts `script` as `processes` processes on this machine."""
    return f"torchrun --standalone --nproc_per_node={processes} {script}"


def launched() -> bool:
    """True when a launcher (torchrun, or a cluster's scheduler) has set the variables a team needs."""
    return all(name in os.environ for name in LAUNCH_VARS)


def cores() -> int:
    """CPU cores this process may use (the ones the operating system lets it run on)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def threads_per_process(local_world_size: int) -> int:
    """$OMP_NUM_THREADS when set (torchrun sets 1 when it starts several processes on a machine), else the
    machine's cores shared out: processes that compete for the same cores only slow each other down."""
    wanted = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(wanted) if wanted.isdigit() and int(wanted) >= 1 else max(1, cores() // local_world_size)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the operating system picks it)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def device_and_backend(local_rank: int, local_world_size: int) -> tuple[torch.device, str]:
    """One CUDA GPU per process with nccl when there are enough of them; otherwise the CPU with gloo.

    $MNIST_DEVICE=cuda on a machine without CUDA stops in pick_device, with one line.
    """
    device = pick_device()
    if device.type == "cuda":
        gpus = torch.cuda.device_count()
        if local_world_size > gpus:
            raise LearnerError(f"{local_world_size} processes on this machine but {gpus} CUDA GPU(s): start "
                               f"one process per GPU (--nproc_per_node={gpus}), or MNIST_DEVICE=cpu")
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank), "nccl"
    if device.type != "cpu":
        print(f"{device.type} cannot join a torch.distributed team here: the processes use the CPU (gloo)")
    return torch.device("cpu"), "gloo"


class _NoTerminal:
    """stderr for the processes other than 0: messages still go through, progress bars do not
    (tqdm draws only on a terminal, and this one says it is not)."""

    def __init__(self, stream):
        self.stream = stream

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name):
        return getattr(self.stream, name)


@contextlib.contextmanager
def only_process_0_prints(rank: int):
    """Process 0 prints as usual; the others print nothing and draw no progress bars, but their
    error messages still reach the terminal."""
    if rank == 0:
        yield
        return
    out, err = sys.stdout, sys.stderr
    with open(os.devnull, "w") as nowhere:
        sys.stdout, sys.stderr = nowhere, _NoTerminal(err)
        try:
            yield
        finally:
            sys.stdout, sys.stderr = out, err


def is_team_failure(error: BaseException) -> bool:
    """Did a collective fail because another process died, hung, or could not be reached?"""
    return isinstance(error, dist.DistError) or (isinstance(error, RuntimeError)
                                                  and any(word in str(error) for word in TEAM_FAILURES))


def team_failure_message(error: BaseException, rank: int, timeout_s: float) -> str:
    """The one line a learner reads when the team broke, instead of gloo's C++ message."""
    text = str(error)
    if "EADDRINUSE" in text or "address already in use" in text:
        where = f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')}"
        return (f"port {where} is already in use (is another run still going?): stop it, or choose another "
                "port (torchrun --rdzv_endpoint=HOST:PORT, or MASTER_PORT)")
    if "Timed out" in text or "timeout" in text.lower():
        return (f"process {rank}: no answer from the other processes within {timeout_s:g} s (TIMEOUT_S): one is "
                "stuck or its machine cannot be reached; stopping")
    return (f"process {rank}: lost contact with another process (it stopped: its own message, or torchrun's "
            "report, says why); stopping this one too")


@contextlib.contextmanager
def team_of_processes(script: str, timeout_s: float):
    """Join the team torchrun started: yields a Team, and always leaves it cleanly.

    The timeout bounds every wait for another process (each all-reduce, each barrier): if one dies or
    hangs, the others stop with one line within `timeout_s` seconds instead of waiting forever.
    """
    if not launched():
        raise LearnerError(f"{script} runs as several processes that torchrun starts and connects: run "
                           f"`{torchrun_command(script)}` (or `make distributed`), not `python {script}`")
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ["LOCAL_RANK"])
    local_world_size = int(os.environ.get("LOCAL_WORLD_SIZE", world_size))
    with only_process_0_prints(rank):
        threads = threads_per_process(local_world_size)
        torch.set_num_threads(threads)
        device, backend = device_and_backend(local_rank, local_world_size)
        try:
            dist.init_process_group(backend, rank=rank, world_size=world_size,
                                    timeout=datetime.timedelta(seconds=timeout_s))
            yield Team(rank, world_size, local_rank, local_world_size, device, backend, threads)
        except (RuntimeError, dist.DistError) as error:
            if not is_team_failure(error):
                raise
            raise LearnerError(team_failure_message(error, rank, timeout_s)) from None
        finally:
            if dist.is_initialized():
                dist.destroy_process_group()


# ---------------------------------------------------------------------------------------
# The data: each process its own shard, the global batch split between them.
# ---------------------------------------------------------------------------------------
def shard_indices(n: int, rank: int, world_size: int, seed: int, epoch: int) -> torch.Tensor:
    """The positions (of n training examples) that process `rank` trains on in `epoch`.

    Every process draws the same permutation (same seed, same epoch) and takes every world_size-th
    position from its rank on: the shards are disjoint, and together they cover the data. A new
    epoch draws a new permutation, so each process sees other examples (DistributedSampler's
    set_epoch). When n is not a multiple of world_size the last n % world_size positions are left
    out, different ones each epoch: every process must take the same number of steps, or the last
    all-reduce would wait for a partner that never comes. Read in batches of B / world_size, the
    shards give global batch t = permutation[t*B : (t+1)*B], split between the processes.
    """
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
    usable = n - n % world_size
    return order[rank:usable:world_size]


def share_of_batch(tensor: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """This process's part of a global batch: rows rank, rank + W, rank + 2W, ... (as shard_indices deals them)."""
    return tensor[rank::world_size]


# ---------------------------------------------------------------------------------------
# Batch normalization over the whole global batch.
# ---------------------------------------------------------------------------------------
class _SumOverProcesses(torch.autograd.Function):
    """x summed over all processes (all_reduce); its gradient is summed the same way on the way back,
    since every process's loss depends on every process's x."""

    @staticmethod
    def forward(ctx, x):  # noqa: ARG004 (ctx is autograd's)
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad):  # noqa: ARG004
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the GLOBAL batch, summed over every process:
    what nn.SyncBatchNorm computes, for devices where PyTorch's SyncBatchNorm refuses to run (it
    accepts only GPU tensors). Same weights and buffers as BatchNorm2d; in eval mode it is BatchNorm2d."""

    def forward(self, x):  # x: (N, C, H, W), this process's share of the batch
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        dims = (0, 2, 3)  # everything but the channel
        count = torch.tensor(float(x.numel() // x.shape[1]), dtype=x.dtype, device=x.device)
        dist.all_reduce(count)  # values per channel in the global batch
        mean = _SumOverProcesses.apply(x.sum(dims)) / count  # (C,)
        centred = x - mean[None, :, None, None]
        var = _SumOverProcesses.apply(centred.pow(2).sum(dims)) / count  # (C,), biased, as BN normalizes
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            weight = self.momentum if self.momentum is not None else 1 / self.num_batches_tracked.item()
            self.running_mean.lerp_(mean, weight)
            self.running_var.lerp_(var * count / (count - 1), weight)  # the unbiased estimate, as BN keeps it
        y = centred * torch.rsqrt(var + self.eps)[None, :, None, None]
        return y * self.weight[None, :, None, None] + self.bias[None, :, None, None]


def sync_batch_norm(model: nn.Module, device: torch.device) -> nn.Module:
    """Every BatchNorm2d of `model` made to use the global batch's statistics.

    On CUDA, PyTorch's own nn.SyncBatchNorm; on the CPU, where nn.SyncBatchNorm raises "expected input
    tensor to be on GPU", GlobalBatchNorm2d, the same computation built on torch.distributed's all_reduce.
    """
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for name, child in model.named_children():
        if isinstance(child, nn.BatchNorm2d):
            synced = GlobalBatchNorm2d(child.num_features, child.eps, child.momentum)
            synced = synced.to(child.weight.device, child.weight.dtype)
            synced.load_state_dict(child.state_dict())
            setattr(model, name, synced)
        else:
            sync_batch_norm(child, device)
    return model
