"""`ftrecipe run`: from a validated recipe to a finished, documented run.

Order matters for the user's time and data: the output directory is checked before anything is
written, data is read before a large model is loaded, and every failure becomes a clear message
(exit 2 for a mistake in the recipe or its data, 1 for a runtime failure) instead of a traceback.
The steps of :class:`Run`: prepare (output directory, accelerator, resolved recipe), data (the task
and its data report), record (run.json), train (the common loop or the task's own), finish (model,
summary, model card, loss curve, the trackers' last words).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftrecipe.errors import RecipeRuntimeError, RunFailure
from ftrecipe.hub import remote_code_summary
from ftrecipe.libraries import LIBRARY_LOG, adopt_library_loggers, collector, printed_by
from ftrecipe.records import resolve
from ftrecipe.registry import get_registry
from ftrecipe.runner import launch
from ftrecipe.runner.outputs import (
    METRICS_FILE,
    RESOLVED_FILE,
    RUN_FILE,
    SUMMARY_FILE,
    MetricsLog,
    card_metadata,
    model_card,
    plot_loss_curve,
    resolved_yaml,
    run_info,
    write_atomic,
    write_json,
)
from ftrecipe.runner import preflight
from ftrecipe.runner.preflight import check_hardware, check_output_directory
from ftrecipe.sections import BITSANDBYTES_OPTIMIZERS, RecipeBase
from ftrecipe.task import FitResult, ModalityTask, TaskContext
from ftrecipe.validation import ValidationResult, resolved_data

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

OOM_ADVICE = """the device ran out of memory. Ways out, cheapest first:
  - a smaller training.batch_size with a larger training.gradient_accumulation (same effective batch)
  - training.gradient_checkpointing: true (about 40% less activation memory, ~20% slower)
  - a LoRA freeze plan (freeze.strategy: lora), or QLoRA (strategy: qlora) for a 4-bit base
  - shorter sequences (data.max_length) or hardware.precision: bf16-mixed
  - more devices (hardware.devices) with hardware.strategy: fsdp or deepspeed"""


@dataclass
class RunOptions:
    """How `ftrecipe run` was asked to run a recipe (its command-line options)."""

    output: str | None = None
    """Output directory instead of the recipe's ``output.dir``."""
    max_steps: int | None = None
    resume: bool = False
    smoke: bool = False
    save_augmented: int = 0
    quiet: bool = False
    debug: bool = False
    argv: Sequence[str] = field(default_factory=list)
    """The command line after ``ftrecipe`` (for the resume hint and the per-device relaunch)."""


def output_directory(recipe: RecipeBase, options: RunOptions) -> Path:
    return preflight.output_directory(recipe, options.output, options.smoke)


def device_type_of(recipe: RecipeBase) -> str:
    """``cuda``, ``mps`` or ``cpu``: where ``hardware.accelerator`` puts the run on this machine."""
    import torch

    accelerator = recipe.hardware.accelerator
    cuda = accelerator in ("auto", "cuda") and torch.cuda.is_available()
    if accelerator == "cuda" and not cuda:
        raise RunFailure("hardware.accelerator is cuda but no CUDA device is available (use --set hardware.accelerator=cpu)")
    if cuda:
        return "cuda"
    return "mps" if accelerator in ("auto", "mps") and torch.backends.mps.is_available() else "cpu"


def precision_of(recipe: RecipeBase) -> tuple[bool, str]:
    """(run on CPU, Accelerate mixed-precision mode)."""
    import torch

    device = device_type_of(recipe)
    precision = recipe.hardware.precision
    if precision == "auto":
        precision = "bf16-mixed" if device == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    return device == "cpu", {"fp32": "no", "bf16-mixed": "bf16", "fp16-mixed": "fp16"}[precision]


