"""Every hook a plugin can implement: the plugin author's reference.

A plugin is a module registered under the ``ftrecipe`` entry-point group::

    # pyproject.toml of your package
    [project.entry-points.ftrecipe]
    my-plugin = "my_package.ftrecipe_plugin"

The module implements any of the hooks below with ``@hookimpl``. Each hook takes no arguments and
returns one record or a list of records; the registry collects them, checks that no two plugins claim
the same name, and reports a plugin that fails to import, raises or declares a record wrongly without
taking the command line down. Everything a plugin uses comes from :mod:`ftrecipe.plugin`; the
built-in plugins under ``plugins/`` register through exactly this mechanism and that module. The
guide, ``docs/plugins.md``, builds a complete plugin on both training paths.

Keep the plugin module light: import torch and other heavy libraries only inside the code the
records reference (``"module:attribute"`` strings), never at the top of the registration module,
so that ``ftrecipe validate`` stays fast.
"""

from __future__ import annotations

import pluggy

from ftrecipe.records import Augmentation, Callback, DatasetFormat, Metric, Modality

PROJECT = "ftrecipe"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def ftrecipe_modalities() -> Modality | list[Modality]:
    """Contribute modalities: kinds of model ftrecipe can fine-tune.

    A modality brings its own ``model`` section (a subclass of ``ModelSection`` whose ``modality``
    field is a ``Literal`` of its name), and the dotted path of a ``ModalityTask`` subclass that
    builds the model, the data pipeline, the loss and the evaluation for the common runner. A task
    that must keep its own inner loop (a library's trainer) sets ``owns_loop = True``, implements
    ``fit`` and reports through the ``TrainSession`` it is handed.

    A recipe never accepts a key that nothing reads: ``sections`` extends shared sections with the
    modality's own keys (``{"evaluation": MyEvaluation}``, a subclass of ``EvaluationSection``), and
    ``ignores`` lists the shared keys the task does not read, with the reason a user is shown when a
    recipe writes one. ``strategies`` lists the ``hardware.strategy`` values the modality has been
    run with (default ``("ddp",)``); ``validate`` refuses the others. ``run_checks`` are checks of this
    machine that ``run`` makes before importing torch (``pretrained_check()``: the base model is here).

    Example::

        from typing import Literal
        from ftrecipe.plugin import Modality, ModelSection, hookimpl, pretrained_check

        class EchoModel(ModelSection):
            modality: Literal["echo"] = "echo"
            width: int = 16
            \"\"\"Hidden width of the toy network.\"\"\"

        @hookimpl
        def ftrecipe_modalities():
            return Modality(
                name="echo",
                section=EchoModel,
                task="my_package.echo_task:EchoTask",
                description="A toy regression model.",
                default_metrics=("mse",),
                starter_recipe="model:\\n  modality: echo\\n  base: scratch\\n...",
                ignores={"head": "the output has the input's size"},
                strategies=("ddp", "fsdp"),  # after a two-process test of each
                run_checks=(pretrained_check(),),
            )
    """


@hookspec
def ftrecipe_dataset_formats() -> DatasetFormat | list[DatasetFormat]:
    """Contribute dataset formats: ways to read examples (``data.format`` in a recipe).

    The format's section subclasses ``DataSection`` with ``format`` a ``Literal`` of its name and
    adds its own options. ``reader`` names a function ``read(section, *, base_dir, seed, smoke) ->
    DatasetSplits`` returning rows (dicts) in the canonical columns the target modality documents. A
    format name needs to be unique only among the modalities it serves, so every modality can have
    its own ``synthetic`` format. The shared chores are helpers of ``ftrecipe.plugin``:
    ``source_paths`` (paths with the recipe key to blame), ``read_rows`` (JSON Lines, JSON, CSV,
    TSV, Parquet with located bad lines, skipped or fatal per ``data.on_error``) and
    ``make_splits`` (hold-out, ``limit``, smoke caps, the data report). Raise
    ``RecipeRuntimeError`` with the recipe key to blame, so the user sees ``recipe.yaml:line:col``.
    ``ignores`` lists the shared ``data`` keys the reader does not read; ``required_paths`` the keys
    naming files that must exist (``run`` checks them before importing torch).

    Example::

        from typing import Literal
        from ftrecipe.plugin import DatasetFormat, DataSection, hookimpl

        class TsvSection(DataSection):
            format: Literal["tsv"] = "tsv"
            delimiter: str = "\\t"

        @hookimpl
        def ftrecipe_dataset_formats():
            return DatasetFormat(
                name="tsv",
                modalities=("causal-lm",),
                section=TsvSection,
                reader="my_package.tsv:read",
                description="Tab-separated prompt/completion pairs.",
                required_paths=("train", "eval"),
            )
    """


@hookspec
def ftrecipe_augmentations() -> Augmentation | list[Augmentation]:
    """Contribute augmentations: items of ``data.augment``, applied on the fly with a probability.

    The section subclasses ``AugmentationSection`` with ``name`` a ``Literal`` and the step's
    parameters as fields (the one specification of them: validated, documented in the schema).
    ``apply`` names the function the modality calls; its signature is the modality's (audio
    modalities call ``apply(wave, sample_rate, rng, **params) -> wave`` with a generator seeded per
    (seed, epoch, example, step), so a resumed run hears the same audio).

    Example::

        from typing import Literal
        from ftrecipe.plugin import Augmentation, AugmentationSection, hookimpl

        class ClipSection(AugmentationSection):
            name: Literal["clip"] = "clip"
            level: float = 0.5
            \"\"\"Absolute amplitude the wave is clipped at.\"\"\"

        @hookimpl
        def ftrecipe_augmentations():
            return Augmentation(
                name="clip",
                modalities=("whisper",),
                section=ClipSection,
                apply="my_package.audio:clip",   # def clip(wave, sr, rng, level): ...
                description="Hard clipping, like an overdriven line.",
            )
    """


@hookspec
def ftrecipe_metrics() -> Metric | list[Metric]:
    """Contribute evaluation metrics: items of ``evaluation.metrics``.

    ``load`` names a zero-argument function returning an ``evaluate.EvaluationModule`` that works
    offline (ship the module with your package; ``evaluate.load("name")`` would fetch from the hub).
    The modality decides what it feeds the metric (predictions and references).

    Example::

        from ftrecipe.plugin import Metric, hookimpl

        @hookimpl
        def ftrecipe_metrics():
            return Metric(
                name="bleu-lite",
                modalities=("causal-lm",),
                load="my_package.metrics:load_bleu_lite",
                higher_is_better=True,
                description="Unigram BLEU without brevity penalty.",
            )
    """


@hookspec
def ftrecipe_callbacks() -> Callback | list[Callback]:
    """Contribute runner callbacks a recipe switches on by name (``callbacks: [name]``).

    ``factory`` names a subclass of ``RunCallback``: it is built once per run on the main process
    and told about logged steps, evaluations and checkpoints (for example to forward metrics to an
    experiment tracker).

    Example::

        from ftrecipe.plugin import Callback, hookimpl

        @hookimpl
        def ftrecipe_callbacks():
            return Callback(
                name="csv-log",
                factory="my_package.csvlog:CsvLogger",
                description="Append every logged step to metrics.csv.",
            )
    """
