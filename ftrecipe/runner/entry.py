"""`ftrecipe run`: from a validated recipe to a finished, documented run.

Order matters for the user's time and data: the output directory is checked before anything is
written, data is read before a large model is loaded, and every failure becomes a clear message
(exit 2 for a mistake in the recipe or its data, 1 for a runtime failure) instead of a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from ftrecipe.errors import RecipeRuntimeError, RunFailure
from ftrecipe.records import resolve
from ftrecipe.registry import get_registry
from ftrecipe.runner import launch
from ftrecipe.runner.outputs import (
    METRICS_FILE,
    RESOLVED_FILE,
    RUN_FILE,
    SUMMARY_FILE,
    MetricsLog,
    model_card,
    plot_loss_curve,
    resolved_yaml,
    run_info,
    write_atomic,
    write_json,
)
from ftrecipe.sections import RecipeBase
from ftrecipe.validation import ValidationResult

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

OOM_ADVICE = """the device ran out of memory. Ways out, cheapest first:
  - a smaller training.batch_size with a larger training.gradient_accumulation (same effective batch)
  - training.gradient_checkpointing: true (about 40% less activation memory, ~20% slower)
  - a LoRA freeze plan (freeze.strategy: lora), or QLoRA (strategy: qlora) for a 4-bit base
  - shorter sequences (data.max_length) or hardware.precision: bf16-mixed
  - more devices (hardware.devices) with hardware.strategy: fsdp or deepspeed"""


def output_directory(recipe: RecipeBase, args: argparse.Namespace) -> Path:
    if args.output:
        return Path(args.output)
    base = Path(recipe.output.dir or f"runs/{recipe.name}")
    return base.with_name(base.name + "-smoke") if args.smoke else base


def check_output_directory(directory: Path, resume: bool) -> None:
    """Never overwrite what a person has: an existing run continues only with --resume."""
    if not directory.exists():
        return
    if not directory.is_dir():
        raise RunFailure(f"output path {directory} exists and is not a directory")
    contents = [p for p in directory.iterdir() if not p.name.startswith(".")]
    if not contents:
        return
    if (directory / RUN_FILE).exists():
        if not resume:
            raise RunFailure(
                f"{directory} already holds a run; pass --resume to continue it, or choose another --output"
            )
        return
    raise RunFailure(f"{directory} is not empty and holds no ftrecipe run; choose another --output")


def precision_of(recipe: RecipeBase) -> tuple[bool, str]:
    """(run on CPU, Accelerate mixed-precision mode)."""
    import torch

    hardware = recipe.hardware
    cuda = hardware.accelerator in ("auto", "cuda") and torch.cuda.is_available()
    mps = hardware.accelerator in ("auto", "mps") and not cuda and torch.backends.mps.is_available()
    if hardware.accelerator == "cuda" and not cuda:
        raise RunFailure("hardware.accelerator is cuda but no CUDA device is available (use --set hardware.accelerator=cpu)")
    cpu = not cuda and not mps
    precision = hardware.precision
    if precision == "auto":
        precision = "bf16-mixed" if cuda and torch.cuda.is_bf16_supported() else "fp32"
    return cpu, {"fp32": "no", "bf16-mixed": "bf16", "fp16-mixed": "fp16"}[precision]


def build_accelerator(recipe: RecipeBase) -> Any:
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration

    cpu, mixed_precision = precision_of(recipe)
    kwargs: dict[str, Any] = {}
    if os.environ.get("ACCELERATE_USE_FSDP") == "true":
        from accelerate import FullyShardedDataParallelPlugin

        kwargs["fsdp_plugin"] = FullyShardedDataParallelPlugin()
    if os.environ.get("ACCELERATE_USE_DEEPSPEED") == "true":
        from accelerate import DeepSpeedPlugin

        kwargs["deepspeed_plugin"] = DeepSpeedPlugin(zero_stage=recipe.hardware.zero_stage)
    return Accelerator(
        cpu=cpu,
        mixed_precision=mixed_precision,
        gradient_accumulation_steps=recipe.training.gradient_accumulation,
        # pinned host batches (the loader pins them on CUDA) copy to the device while the step runs
        dataloader_config=DataLoaderConfiguration(even_batches=True, non_blocking=not cpu),
        step_scheduler_with_optimizer=False,
        **kwargs,
    )


def _smoke_recipe(recipe: RecipeBase) -> RecipeBase:
    """Two optimizer steps on a few examples: the whole pipeline, in seconds."""
    smoke = recipe.model_copy(deep=True)
    smoke.training.max_steps = 2
    smoke.training.gradient_accumulation = 1
    smoke.training.batch_size = min(smoke.training.batch_size, 2)
    smoke.training.log_every = 1
    smoke.training.eval_every = None
    smoke.training.checkpoint_every = None
    smoke.evaluation.max_examples = min(smoke.evaluation.max_examples or 4, 4)
    smoke.evaluation.generation.max_new_tokens = min(smoke.evaluation.generation.max_new_tokens, 16)
    # wherever it is run (a laptop, CI), on what is there: one process, the local device
    smoke.hardware.devices = smoke.hardware.nodes = 1
    import torch

    if not torch.cuda.is_available():
        smoke.hardware.accelerator, smoke.hardware.precision = "cpu", "fp32"
        if smoke.training.optimizer == "adamw-8bit":
            smoke.training.optimizer = "adamw"
    return smoke


def run_recipe(result: ValidationResult, args: argparse.Namespace) -> int:
    """Run a validated recipe; returns the process exit code."""
    recipe = result.recipe
    assert recipe is not None
    if args.smoke:
        recipe = _smoke_recipe(recipe)
    hardware = recipe.hardware
    if (hardware.devices > 1 or hardware.nodes > 1) and not launch.already_launched():
        if hardware.nodes > 1:
            print(launch.multinode_instructions(hardware, args.argv), file=sys.stderr)
            return EXIT_USAGE
        return launch.relaunch(hardware, args.argv)
    try:
        return _run(result, recipe, args)
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
        if args.debug:
            raise
        print(f"ftrecipe run: {type(error).__name__}: {error}\n(run again with --debug for the traceback)", file=sys.stderr)
        return EXIT_FAILURE


def _fit(task: Any, data: Any, accelerator: Any, output_dir: Path, reporter: Any, metrics_log: Any, callbacks: list, args: argparse.Namespace) -> Any:
    """A task that owns its inner loop trains itself and reports through a TrainSession."""
    from ftrecipe.freeze import FreezeReport
    from ftrecipe.runner.checkpoint import LoopState
    from ftrecipe.runner.loop import LoopResult
    from ftrecipe.runner.session import TrainSession

    session = TrainSession(task=task, output_dir=output_dir, reporter=reporter, metrics_log=metrics_log,
                           callbacks=callbacks, resume=args.resume, max_steps=args.max_steps)
    try:
        fitted = task.fit(session)
    finally:
        session.stop()
    state = LoopState(step=fitted.steps, epoch=fitted.epochs, samples=fitted.samples,
                      train_seconds=session.train_seconds, eval_before=session.eval_before)
    freeze = fitted.freeze_report or FreezeReport(task.recipe.freeze.strategy, 0, 0)
    return LoopResult(state, session.eval_before, session.eval_after, freeze, data, fitted.model, accelerator.num_processes)


def _run(result: ValidationResult, recipe: RecipeBase, args: argparse.Namespace) -> int:
    from accelerate.utils import set_seed

    if not args.debug:  # ftrecipe reports progress itself; keep the libraries' chatter for --debug
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        for library in ("accelerate", "bitsandbytes"):  # bitsandbytes: "optional CPU kernel not installed"
            logging.getLogger(library).setLevel(logging.ERROR)

    from ftrecipe.runner.loop import Interrupted, train
    from ftrecipe.runner.progress import Reporter
    from ftrecipe.task import TaskContext

    if args.max_steps is not None:
        if args.max_steps < 1:
            raise RunFailure("--max-steps must be at least 1")
    output_dir = output_directory(recipe, args)
    check_output_directory(output_dir, args.resume)
    accelerator = build_accelerator(recipe)
    accelerator.wait_for_everyone()  # everyone has checked the directory before anything is written
    main = accelerator.is_main_process
    reporter = Reporter(enabled=main, quiet=args.quiet)
    wanted = {"fsdp": "FSDP", "deepspeed": "DEEPSPEED"}.get(recipe.hardware.strategy)
    if wanted and accelerator.num_processes > 1 and wanted not in str(accelerator.distributed_type):
        reporter.warn(f"hardware.strategy {recipe.hardware.strategy} is not available here ({accelerator.distributed_type}); running plain data parallel")
    if main:
        output_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(output_dir / RESOLVED_FILE, resolved_yaml(recipe))
    set_seed(recipe.training.seed)

    registry = get_registry()
    modality = registry.modalities[recipe.model.modality]
    task_class = resolve(modality.task)
    ctx = TaskContext(
        recipe=recipe,
        registry=registry,
        base_dir=result.base_dir,
        output_dir=output_dir,
        smoke=args.smoke,
        is_main_process=main,
        log=reporter.info,
        warn=reporter.warn,
        save_augmented=args.save_augmented,
    )
    task = task_class(ctx)
    reporter.info(f"{recipe.name}: {modality.name} from {recipe.model.base} on {accelerator.device} x{accelerator.num_processes}")
    data = task.build_data()
    if len(data.train) == 0:
        raise RunFailure("no training examples left after loading (see the data report)")
    for key, value in data.report.items():
        if not isinstance(value, (dict, list)):
            reporter.info(f"data {key}: {value}")
    for warning in data.report.get("warnings", []):
        reporter.warn(warning)
    if main:
        plugin_dists = sorted({p.distribution for p in registry.plugins if p.name == modality.plugin and not p.builtin})
        info = run_info(
            recipe=recipe,
            recipe_path=Path(result.source).resolve(),
            accelerator=accelerator,
            data_files=data.files,
            plugin_distributions=plugin_dists,
            argv=args.argv,
        )
        write_json(output_dir / RUN_FILE, info)
    callbacks = [resolve(registry.callbacks[name].factory)(output_dir, recipe) for name in getattr(recipe, "callbacks", [])] if main else []

    metrics_log = MetricsLog(output_dir / METRICS_FILE)
    started = time.perf_counter()
    try:
        if task.owns_loop:
            outcome = _fit(task, data, accelerator, output_dir, reporter, metrics_log, callbacks, args)
        else:
            outcome = train(
                task=task,
                accelerator=accelerator,
                output_dir=output_dir,
                reporter=reporter,
                metrics_log=metrics_log,
                data=data,
                resume=args.resume,
                max_steps=args.max_steps,
                callbacks=callbacks,
            )
    except Interrupted as stop:
        if main:
            command = " ".join(["ftrecipe", *[a for a in args.argv if a != "--resume"], "--resume"])
            print(f"\ninterrupted: checkpoint saved at {stop.checkpoint}\nresume with: {command}", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED

    model_dir = output_dir / "model"
    if main:
        unwrapped = accelerator.unwrap_model(outcome.model)
        task.save(unwrapped, model_dir)
    accelerator.wait_for_everyone()
    summary: dict[str, Any] = {
        "recipe": recipe.name,
        "modality": recipe.model.modality,
        "eval_before": outcome.eval_before,
        "eval_after": outcome.eval_after.metrics if outcome.eval_after else None,
        "steps": outcome.state.step,
        "epochs_completed": outcome.state.epoch,
        "samples": outcome.state.samples,
        "tokens": outcome.state.tokens,
        "train_seconds": round(outcome.state.train_seconds or (time.perf_counter() - started), 3),
        "world_size": outcome.world_size,
        "model_path": str(model_dir),
        "freeze": outcome.freeze_report.as_dict(),
        "data": data.report,
        "smoke": bool(args.smoke),
    }
    if main:
        write_json(output_dir / SUMMARY_FILE, summary)
        write_atomic(
            model_dir / "README.md",
            model_card(
                recipe=recipe,
                summary=summary,
                freeze_report=summary["freeze"],
                data_report=data.report,
                notes=list(task.model_card_notes()),
            ),
        )
        plot_loss_curve(metrics_log.records(), output_dir / "loss_curve.png")
        for callback in callbacks:
            callback.on_end(summary)
        reporter.summary(summary)
    return EXIT_OK