def deepspeed_options(recipe: RecipeBase, cpu: bool) -> dict[str, Any]:
    """Accelerate's arguments for ``strategy: deepspeed``: ZeRO at the recipe's stage, clipping inside
    DeepSpeed's step, ZeRO-3's save gathered; on CPU processes, DeepSpeed's CPU accelerator over gloo."""
    from accelerate import DeepSpeedPlugin

    os.environ.update(launch.strategy_environment(recipe.hardware, cpu=cpu))
    options: dict[str, Any] = {}
    if cpu:  # (without a backend named, Accelerate would take each CPU process for a world of one)
        from accelerate.utils import InitProcessGroupKwargs

        options["kwargs_handlers"] = [InitProcessGroupKwargs(backend="gloo")]
        skip_shared_memory_kernel()
    training = recipe.training
    options["deepspeed_plugin"] = DeepSpeedPlugin(
        zero_stage=recipe.hardware.zero_stage,
        gradient_accumulation_steps=training.gradient_accumulation,
        gradient_clipping=training.max_grad_norm or 0.0,  # DeepSpeed clips inside its step (0: off)
        zero3_save_16bit_model=True,  # ZeRO-3's save gathers every partition (in the weights' own dtype)
        zero3_init_flag=False,  # (and Transformers is told, in build_accelerator)
    )
    return options


def skip_shared_memory_kernel() -> None:
    """DeepSpeed's CPU backend compiles a shared-memory all-reduce with the machine's C++ compiler as it
    starts (20 to 60 s on a machine that has not built it yet, every time the extension cache is cold or
    shared between environments); only tensor-parallel inference calls it (``inference_all_reduce``), never
    ZeRO training, whose collectives go through gloo. DeepSpeed skips a kernel its table of compatible ops
    marks off (a table it keeps for edits), so it is marked off for ftrecipe's CPU runs."""
    import deepspeed.ops

    deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False


def build_accelerator(recipe: RecipeBase) -> Any:
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration

    cpu, mixed_precision = precision_of(recipe)
    deepspeed = recipe.hardware.strategy == "deepspeed"
    # The recipe decides the strategy, however the processes were started (ftrecipe's relaunch, a
    # hand-started torchrun or `accelerate launch`): FSDP is applied by the loop (runner/sharding.py),
    # DeepSpeed by Accelerate.
    os.environ.pop("ACCELERATE_USE_FSDP", None)  # an `accelerate launch --use_fsdp` would wrap the model twice
    if not deepspeed:  # nor does `accelerate launch --use_deepspeed` decide it
        os.environ.pop("ACCELERATE_USE_DEEPSPEED", None)
    kwargs = deepspeed_options(recipe, cpu) if deepspeed else {}
    with printed_by("deepspeed"):  # (DeepSpeed prints as it builds its communication kernel)
        accelerator = Accelerator(
            cpu=cpu and not deepspeed,  # (Accelerate's cpu flag means MULTI_CPU; DS_ACCELERATOR picks the CPU)
            mixed_precision=mixed_precision,
            gradient_accumulation_steps=recipe.training.gradient_accumulation,
            # pinned host batches (the loader pins them on CUDA) copy to the device while the step runs
            dataloader_config=DataLoaderConfiguration(even_batches=True, non_blocking=not cpu),
            step_scheduler_with_optimizer=False,
            **kwargs,
        )
    if deepspeed:
        # Each process builds the whole model and prepare() partitions it (as the FSDP path does): the
        # freeze plan and the task see real parameters, not the empty placeholders Transformers would
        # build under zero.Init because Accelerate registered its ZeRO-3 config with it.
        from transformers.integrations import unset_hf_deepspeed_config

        unset_hf_deepspeed_config()
        if collector() is not None:
            adopt_library_loggers()  # DeepSpeed's logger, made as it was imported just now
    return accelerator


