"""The process a run trains in: its device, rank and world size (torchrun: gloo on CPU, NCCL on
GPU), the barrier between ranks, bf16 autocast, and the RNG state a resume restores."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch

from tic_train.config import RunConfig


@dataclass
class Env:
    device: torch.device
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        """The process that writes (checkpoints, run.json, log.jsonl)."""
        return self.rank == 0


def setup_env(cfg: RunConfig) -> Env:
    """Thread count, determinism, the device, and the process group when torchrun started several."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True)
    want_cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("nccl" if want_cuda else "gloo")
        rank = dist.get_rank()
        local = int(os.environ.get("LOCAL_RANK", "0"))
        device = torch.device(f"cuda:{local}") if want_cuda else torch.device("cpu")
        if want_cuda:
            torch.cuda.set_device(device)
        return Env(device, rank, world)
    return Env(torch.device("cuda" if want_cuda else "cpu"))


def barrier(env: Env) -> None:
    if env.world > 1:
        import torch.distributed as dist

        dist.barrier()


def autocast(cfg: RunConfig, env: Env):
    """bf16 autocast when the config asks for it, else nothing."""
    if cfg.precision == "bf16":
        return torch.autocast(env.device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def rng_state(env: Env) -> dict:
    s = {"cpu": torch.get_rng_state()}
    if env.device.type == "cuda":
        s["cuda"] = torch.cuda.get_rng_state(env.device)
    return s


def set_rng_state(state: dict, env: Env) -> None:
    torch.set_rng_state(state["cpu"])
    if env.device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], env.device)
