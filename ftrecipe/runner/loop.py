"""The training loop every modality shares, on Hugging Face Accelerate.

Accelerate owns devices, mixed precision, gradient accumulation, DDP/FSDP/DeepSpeed and the saved
training state; this module owns the order of things, as named steps of :class:`CommonLoop`: set-up
(model, freeze plan, loader, optimizer), resume, evaluation before training, the optimizer step, the
logged window, checkpoints and interruption, and the end.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import time
from pathlib import Path
from typing import Any, Literal

import accelerate.optimizer
import torch

from ftrecipe.data import EpochIndex
from ftrecipe.errors import RunFailure
from ftrecipe.freeze import apply_freeze_plan
from ftrecipe.libraries import switch_checkpointing
from ftrecipe.runner.checkpoint import LoopState, fingerprint, latest_checkpoint, load_compatible_state, save_checkpoint
from ftrecipe.runner.frozen import check_same_base, frozen_digest, keep_frozen_out
from ftrecipe.runner.optim import build_optimizer, build_scheduler, step_counts
from ftrecipe.runner.outputs import MetricsLog, add_to_run_info
from ftrecipe.runner.progress import Reporter
from ftrecipe.runner.sharding import gather_full_state, load_shards, load_whole, save_shards, shard_model, unsharded_root
from ftrecipe.runner.speed import compile_blocks, describe, eager
from ftrecipe.runner.stop import Interrupted, StopFlag, StopVote
from ftrecipe.task import DataBundle, EvalResult, FitResult, ModalityTask

# Accelerate's optimizer wrapper asks the file system whether `lomo_optim` is installed twice on
# every step (an uncached importlib.util.find_spec): about 0.2 ms a step, 5% of a small model's
# step on a CPU. Whether a package is installed does not change during a run, so remember it.
accelerate.optimizer.is_lomo_available = functools.cache(accelerate.optimizer.is_lomo_available)


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


class _Window:
    """What happened since the last logged step: loss, examples, tokens, time waiting for data."""

    def __init__(self, device: torch.device) -> None:
        self.loss = torch.zeros((), device=device)
        self.reset()

    def reset(self) -> None:
        self.loss.zero_()
        self.micro_batches = self.samples = self.tokens = 0
        self.wait = 0.0
        self.start = time.perf_counter()


class CommonLoop:
    """One run of the common loop: ``CommonLoop(...).run()`` returns the :class:`FitResult`."""

    def __init__(self, *, task: ModalityTask, accelerator: Any, output_dir: Path, reporter: Reporter,
                 metrics_log: MetricsLog, data: DataBundle, resume: bool, max_steps: int | None,
                 callbacks: list[Any]) -> None:
        self.task, self.recipe, self.training = task, task.recipe, task.recipe.training
        self.accelerator, self.output_dir, self.reporter = accelerator, output_dir, reporter
        self.metrics_log, self.data, self.callbacks = metrics_log, data, callbacks
        self.resume, self.max_steps = resume, max_steps
        self.checkpoints = output_dir / "checkpoints"
        self.main = accelerator.is_main_process

    # -- set-up --------------------------------------------------------------------------------
    def set_up(self) -> None:
        """Model with its freeze plan, the seeded loader, optimizer and schedule, all prepared."""
        task, training, accelerator = self.task, self.training, self.accelerator
        model = task.build_model()
        model, self.freeze_report = apply_freeze_plan(model, self.recipe, task.anatomy(model))
        self.reporter.info(f"freeze plan {self.freeze_report.describe()}")
        digest = frozen_digest(model)  # before sharding: every process's whole frozen weights
        if training.gradient_checkpointing and switch_checkpointing(model, True):
            if hasattr(model, "enable_input_require_grads"):
                model.enable_input_require_grads()
        self.speed_up(model)
        data = self.data
        self.sampler = EpochSampler(len(data.train), training.seed, epoch_aware=getattr(data.train, "epoch_aware", False))
        workers = loader_workers(self.recipe.hardware.dataloader_workers, accelerator.device.type, accelerator.num_processes)
        loader = torch.utils.data.DataLoader(
            data.train,
            batch_size=training.batch_size,
            sampler=self.sampler,
            collate_fn=data.collate,
            num_workers=workers,
            pin_memory=accelerator.device.type == "cuda",
            persistent_workers=workers > 0,
        )
        self.sharded = self.recipe.hardware.strategy == "fsdp"  # at world size 1 too: one shard, the same code
        if self.sharded:  # FSDP2 shards the model itself; Accelerate keeps the loader (see sharding.py)
            self.model = shard_model(model, accelerator.device.type, accelerator.mixed_precision)
            self.optimizer = build_optimizer(self.model, training)
            self.loader = accelerator.prepare(loader)
        else:
            optimizer = build_optimizer(model, training)
            self.model, self.optimizer, self.loader = accelerator.prepare(model, optimizer, loader)
        self.save_options, self.load_options = keep_frozen_out(accelerator)
        # ZeRO-3 partitions the weights as FSDP does: every forward (evaluation's too) gathers them from all
        self.partitioned = self.sharded or (self.recipe.hardware.strategy == "deepspeed" and self.recipe.hardware.zero_stage == 3)
        self.batches_per_epoch = len(self.loader)
        self.total_steps, self.steps_per_epoch = step_counts(self.batches_per_epoch, training, self.max_steps)
        self.scheduler = build_scheduler(self.optimizer, training, self.total_steps)
        accelerator.register_for_checkpointing(self.scheduler)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.state = LoopState(fingerprint=fingerprint(self.recipe), frozen_digest=digest)
        self.saved_step = -1

    def speed_up(self, model: torch.nn.Module) -> None:
        """The modality's speed switches, then compilation; each switch's state to the log and run.json."""
        training = self.training
        switches: dict[str, Any] = {"compile": training.compile, "optimizer": training.optimizer}
        switches.update(self.task.apply_speedups(model))
        if training.compile:
            switches["compile"] = f"on ({compile_blocks(model)} blocks)"
        self.reporter.info(f"speed: {describe(switches)}")
        if self.main:
            add_to_run_info(self.output_dir, "speed", switches)

    def resume_state(self) -> None:
        """With --resume: the last complete checkpoint's weights, optimizer, RNGs and loop position."""
        if not self.resume:
            return
        found = latest_checkpoint(self.checkpoints)
        if found is None:
            self.reporter.info("no complete checkpoint yet: starting from the beginning")
            return
        stored = load_compatible_state(found, self.recipe, self.accelerator.num_processes)
        check_same_base(stored.frozen_digest, self.state.frozen_digest, found)
        stored.frozen_digest = self.state.frozen_digest  # (a checkpoint of an earlier release recorded none)
        self.state = stored
        self.accelerator.load_state(str(found), **self.load_options)
        if self.sharded:
            load_shards(self.model, self.optimizer, found)
        self.accelerator.step = 0
        if self.main:  # one writer: the processes would race on the same file
            self.metrics_log.truncate_after(self.state.step)
        self.reporter.info(f"resuming from {found.name}: step {self.state.step}, epoch {self.state.epoch + 1}")

    # -- evaluation ----------------------------------------------------------------------------
    def evaluate(self, when: Literal["before", "periodic", "after"]) -> EvalResult | None:
        """The task's evaluation on the main process, the others waiting; a partitioned model (FSDP,
        ZeRO-3) is evaluated by every process in step (each forward gathers the weights from all of
        them), and the main process's result is kept. ``ctx.evaluation`` says ``when`` while the task evaluates."""
        data = self.data
        if data.eval is None or len(data.eval) == 0:
            return None
        result = None
        if self.main or self.partitioned:
            unwrapped = self.accelerator.unwrap_model(self.model)
            unwrapped.eval()
            ctx = self.task.ctx
            ctx.evaluation = when
            try:
                with torch.no_grad(), eager(self.training.compile), unsharded_root(self.model, self.sharded):
                    result = self.task.evaluate(unwrapped, data, max_examples=self.recipe.evaluation.max_examples)
            finally:
                ctx.evaluation = None
            unwrapped.train()
        self.accelerator.wait_for_everyone()
        return result if self.main else None

    def evaluate_before(self) -> None:
        state = self.state
        if state.step != 0 or not self.recipe.evaluation.before_training or state.eval_before is not None:
            return
        before = self.evaluate("before")
        if before is not None:
            state.eval_before = before.metrics
            self.reporter.evaluation("eval before training", before.metrics)
            if self.main:
                self.metrics_log.append({"step": 0, "kind": "eval_before", **before.metrics})
                self.metrics_log.samples("eval_before", 0, before)

    def evaluate_periodically(self) -> None:
        result = self.evaluate("periodic")
        if result is not None:
            self.reporter.evaluation(f"eval at step {self.state.step}", result.metrics)
            if self.main:
                self.metrics_log.append({"step": self.state.step, "kind": "eval", **result.metrics})
                self.metrics_log.samples("eval", self.state.step, result)
                for callback in self.callbacks:
                    callback.on_evaluate(self.state.step, result.metrics)

    # -- training ------------------------------------------------------------------------------
    def checkpoint(self) -> Path:
        self.state.train_seconds = time.perf_counter() - self.started
        shards = functools.partial(save_shards, self.model, self.optimizer) if self.sharded else None
        path = save_checkpoint(self.accelerator, self.checkpoints, self.state, self.training.keep_checkpoints, shards,
                               self.save_options)
        self.saved_step = self.state.step
        for callback in self.callbacks:
            callback.on_checkpoint(self.state.step, path)
        return path

    def micro_batch(self, batch: Any, accumulate: Any) -> None:
        """Forward, backward and (when the accumulation is complete) the optimizer step."""
        accelerator = self.accelerator
        with accumulate():
            loss = self.task.compute_loss(self.model, batch)
            accelerator.backward(loss)
            if accelerator.sync_gradients:  # (Accelerate's optimizer wrapper checks it too; a sharded run's has none)
                if self.training.max_grad_norm:
                    accelerator.clip_grad_norm_(self.params, self.training.max_grad_norm)
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
        self.state.batches_in_epoch += 1
        window = self.window
        window.loss += loss.detach().float()
        window.micro_batches += 1
        samples, tokens = self.task.batch_counts(batch)
        window.samples += samples * accelerator.num_processes
        window.tokens += tokens * accelerator.num_processes
        self.step_samples += samples * accelerator.num_processes
        self.step_tokens += tokens * accelerator.num_processes

    def log_window(self) -> dict[str, Any] | None:
        """At a logging step: the mean loss over the window (all processes), throughput, data wait."""
        state, window, training = self.state, self.window, self.training
        if state.step % training.log_every and state.step != self.total_steps:
            return None
        mean_loss = self.accelerator.reduce(window.loss / window.micro_batches, "mean").item()
        elapsed = max(time.perf_counter() - window.start, 1e-9)
        record = {
            "kind": "train",
            "step": state.step,
            "epoch": round(state.epoch + state.batches_in_epoch / self.batches_per_epoch, 4),
            "loss": mean_loss,
            "lr": self.scheduler.get_last_lr()[0],
            "samples_per_second": window.samples / elapsed,
            "data_wait_fraction": round(window.wait / elapsed, 4),
            **({"tokens_per_second": window.tokens / elapsed} if window.tokens else {}),
        }
        if not math.isfinite(mean_loss):
            raise RunFailure(f"the loss became {mean_loss} at step {state.step}; lower training.learning_rate")
        if self.main:
            self.metrics_log.append(record)
            for callback in self.callbacks:
                callback.on_log(record)
        window.reset()
        return record

    def optimizer_step_done(self, stop_voted: StopVote) -> None:
        """Book-keeping after an optimizer step: schedule, counts, log, periodic eval, checkpoints, stop."""
        state, training = self.state, self.training
        self.scheduler.step()
        state.step += 1
        state.samples += self.step_samples
        state.tokens += self.step_tokens
        self.step_samples = self.step_tokens = 0
        record = self.log_window()
        self.reporter.step(state.step, record)
        if training.eval_every and state.step % training.eval_every == 0 and state.step < self.total_steps:
            self.evaluate_periodically()
        if training.checkpoint_every and state.step % training.checkpoint_every == 0:
            self.checkpoint()
        if stop_voted():
            self.reporter.stop()
            raise Interrupted(self.checkpoint(), signum=stop_voted.stop.signum)

    def epoch(self, stop_voted: StopVote, accumulate: Any) -> bool:
        """One (possibly resumed) pass over the data, or what is left of it; True when it ended."""
        state = self.state
        if state.batches_in_epoch >= self.batches_per_epoch:  # a checkpoint taken at an epoch's very end
            state.epoch, state.batches_in_epoch = state.epoch + 1, 0
        loader = self.loader
        epoch_loader = self.accelerator.skip_first_batches(loader, state.batches_in_epoch) if state.batches_in_epoch else loader
        epoch_loader.set_epoch(state.epoch)  # Accelerate's own bookkeeping
        # and ours directly: when resuming several processes, the loader that skips the batches already
        # seen nests our sampler too deep for Accelerate's set_epoch, which would replay epoch 0's order
        self.sampler.set_epoch(state.epoch)
        self.reporter.new_epoch(state.epoch, math.ceil(state.batches_in_epoch / self.training.gradient_accumulation))
        fetch_start = time.perf_counter()
        ended = False
        for batch in epoch_loader:
            self.window.wait += time.perf_counter() - fetch_start
            self.micro_batch(batch, accumulate)
            if state.batches_in_epoch >= self.batches_per_epoch:  # the epoch's last batch: a checkpoint of this
                state.epoch, state.batches_in_epoch, ended = state.epoch + 1, 0, True  # step starts the next epoch
            if self.accelerator.sync_gradients:
                self.optimizer_step_done(stop_voted)
                if state.step >= self.total_steps:
                    break
            fetch_start = time.perf_counter()
        return ended

    def train(self) -> None:
        state, training = self.state, self.training
        self.model.train()
        self.reporter.start(self.total_steps, self.steps_per_epoch, state.step)
        self.window = _Window(self.accelerator.device)
        self.step_samples = self.step_tokens = 0
        self.started = time.perf_counter() - state.train_seconds
        # Without accumulation every micro-batch is an optimizer step: Accelerate's accumulate() context
        # (no_sync bookkeeping, about 2% of a small model's step) has nothing to do.
        accumulate = (lambda: self.accelerator.accumulate(self.model)) if training.gradient_accumulation > 1 else contextlib.nullcontext
        with StopFlag() as stop:
            stop_voted = StopVote(stop, self.accelerator)
            while state.step < self.total_steps:
                if self.epoch(stop_voted, accumulate) and not training.checkpoint_every and state.step < self.total_steps:
                    self.checkpoint()  # every epoch's end, unless the recipe checkpoints by steps
        self.reporter.stop()

    # -- the end -------------------------------------------------------------------------------
    def finish(self) -> FitResult:
        """The final checkpoint and evaluation."""
        state = self.state
        if self.saved_step != state.step:  # unless the last step was just checkpointed
            self.checkpoint()
        after = self.evaluate("after")
        if after is not None:
            self.reporter.evaluation("eval after training", after.metrics, state.eval_before)
            if self.main:
                self.metrics_log.append({"step": state.step, "kind": "eval_after", **after.metrics})
                self.metrics_log.samples("eval_after", state.step, after)
        return FitResult(model=self.whole_model(), steps=state.step, epochs=state.epoch, samples=state.samples,
                         tokens=state.tokens, train_seconds=state.train_seconds, eval_before=state.eval_before,
                         eval_after=after, freeze_report=self.freeze_report)

    def whole_model(self) -> torch.nn.Module | None:
        """The trained model to save: one whose weights are sharded (FSDP, DeepSpeed ZeRO-3) is gathered
        from every process into an unsharded copy on the main process (None on the others)."""
        if self.sharded:
            state = gather_full_state(self.model)
        elif self.partitioned:
            state = self.accelerator.get_state_dict(self.model)  # ZeRO-3: DeepSpeed gathers every partition
        else:
            return self.model
        if not self.main:
            return None
        base = self.task.build_model()  # as set_up built it, freeze plan (and so any LoRA adapter) included
        plain, _ = apply_freeze_plan(base, self.recipe, self.task.anatomy(base))
        return load_whole(plain, state)

    def run(self) -> FitResult:
        self.set_up()
        self.resume_state()
        self.evaluate_before()
        self.train()
        return self.finish()


def train(**kwargs: Any) -> FitResult:
    """Run the common loop (see :class:`CommonLoop` for the arguments)."""
    return CommonLoop(**kwargs).run()