def smoke_recipe(recipe: RecipeBase) -> RecipeBase:
    """Two optimizer steps on a few examples, one process on the local device: the whole pipeline, in
    seconds. (The tasks shrink what is theirs, e.g. generation lengths, from ``TaskContext.smoke``.)"""
    smoke = recipe.model_copy(deep=True)
    smoke.training.max_steps = 2
    smoke.training.gradient_accumulation = 1
    smoke.training.batch_size = min(smoke.training.batch_size, 2)
    smoke.training.log_every = 1
    smoke.training.eval_every = None
    smoke.training.checkpoint_every = None
    smoke.evaluation.max_examples = min(smoke.evaluation.max_examples or 4, 4)
    smoke.hardware.devices = smoke.hardware.nodes = 1
    import torch

    if not torch.cuda.is_available():
        smoke.hardware.accelerator, smoke.hardware.precision, smoke.hardware.strategy = "cpu", "fp32", "ddp"
        if smoke.training.optimizer in BITSANDBYTES_OPTIMIZERS:
            smoke.training.optimizer = "adamw"
    return smoke


def quiet_libraries() -> None:
    """ftrecipe reports progress itself: the libraries' progress bars are off, and what they write about
    themselves goes to the collector (``libraries.log``) rather than the console; all of it for --debug."""
    import transformers

    transformers.utils.logging.disable_progress_bar()
    adopt_library_loggers()


def run_recipe(result: ValidationResult, options: RunOptions) -> int:
    """Run a validated recipe; returns the process exit code."""
    recipe = result.recipe
    assert recipe is not None
    try:
        if options.smoke:
            recipe = smoke_recipe(recipe)
        if options.max_steps is not None and options.max_steps < 1:
            raise RunFailure("--max-steps must be at least 1")
        task_class: type[ModalityTask] = resolve(get_registry().modalities[recipe.model.modality].task)
        hardware = recipe.hardware
        check_hardware(recipe, device_type_of(recipe))  # before processes are started or anything is read
        if launch.already_launched():  # by ftrecipe, or by hand: the recipe's devices must be what was started
            launch.check_world_size(hardware)
        # FSDP and DeepSpeed run in launched processes, even a single one (one shard: the same code path)
        several = hardware.devices > 1 or hardware.nodes > 1 or hardware.strategy != "ddp"
        if several and not task_class.launches_processes and not launch.already_launched():
            if hardware.nodes > 1:
                print(launch.multinode_instructions(hardware, options.argv), file=sys.stderr)
                return EXIT_USAGE
            return launch.relaunch(hardware, options.argv)
        return Run(result, recipe, task_class, options).execute()
    except RecipeRuntimeError as error:
        if int(os.environ.get("LOCAL_RANK", "0")) == 0:  # the processes of a machine read the same files: once each
            print(result.diagnostic(error.path, error.message).text(), file=sys.stderr)
        return EXIT_USAGE
    except RunFailure as error:
        print(f"ftrecipe run: {error}", file=sys.stderr)
        return EXIT_FAILURE
    except Exception as error:  # noqa: BLE001 - the CLI's last line of defence
        import torch

        if isinstance(error, torch.OutOfMemoryError):
            print(f"ftrecipe run: {OOM_ADVICE}", file=sys.stderr)
            return EXIT_FAILURE
        if options.debug:
            raise
        print(f"ftrecipe run: {type(error).__name__}: {error}\n(run again with --debug for the traceback)", file=sys.stderr)
        return EXIT_FAILURE


