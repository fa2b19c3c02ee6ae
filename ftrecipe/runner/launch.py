"""Several devices or nodes: start the job under torchrun, the launcher Accelerate builds on.

``ftrecipe run`` becomes the torchrun agent of ``torchrun --standalone --nproc_per_node N -m
ftrecipe run ...`` for one node (in this process, so that a Ctrl-C or a failed worker ends in
ftrecipe's own exit code and message, not in the launcher's traceback). For several nodes, start
``torchrun --nnodes ... -m ftrecipe run RECIPE`` (or ``accelerate launch -m ftrecipe run``) on each
node yourself: the processes then find themselves already launched and just run.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

from ftrecipe.errors import RecipeRuntimeError
from ftrecipe.sections import HardwareSection


def already_launched() -> bool:
    """True inside a torchrun/accelerate-launched process."""
    return "LOCAL_RANK" in os.environ or int(os.environ.get("WORLD_SIZE", "1")) > 1


def check_world_size(hardware: HardwareSection) -> None:
    """A launched job runs with exactly the recipe's ``devices x nodes`` processes: a launcher that
    started another number would train another global batch than the recipe (and plan) says."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    wanted = hardware.devices * hardware.nodes
    if world != wanted:
        raise RecipeRuntimeError(("hardware", "devices"),
                                 f"the launcher started {world} process(es) but the recipe asks for {wanted} "
                                 f"(hardware.devices {hardware.devices} x hardware.nodes {hardware.nodes}); "
                                 f"set them to match, e.g. --set hardware.devices={world // hardware.nodes or 1}")


def strategy_environment(hardware: HardwareSection, *, cpu: bool = False) -> dict[str, str]:
    """Environment that tells Accelerate which distributed engine to use in the launched processes (and
    DeepSpeed, on CPU processes, that its accelerator is the CPU: it then talks over gloo)."""
    if hardware.strategy == "deepspeed":
        return {"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": str(hardware.zero_stage),
                **({"DS_ACCELERATOR": "cpu"} if cpu else {})}
    return {}


def launch_arguments(devices: int, argv: Sequence[str], worker_server: str | None = None) -> list[str]:
    """torchrun's command line (after ``torchrun``) that runs this same command once per device (forked
    by ``worker_server`` where this process has one: see :mod:`ftrecipe.forked_workers`)."""
    module = ["-m", "ftrecipe.forked_workers", worker_server] if worker_server else ["-m", "ftrecipe"]
    return ["--standalone", f"--nproc_per_node={devices}", *module, *argv]


def multinode_instructions(hardware: HardwareSection, argv: Sequence[str]) -> str:
    args = " ".join(argv)
    return (
        f"hardware.nodes is {hardware.nodes}: start the job on every node with\n"
        f"  torchrun --nnodes {hardware.nodes} --nproc_per_node {hardware.devices} --node_rank <0..{hardware.nodes - 1}> "
        f"--rdzv_backend c10d --rdzv_endpoint <head-node>:29500 -m ftrecipe {args}\n"
        "or with `accelerate launch --num_machines ... -m ftrecipe run ...`."
    )


def relaunch(hardware: HardwareSection, argv: Sequence[str]) -> int:
    """Run this same command under torchrun with one process per device; returns the exit code.

    A terminal's Ctrl-C reaches this agent and the workers (one process group); the agent passes it
    on and waits while the workers checkpoint and exit, then this returns 130 (143 for SIGTERM) quietly. A worker's
    failure was already reported by the worker: its exit code is returned, without the launcher's
    error summary.
    """
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    from ftrecipe.forked_workers import socket_path

    if "--debug" not in argv:  # the agent's own notices: the workers report for themselves
        for name in list(logging.root.manager.loggerDict):
            if name.startswith("torch.distributed.elastic"):
                logging.getLogger(name).setLevel(logging.CRITICAL)
    # after Ctrl-C, let the workers finish a large checkpoint (torchrun's default is 30 s, then SIGKILL);
    # a second Ctrl-C still stops them at once
    os.environ.setdefault("TORCH_ELASTIC_SHUTDOWN_TIMEOUT", "600")
    # torchrun would set 1 and say so; share the cores between the processes instead
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // hardware.devices)))
    try:
        run(parse_args(launch_arguments(hardware.devices, argv, socket_path())))
    except SignalException as error:  # Ctrl-C: 130, SIGTERM: 143
        return 128 + int(error.sigval)
    except ChildFailedError as error:
        codes = [failure.exitcode for failure in error.failures.values()]
        code = next((c for c in codes if c != 0), 1)
        return 128 - code if code < 0 else code  # killed by signal N: 128 + N, as a shell reports it
    return 0
