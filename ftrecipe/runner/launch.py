"""Several devices or nodes: start the job under torchrun, the launcher Accelerate builds on.

``ftrecipe run`` relaunches itself as ``python -m torch.distributed.run --standalone
--nproc_per_node N -m ftrecipe run ...`` for one node. For several nodes, start
``torchrun --nnodes ... -m ftrecipe run RECIPE`` (or ``accelerate launch -m ftrecipe run``) on each
node yourself: the processes then find themselves already launched and just run.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Sequence

from ftrecipe.sections import HardwareSection


def already_launched() -> bool:
    """True inside a torchrun/accelerate-launched process."""
    return "LOCAL_RANK" in os.environ or int(os.environ.get("WORLD_SIZE", "1")) > 1


def strategy_environment(hardware: HardwareSection) -> dict[str, str]:
    """Environment that tells Accelerate which distributed engine to use in the launched processes."""
    if hardware.strategy == "fsdp":
        return {"ACCELERATE_USE_FSDP": "true"}
    if hardware.strategy == "deepspeed":
        return {"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": str(hardware.zero_stage)}
    return {}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch_command(devices: int, argv: Sequence[str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={devices}",
        f"--master_port={_free_port()}",
        "-m",
        "ftrecipe",
        *argv,
    ]


def multinode_instructions(hardware: HardwareSection, argv: Sequence[str]) -> str:
    args = " ".join(argv)
    return (
        f"hardware.nodes is {hardware.nodes}: start the job on every node with\n"
        f"  torchrun --nnodes {hardware.nodes} --nproc_per_node {hardware.devices} --node_rank <0..{hardware.nodes - 1}> "
        f"--rdzv_backend c10d --rdzv_endpoint <head-node>:29500 -m ftrecipe {args}\n"
        "or with `accelerate launch --num_machines ... -m ftrecipe run ...`."
    )


def relaunch(hardware: HardwareSection, argv: Sequence[str]) -> int:
    """Run this same command under torchrun with one process per device; returns its exit code."""
    env = {**os.environ, **strategy_environment(hardware)}
    return subprocess.call(launch_command(hardware.devices, argv), env=env)