def leave_process_group(wait: bool = True) -> None:
    """Close the process group once every process is done with it, rather than leaving it to
    interpreter exit (where its threads may be torn down mid-flight and C++ prints ``terminate called``)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        if wait:
            dist.barrier()
        dist.destroy_process_group()


class Run:
    """One `ftrecipe run`, as named steps (see the module docstring)."""

    def __init__(self, result: ValidationResult, recipe: RecipeBase, task_class: type[ModalityTask], options: RunOptions) -> None:
        self.result, self.recipe, self.task_class, self.options = result, recipe, task_class, options
        self.registry = get_registry()
        self.modality = self.registry.modalities[recipe.model.modality]

    def execute(self) -> int:
        from ftrecipe.runner.stop import Interrupted

        self.tracking = None
        self.prepare()
        self.build_data()
        try:
            self.record()
            try:
                outcome = self.train()
            except Interrupted as stop:
                self.interrupted(stop)
                if self.tracking is not None:
                    self.tracking.close(stop.exit_code)
                leave_process_group(wait=False)  # every process has saved its part of the checkpoint
                return stop.exit_code
            self.finish(outcome)
        except BaseException:
            if self.tracking is not None:  # the tracker runs are marked failed, not left running
                self.tracking.close(EXIT_FAILURE)
            raise
        leave_process_group()
        return EXIT_OK

    def prepare(self) -> None:
        """Check the output directory, start the accelerator, seed."""
        from accelerate.utils import set_seed

        from ftrecipe.runner.progress import Reporter

        if not self.options.debug:
            quiet_libraries()
        recipe = self.recipe
        self.output_dir = output_directory(recipe, self.options)
        check_output_directory(self.output_dir, self.options.resume)
        self.accelerator = accelerator = build_accelerator(recipe)
        accelerator.wait_for_everyone()  # everyone has checked the directory before anything is written
        self.main = accelerator.is_main_process
        self.reporter = Reporter(enabled=self.main, quiet=self.options.quiet)
        if (libraries := collector()) is not None and self.main:
            libraries.tell(self.reporter.warn)  # what a library did that changes what the user gets
        if recipe.hardware.strategy == "deepspeed" and "DEEPSPEED" not in str(accelerator.distributed_type):
            raise RunFailure(f"hardware.strategy is deepspeed but Accelerate started {accelerator.distributed_type}")
        set_seed(recipe.training.seed)

    def build_data(self) -> None:
        """The task, and its data: read before any large model is loaded."""
        recipe, reporter = self.recipe, self.reporter
        ctx = TaskContext(
            recipe=recipe,
            registry=self.registry,
            base_dir=self.result.base_dir,
            output_dir=self.output_dir,
            smoke=self.options.smoke,
            is_main_process=self.main,
            log=reporter.info,
            warn=reporter.warn,
            save_augmented=self.options.save_augmented,
            device=self.accelerator.device.type,
        )
        self.task = self.task_class(ctx)
        reporter.info(f"{recipe.name}: {self.modality.name} from {recipe.model.base} on "
                      f"{self.accelerator.device} x{self.accelerator.num_processes}")
        model = recipe.model
        if model.trust_remote_code and model.init == "pretrained":  # before the tokenizer or model is loaded
            reporter.warn(f"model.trust_remote_code is true: {remote_code_summary(model.base, model.revision)}")
        self.data = self.task.build_data()
        if len(self.data.train) == 0:
            raise RunFailure("no training examples left after loading (see the data report)")
        for line in self.data.report.log_lines():
            reporter.info(line)
        for warning in self.data.report.warnings:
            reporter.warn(warning)

    def record(self) -> None:
        """The resolved recipe and run.json (versions, hardware, seed, command, data file hashes); the callbacks
        and the experiment trackers (which get the resolved recipe and the data report now)."""
        registry, recipe = self.registry, self.recipe
        if self.main:  # nothing is written before the recipe's data and switches were accepted
            self.output_dir.mkdir(parents=True, exist_ok=True)
            resolved = resolved_data(recipe, self.registry)
            write_atomic(self.output_dir / RESOLVED_FILE, resolved_yaml(resolved))
            plugin_dists = sorted({p.distribution for p in registry.plugins if p.name == self.modality.plugin and not p.builtin})
            info = run_info(
                recipe=recipe,
                recipe_path=Path(self.result.source).resolve(),
                accelerator=self.accelerator,
                data_files=self.data.files,
                plugin_distributions=plugin_dists,
                argv=self.options.argv,
            )
            write_json(self.output_dir / RUN_FILE, info)
            if (libraries := collector()) is not None:
                adopt_library_loggers()  # those the data's libraries brought
                libraries.write_to(self.output_dir / LIBRARY_LOG)
        names = getattr(recipe, "callbacks", [])
        self.callbacks = [resolve(registry.callbacks[name].factory)(self.output_dir, recipe) for name in names] if self.main else []
        self.metrics_log = MetricsLog(self.output_dir / METRICS_FILE)
        if self.main and recipe.tracking.backends:  # only the main process logs to the trackers
            from ftrecipe.runner.tracking import Tracking

            self.tracking = Tracking(recipe, self.output_dir, smoke=self.options.smoke, warn=self.reporter.warn)
            self.tracking.start(resolved, self.data.report.as_dict())
            self.metrics_log.observers.append(self.tracking)
        self.started = time.perf_counter()

    def train(self) -> FitResult:
        """The common loop, or the task's own through a session."""
        common = {"accelerator": self.accelerator, "output_dir": self.output_dir, "reporter": self.reporter,
                  "metrics_log": self.metrics_log, "data": self.data, "resume": self.options.resume,
                  "max_steps": self.options.max_steps, "callbacks": self.callbacks}
        if self.task.owns_loop:
            from ftrecipe.runner.session import RunnerSession

            return RunnerSession(task=self.task, **common).fit()
        from ftrecipe.runner.loop import train

        return train(task=self.task, **common)

    def interrupted(self, stop: Any) -> None:
        if not self.main:
            return
        command = " ".join(["ftrecipe", *[a for a in self.options.argv if a != "--resume"], "--resume"])
        if stop.fresh:
            where = f"checkpoint saved at {stop.checkpoint}"
        elif stop.checkpoint is not None:
            where = f"no checkpoint was written at the stop; resuming continues from {stop.checkpoint}"
        else:
            where = "no checkpoint was written yet; resuming starts over"
        print(f"\ninterrupted: {where}\nresume with: {command}", file=sys.stderr, flush=True)

    def finish(self, outcome: FitResult) -> None:
        """The model in its native format, summary.json (with the final evaluation's report as
        ``eval_report``), the model card and the loss curve."""
        from ftrecipe.freeze import FreezeReport

        recipe, accelerator, output_dir = self.recipe, self.accelerator, self.output_dir
        model_dir = output_dir / "model"
        if self.main:
            self.task.save(accelerator.unwrap_model(outcome.model), model_dir)
        accelerator.wait_for_everyone()
        freeze = outcome.freeze_report or FreezeReport(recipe.freeze.strategy, 0, 0)
        summary: dict[str, Any] = {
            "recipe": recipe.name,
            "modality": recipe.model.modality,
            "eval_before": outcome.eval_before,
            "eval_after": outcome.eval_after.metrics if outcome.eval_after else None,
            # the final evaluation's tables beyond its metrics (EvalResult.report): per group, per task
            "eval_report": (outcome.eval_after.report or None) if outcome.eval_after else None,
            "steps": outcome.steps,
            "epochs_completed": outcome.epochs,
            "samples": outcome.samples,
            "tokens": outcome.tokens,
            "train_seconds": round(outcome.train_seconds or (time.perf_counter() - self.started), 3),
            "world_size": accelerator.num_processes,
            "model_path": str(model_dir),
            "freeze": freeze.as_dict(),
            "data": self.data.report.as_dict(),
            "smoke": bool(self.options.smoke),
        }
        if not self.main:
            return
        write_json(output_dir / SUMMARY_FILE, summary)
        metadata = card_metadata(recipe, self.task.model_card_metadata(), smoke=self.options.smoke)
        write_atomic(
            model_dir / "README.md",
            model_card(recipe=recipe, summary=summary, freeze_report=summary["freeze"], data_report=summary["data"],
                       notes=list(self.task.model_card_notes()), metadata=metadata),
        )
        loss_curve = plot_loss_curve(self.metrics_log.records(), output_dir / "loss_curve.png")
        if self.tracking is not None:
            self.tracking.finish(summary, model_dir, loss_curve)
        for callback in self.callbacks:
            callback.on_end(summary)
        self.reporter.summary(summary)
