"""The training loop every modality shares, on Hugging Face Accelerate.

Accelerate owns devices, mixed precision, gradient accumulation, DDP/FSDP/DeepSpeed and the saved
training state; this module owns the order of things: data order per epoch, logging, evaluation,
checkpoints, interruption and resume.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import accelerate.optimizer
import torch

from ftrecipe.data import EpochIndex
from ftrecipe.errors import RunFailure
from ftrecipe.freeze import FreezeReport, apply_freeze_plan
from ftrecipe.runner.checkpoint import LoopState, fingerprint, latest_checkpoint, load_compatible_state, save_checkpoint
from ftrecipe.runner.optim import build_optimizer, build_scheduler
from ftrecipe.runner.outputs import MetricsLog
from ftrecipe.runner.progress import Reporter
from ftrecipe.task import DataBundle, EvalResult, ModalityTask


# Accelerate's optimizer wrapper asks the file system whether `lomo_optim` is installed twice on
# every step (an uncached importlib.util.find_spec): about 0.2 ms a step, 5% of a small model's
# step on a CPU. Whether a package is installed does not change during a run, so remember it.
accelerate.optimizer.is_lomo_available = functools.cache(accelerate.optimizer.is_lomo_available)


class Interrupted(Exception):
    """Ctrl-C or SIGTERM: a checkpoint was saved and the run can be resumed."""

    def __init__(self, checkpoint: Path) -> None:
        super().__init__(str(checkpoint))
        self.checkpoint = checkpoint


class EpochSampler(torch.utils.data.Sampler):
    """A seeded permutation per epoch; for epoch-aware datasets the indices are :class:`EpochIndex`.

    The order depends only on (seed, epoch): a resumed run replays the same order and skips what it
    had consumed. Plain ints are yielded otherwise: wrapping costs about 1 µs an example.
    """

    def __init__(self, size: int, seed: int, shuffle: bool = True, epoch_aware: bool = False) -> None:
        self.size, self.seed, self.shuffle, self.epoch = size, seed, shuffle, 0
        self.epoch_aware = epoch_aware

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.size, generator=generator).tolist()
        else:
            order = range(self.size)
        if not self.epoch_aware:
            return iter(order)
        return (EpochIndex(i, self.epoch) for i in order)

    def __len__(self) -> int:
        return self.size


def loader_workers(configured: int | None, device_type: str, devices: int) -> int:
    """The recipe's count, or: several workers beside a GPU, whose cores are otherwise idle; on a CPU,
    one only with 4+ cores per process. On fewer cores a worker competes with torch's compute
    threads and slows the step more than it hides (2 cores, Whisper demo: 200 steps in 16 s without
    a worker, 19-22 s with one)."""
    if configured is not None:
        return configured
    cores = (os.cpu_count() or 1) // max(1, devices)
    if device_type == "cuda":
        return min(8, max(1, cores - 1))
    return 1 if cores >= 4 else 0


@dataclass
class LoopResult:
    state: LoopState
    eval_before: dict[str, float] | None
    eval_after: EvalResult | None
    freeze_report: FreezeReport
    data: DataBundle
    model: torch.nn.Module
    world_size: int


class StopFlag:
    """Turns SIGINT/SIGTERM into a request to checkpoint and stop at the next step boundary.

    Under torchrun one Ctrl-C arrives twice, from the terminal and forwarded by the launcher,
    milliseconds apart; only a second signal at least ``SAME_SIGNAL_SECONDS`` later is a
    second Ctrl-C, which stops at once.
    """

    SAME_SIGNAL_SECONDS = 1.0

    def __init__(self) -> None:
        self.requested = False
        self._first = 0.0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopFlag:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        now = time.monotonic()
        if not self.requested:
            self.requested, self._first = True, now
        elif now - self._first >= self.SAME_SIGNAL_SECONDS:
            raise KeyboardInterrupt

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def train(
    *,
    task: ModalityTask,
    accelerator: Any,
    output_dir: Path,
    reporter: Reporter,
    metrics_log: MetricsLog,
    data: DataBundle,
    resume: bool,
    max_steps: int | None,
    callbacks: list[Any],
) -> LoopResult:
    recipe = task.recipe
    training = recipe.training
    checkpoints = output_dir / "checkpoints"

    model = task.build_model()
    model, freeze_report = apply_freeze_plan(model, recipe, task.anatomy(model))
    reporter.info(f"freeze plan {freeze_report.describe()}")
    if training.gradient_checkpointing and hasattr(model, "gradient_checkpointing_enable"):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if hasattr(model, "enable_input_require_grads"):
            model.enable_input_require_grads()

    sampler = EpochSampler(len(data.train), training.seed, epoch_aware=getattr(data.train, "epoch_aware", False))
    workers = loader_workers(recipe.hardware.dataloader_workers, accelerator.device.type, accelerator.num_processes)
    loader = torch.utils.data.DataLoader(
        data.train,
        batch_size=training.batch_size,
        sampler=sampler,
        collate_fn=data.collate,
        num_workers=workers,
        pin_memory=accelerator.device.type == "cuda",
        persistent_workers=workers > 0,
    )
    optimizer = build_optimizer(model, training)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)

    batches_per_epoch = len(loader)
    steps_per_epoch = max(1, math.ceil(batches_per_epoch / training.gradient_accumulation))
    total_steps = max_steps or training.max_steps or max(1, math.ceil((training.epochs or 1) * steps_per_epoch))
    scheduler = build_scheduler(optimizer, training, total_steps)
    accelerator.register_for_checkpointing(scheduler)

    state = LoopState(fingerprint=fingerprint(recipe))
    if resume:
        found = latest_checkpoint(checkpoints)
        if found is not None:
            state = load_compatible_state(found, recipe)
            accelerator.load_state(str(found))
            accelerator.step = 0
            metrics_log.truncate_after(state.step)
            reporter.info(f"resuming from {found.name}: step {state.step}, epoch {state.epoch + 1}")
        else:
            reporter.info("no complete checkpoint yet: starting from the beginning")

    def evaluate() -> EvalResult | None:
        if data.eval is None or len(data.eval) == 0:
            return None
        result = None
        if accelerator.is_main_process:
            unwrapped = accelerator.unwrap_model(model)
            unwrapped.eval()
            with torch.no_grad():
                result = task.evaluate(unwrapped, data, max_examples=recipe.evaluation.max_examples)
            unwrapped.train()
        accelerator.wait_for_everyone()
        return result

    if state.step == 0 and recipe.evaluation.before_training and state.eval_before is None:
        before = evaluate()
        if before is not None:
            state.eval_before = before.metrics
            reporter.evaluation("eval before training", before.metrics)
            if accelerator.is_main_process:
                metrics_log.append({"step": 0, "kind": "eval_before", **before.metrics})
                save_samples(output_dir / "eval_before_samples.jsonl", before)

    model.train()
    reporter.start(total_steps, steps_per_epoch, state.step)
    running_loss = torch.zeros((), device=accelerator.device)
    micro_batches = 0
    window_samples = window_tokens = 0
    window_start = time.perf_counter()
    window_wait = 0.0  # time the step spent waiting for its batch: the data pipeline's share
    started = time.perf_counter() - state.train_seconds
    params = [p for p in model.parameters() if p.requires_grad]
    # Without accumulation every micro-batch is an optimizer step: Accelerate's accumulate() context
    # (no_sync bookkeeping, about 2% of a small model's step) has nothing to do.
    accumulate = (lambda: accelerator.accumulate(model)) if training.gradient_accumulation > 1 else contextlib.nullcontext

    def checkpoint() -> Path:
        state.train_seconds = time.perf_counter() - started
        path = save_checkpoint(accelerator, checkpoints, state, training.keep_checkpoints)
        for callback in callbacks:
            callback.on_checkpoint(state.step, path)
        return path

    with StopFlag() as stop:
        stop_voted = StopVote(stop, accelerator)
        while state.step < total_steps:
            epoch_loader = accelerator.skip_first_batches(loader, state.batches_in_epoch) if state.batches_in_epoch else loader
            epoch_loader.set_epoch(state.epoch)  # Accelerate's own bookkeeping
            # and ours directly: when resuming several processes, the loader that skips the batches already
            # seen nests our sampler too deep for Accelerate's set_epoch, which would replay epoch 0's order
            sampler.set_epoch(state.epoch)
            reporter.new_epoch(state.epoch, math.ceil(state.batches_in_epoch / training.gradient_accumulation))
            fetch_start = time.perf_counter()
            for batch in epoch_loader:
                window_wait += time.perf_counter() - fetch_start
                with accumulate():
                    loss = task.compute_loss(model, batch)
                    accelerator.backward(loss)
                    if accelerator.sync_gradients and training.max_grad_norm:
                        accelerator.clip_grad_norm_(params, training.max_grad_norm)
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                state.batches_in_epoch += 1
                running_loss += loss.detach().float()
                micro_batches += 1
                samples, tokens = task.batch_counts(batch)
                window_samples += samples * accelerator.num_processes
                window_tokens += tokens * accelerator.num_processes
                if not accelerator.sync_gradients:
                    fetch_start = time.perf_counter()
                    continue
                scheduler.step()
                state.step += 1
                state.samples += window_samples
                state.tokens += window_tokens
                record = None
                if state.step % training.log_every == 0 or state.step == total_steps:
                    mean_loss = accelerator.reduce(running_loss / micro_batches, "mean").item()
                    elapsed = max(time.perf_counter() - window_start, 1e-9)
                    record = {
                        "kind": "train",
                        "step": state.step,
                        "epoch": round(state.epoch + state.batches_in_epoch / batches_per_epoch, 4),
                        "loss": mean_loss,
                        "lr": scheduler.get_last_lr()[0],
                        "samples_per_second": window_samples / elapsed,
                        "data_wait_fraction": round(window_wait / elapsed, 4),
                        **({"tokens_per_second": window_tokens / elapsed} if window_tokens else {}),
                    }
                    if not math.isfinite(mean_loss):
                        raise RunFailure(f"the loss became {mean_loss} at step {state.step}; lower training.learning_rate")
                    if accelerator.is_main_process:
                        metrics_log.append(record)
                        for callback in callbacks:
                            callback.on_log(record)
                    running_loss.zero_()
                    micro_batches = window_samples = window_tokens = 0
                    window_wait = 0.0
                    window_start = time.perf_counter()
                reporter.step(state.step, record)
                if training.eval_every and state.step % training.eval_every == 0 and state.step < total_steps:
                    _periodic_eval(evaluate, state, reporter, metrics_log, accelerator, callbacks)
                if training.checkpoint_every and state.step % training.checkpoint_every == 0:
                    checkpoint()
                if stop_voted():
                    reporter.stop()
                    raise Interrupted(checkpoint())
                if state.step >= total_steps:
                    break
                fetch_start = time.perf_counter()
            else:
                state.epoch += 1
                state.batches_in_epoch = 0
                if not training.checkpoint_every and state.step < total_steps:
                    checkpoint()
    reporter.stop()
    checkpoint()
    after = evaluate()
    if after is not None:
        reporter.evaluation("eval after training", after.metrics, state.eval_before)
        if accelerator.is_main_process:
            metrics_log.append({"step": state.step, "kind": "eval_after", **after.metrics})
            save_samples(output_dir / "eval_after_samples.jsonl", after)
    return LoopResult(state, state.eval_before, after, freeze_report, data, model, accelerator.num_processes)


class StopVote:
    """Do the processes want to stop? All must agree on the step, or the checkpoint's collectives hang.

    Each step's vote is summed across processes and read one step later, so reading it never waits
    for the step just queued on the GPU (reading it at once would stall every step); every process
    reads the same lagged sum, so all stop together, one step after the signal.
    """

    def __init__(self, stop: StopFlag, accelerator: Any) -> None:
        self.stop, self.accelerator = stop, accelerator
        self.pending: torch.Tensor | None = None

    def __call__(self) -> bool:
        if self.accelerator.num_processes == 1:
            return self.stop.requested
        previous = self.pending
        vote = torch.tensor(1.0 if self.stop.requested else 0.0, device=self.accelerator.device)
        self.pending = self.accelerator.reduce(vote, "sum")
        return previous is not None and bool(previous.item() > 0)


def _periodic_eval(evaluate, state, reporter, metrics_log, accelerator, callbacks) -> EvalResult | None:
    result = evaluate()
    if result is not None:
        reporter.evaluation(f"eval at step {state.step}", result.metrics)
        if accelerator.is_main_process:
            metrics_log.append({"step": state.step, "kind": "eval", **result.metrics})
            for callback in callbacks:
                callback.on_evaluate(state.step, result.metrics)
    return result


def save_samples(path: Path, result: EvalResult) -> None:
    import json

    if result.samples:
        path.write_text("".join(json.dumps(s, default=str) + "\n" for s in result.samples), encoding="utf-8")
    for name, image in result.images.items():
        image.save(path.with_name(f"{path.stem.replace('_samples', '')}_{name}.png"))
