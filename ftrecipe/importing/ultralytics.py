"""Ultralytics training arguments (https://github.com/ultralytics/ultralytics): the keys of
``ultralytics/cfg/default.yaml``, as passed to ``model.train(...)`` or written in a ``cfg=`` YAML.

The recipe runs ftrecipe's ``yolo`` modality, which hands the same hyperparameters to Ultralytics'
own trainer; what it fixes itself (deterministic ops, no early stopping, its own plots and
checkpoints) is listed as read or not carried over.
"""

from __future__ import annotations

from typing import Any

from ftrecipe.importing.engine import short
from ftrecipe.importing.table import (
    DEFAULT_DIFFERS,
    NO_EQUIVALENT,
    OTHER_MEANING,
    Context,
    Default,
    Format,
    NotCarried,
    Nothing,
    Row,
    nothing_if,
    same,
)

VERSION = "v8.4.190"
DEFAULT_YAML = f"https://github.com/ultralytics/ultralytics/blob/{VERSION}/ultralytics/cfg/default.yaml"

AUGMENT_DEFAULTS = {"fliplr": 0.5, "flipud": 0.0, "hsv_h": 0.015, "hsv_s": 0.7, "hsv_v": 0.4, "scale": 0.5,
                    "translate": 0.1, "mosaic": 1.0, "mixup": 0.0}
"""Ultralytics' augmentation defaults (default.yaml L115-L127) for the keys the recipe's augment list holds."""
UNSUPPORTED_AUGMENT = ("degrees", "shear", "perspective", "copy_paste", "cutmix", "bgr")
"""Augmentations ftrecipe's YOLO modality keeps off; a config that turns one on is not carried for it."""


def augment_list(source: Any) -> list[dict[str, Any]]:
    """The recipe's ``data.augment`` for the config's augmentation keys (Ultralytics' defaults for the others)."""
    value = {key: float(source.get(key, default)) for key, default in AUGMENT_DEFAULTS.items()}
    steps: list[dict[str, Any]] = []
    if value["fliplr"] or value["flipud"]:
        steps.append({"name": "flip", "p": value["fliplr"], "vertical": value["flipud"]})
    if value["hsv_h"] or value["hsv_s"] or value["hsv_v"]:
        steps.append({"name": "hsv", "hue": value["hsv_h"], "saturation": value["hsv_s"], "value": value["hsv_v"]})
    if value["scale"]:
        steps.append({"name": "scale", "gain": value["scale"]})
    if value["translate"]:
        steps.append({"name": "translate", "fraction": value["translate"]})
    if value["mosaic"]:
        steps.append({"name": "mosaic", "p": value["mosaic"]})
    if value["mixup"]:
        steps.append({"name": "mixup", "p": value["mixup"]})
    return steps


def _augment(value: Any, ctx: Context) -> Any:
    """With the other augmentation keys -> the data.augment list (an empty list is Ultralytics' defaults)."""
    return augment_list(ctx.source)


def _off_augment(value: Any, ctx: Context) -> Any:
    if float(value) == 0.0:
        return Nothing("off, as in ftrecipe's YOLO modality")
    raise NotCarried(NO_EQUIVALENT, "ftrecipe's YOLO augmentations are flip, hsv, scale, translate, mosaic, mixup")


def _data(value: Any, ctx: Context) -> Any:
    """The data YAML; a bare name may be one of Ultralytics' built-in datasets, which a recipe does not look up."""
    if "/" not in str(value):
        ctx.note("data", "Ultralytics also finds its built-in dataset YAMLs by name (and downloads them); a recipe "
                         "reads the file relative to its own folder")
    return value


def _batch(value: Any, ctx: Context) -> Any:
    """A positive integer -> training.batch_size; AutoBatch (-1 or a fraction) is not carried."""
    if isinstance(value, int) and value > 0:
        return value
    raise NotCarried(NO_EQUIVALENT, "AutoBatch; ftrecipe takes a fixed training.batch_size")


def _optimizer(value: Any, ctx: Context) -> Any:
    """SGD -> sgd, AdamW -> adamw; auto is not carried."""
    names = {"sgd": "sgd", "adamw": "adamw"}
    if str(value).lower() in names:
        return names[str(value).lower()]
    if str(value).lower() == "auto":
        raise NotCarried(OTHER_MEANING, AUTO_OPTIMIZER)
    raise NotCarried(NO_EQUIVALENT, f"ftrecipe's YOLO optimizers are sgd and adamw, not {value}")


AUTO_OPTIMIZER = ("Ultralytics' 'auto' picks SGD (lr 0.01) for long runs and AdamW with a learning rate from the class "
                  "count for short ones; the recipe keeps ftrecipe's adamw at learning_rate 0.002 (or write yours)")


def _device(value: Any, ctx: Context) -> Any:
    """A GPU index -> cuda; cpu; mps. Several devices are not carried (one device per YOLO run)."""
    text = str(value).lower()
    if text in ("cpu", "mps"):
        return text
    if text.isdigit() or text in ("cuda", "cuda:0"):
        return "cuda"
    raise NotCarried(NO_EQUIVALENT, "ftrecipe runs a YOLO recipe on one device")


def _amp(value: Any, ctx: Context) -> Any:
    """true -> auto (fp16 on CUDA, fp32 elsewhere, as Ultralytics' AMP); false -> fp32; bf16 -> bf16-mixed."""
    if value is True or value == "fp16":
        return Nothing("hardware.precision auto is fp16-mixed on CUDA and fp32 elsewhere, as Ultralytics' AMP")
    if value is False or value == "fp32":
        return "fp32"
    if value == "bf16":
        return "bf16-mixed"
    raise NotCarried(NO_EQUIVALENT, f"no ftrecipe precision for amp: {value}")


def _freeze(value: Any, ctx: Context) -> Any:
    """N -> the first N rows (model.0 ... model.N-1); a list of rows or module names -> those."""
    if isinstance(value, int):
        names = [f"model.{i}" for i in range(value)]
    elif isinstance(value, list):
        names = [f"model.{item}" if isinstance(item, int) or str(item).isdigit() else str(item) for item in value]
    else:
        raise NotCarried(NO_EQUIVALENT, f"no ftrecipe freeze for {value!r}")
    return {"freeze.strategy": "partial", "freeze.freeze": names}


def _output(value: Any, ctx: Context) -> Any:
    """project/name -> output.dir (Ultralytics' runs/detect and train where one is missing)."""
    project, name = ctx.source.get("project") or "runs/detect", ctx.source.get("name") or "train"
    return f"{project}/{name}"


def _cos_lr(value: Any, ctx: Context) -> Any:
    """true -> cosine, false -> linear."""
    return "cosine" if value else "linear"


def _pretrained(value: Any, ctx: Context) -> Any:
    """true: the weights of model; false -> model.init: scratch."""
    if value is True:
        return Nothing("model.base's weights are loaded")
    if value is False:
        return {"model.init": "scratch"}
    raise NotCarried(OTHER_MEANING, "weights from another file; ftrecipe loads model.base's weights")


def _default_only(default: Any, why: str, otherwise: str) -> Any:
    return nothing_if(default, why, (NO_EQUIVALENT, otherwise))


OTHER_MODES = {
    "predict": {"source": None, "vid_stride": 1, "stream_buffer": False, "visualize": False, "augment": False,
                "agnostic_nms": False, "classes": None, "retina_masks": False, "embed": None, "show": False,
                "save_frames": False, "save_txt": False, "save_conf": False, "save_crop": False, "show_labels": True,
                "show_conf": True, "show_boxes": True, "line_width": None, "dnn": False},
    "val": {"split": "val", "save_json": False},
    "export": {"format": "torchscript", "optimize": False, "dynamic": False, "simplify": True, "opset": None,
               "workspace": None, "nms": None},
    "track": {"tracker": ("tracktrack.yaml", "botsort.yaml")},
}
"""Keys of Ultralytics' other modes with their defaults (default.yaml L52-L91, L138; the tracker's default was
botsort.yaml before v8.4). A copy of default.yaml holds them all; training does not read them."""

VALIDATION = {"conf": None, "iou": 0.7, "max_det": 300}
"""Validation thresholds that Ultralytics' trainer also uses for its validation each epoch (default.yaml L55-L57)."""

OTHER_TASKS = {
    "segment": {"overlap_mask": True, "mask_ratio": 4, "copy_paste_mode": "flip"},
    "classify": {"dropout": 0.0, "auto_augment": "randaugment", "erasing": 0.4},
    "pose": {"pose": 12.0, "kobj": 1.0, "rle": 1.0},
    "obb": {"angle": 1.0},
    "depth": {"dlog": 1.0, "dgrad": 0.5, "dlam": 1.0},
}
"""Settings and loss gains of Ultralytics' other tasks, with their defaults (default.yaml L45-L49, L107-L113,
L130-L132); ftrecipe's YOLO modality detects."""


def _shown(default: Any) -> str:
    if default is None:
        return "empty"
    return " or ".join(short(value) for value in default) if isinstance(default, tuple) else short(default)


def _not_for_training(why: str, default: Any) -> Any:
    """At Ultralytics' default: read (training ignores it); set otherwise: not carried (the recipe only trains)."""
    return nothing_if(default, f"{why} (at its default)", (NO_EQUIVALENT, why))


MODE_ROWS = tuple(Row(key, None, _not_for_training(f"a setting of Ultralytics' {mode} mode, not of training", default),
                      f"a setting of Ultralytics' {mode} mode, not of training: read at its default ({_shown(default)}), else not carried")
                  for mode, keys in OTHER_MODES.items() for key, default in keys.items())
TASK_ROWS = tuple(Row(key, None, _not_for_training(f"a setting of Ultralytics' {task} task; ftrecipe's YOLO modality detects", default),
                      f"a setting of Ultralytics' {task} task (ftrecipe detects): read at its default ({_shown(default)}), else not carried")
                  for task, keys in OTHER_TASKS.items() for key, default in keys.items())
VALIDATION_ROWS = tuple(
    Row(key, None, _default_only(default, "Ultralytics' default, which ftrecipe's validation each epoch keeps",
                                 "ftrecipe's validation each epoch keeps Ultralytics' default"), f"{default} only")
    for key, default in VALIDATION.items())

EMPTY_REQUIRED = {
    "model": "empty, as in Ultralytics' default.yaml: set model: to the weights (e.g. yolo11n.pt) or a model YAML "
             "and import again, or write model.base in the recipe",
    "data": "empty, as in Ultralytics' default.yaml: set data: to the data YAML (e.g. coco8.yaml) and import again, "
            "or write data.yaml in the recipe",
}
"""What a copy of default.yaml leaves for the user to set (the engine lists other empty keys as absent)."""


def _finish(ctx: Context) -> None:
    """Ultralytics' 'auto' optimizer where the config names none; its learning rate only with a named optimizer.
    model and data present but empty (default.yaml as shipped) are reported with what to set."""
    if ctx.source.get("optimizer") is None:
        ctx.drop("optimizer", DEFAULT_DIFFERS, AUTO_OPTIMIZER)
    for key, reason in EMPTY_REQUIRED.items():
        if key in ctx.source and ctx.source[key] in (None, ""):
            ctx.drop(key, NO_EQUIVALENT, reason)


def _named_optimizer(source: Any) -> bool:
    return str(source.get("optimizer", "auto")).lower() != "auto"


ROWS = (
    Row("model", "model.base", same, "weights (.pt, a local file) or a model YAML"),
    Row("task", None, _default_only("detect", "ftrecipe's yolo modality detects", "ftrecipe's yolo modality detects"),
        "detect only"),
    Row("mode", None, _default_only("train", "ftrecipe run trains", "ftrecipe run trains"), "train only"),
    Row("data", "data.yaml", _data, "the data YAML (relative to the recipe)"),
    Row("epochs", "training.epochs", same, "passes over the data"),
    Row("batch", "training.batch_size", _batch, "a fixed batch size"),
    Row("imgsz", "model.image_size", same, "image size"),
    Row("device", "hardware.accelerator", _device, "0 -> cuda, cpu, mps"),
    Row("workers", "hardware.dataloader_workers", same, "data-loading processes"),
    Row("optimizer", "training.optimizer", _optimizer, "SGD -> sgd, AdamW -> adamw; auto is not carried"),
    Row("lr0", "training.learning_rate", same, "initial learning rate"),
    Row("lrf", "training.final_lr_fraction", same, "final learning rate fraction"),
    Row("weight_decay", "training.weight_decay", same, "weight decay"),
    Row("warmup_epochs", "training.warmup_epochs", same, "warm-up epochs"),
    Row("cos_lr", "training.scheduler", _cos_lr, "true -> cosine, false -> linear"),
    Row("close_mosaic", "training.close_mosaic", same, "mosaic off for the last N epochs"),
    Row("nbs", "training.nominal_batch", same, "nominal batch"),
    Row("seed", "training.seed", same, "the run's seed"),
    Row("amp", "hardware.precision", _amp, "true -> auto (fp16 on CUDA), false -> fp32, bf16 -> bf16-mixed"),
    Row("freeze", None, _freeze, "N or rows -> freeze.strategy: partial, freeze: [model.0, ...]"),
    Row("pretrained", None, _pretrained, "true: load the weights; false -> model.init: scratch"),
    Row("project", "output.dir", _output, "project/name -> output.dir"),
    Row("name", "output.dir", _output, "project/name -> output.dir"),
    Row("exist_ok", None, lambda value, ctx: Nothing("ftrecipe manages its output folder"), "ftrecipe manages it"),
    Row("fliplr", "data.augment", _augment, "with flipud -> flip"),
    Row("flipud", "data.augment", _augment, "with fliplr -> flip (vertical)"),
    Row("hsv_h", "data.augment", _augment, "hsv hue"),
    Row("hsv_s", "data.augment", _augment, "hsv saturation"),
    Row("hsv_v", "data.augment", _augment, "hsv value"),
    Row("scale", "data.augment", _augment, "scale gain"),
    Row("translate", "data.augment", _augment, "translate fraction"),
    Row("mosaic", "data.augment", _augment, "mosaic probability"),
    Row("mixup", "data.augment", _augment, "mixup probability"),
    *(Row(key, None, _off_augment, "0 only: ftrecipe keeps it off") for key in UNSUPPORTED_AUGMENT),
    Row("momentum", None, _default_only(0.937, "Ultralytics' default, which ftrecipe leaves in place",
                                        "ftrecipe leaves Ultralytics' momentum at 0.937"), "0.937 only"),
    Row("warmup_momentum", None, _default_only(0.8, "Ultralytics' default, which ftrecipe leaves in place",
                                               "ftrecipe leaves it at 0.8"), "0.8 only"),
    Row("warmup_bias_lr", None, _default_only(0.1, "Ultralytics' default, which ftrecipe leaves in place",
                                              "ftrecipe leaves it at 0.1"), "0.1 only"),
    Row("box", None, _default_only(7.5, "Ultralytics' default loss gain", "ftrecipe leaves the loss gains as they are"),
        "7.5 only"),
    Row("cls", None, _default_only(0.5, "Ultralytics' default loss gain", "ftrecipe leaves the loss gains as they are"),
        "0.5 only"),
    Row("dfl", None, _default_only(1.5, "Ultralytics' default loss gain", "ftrecipe leaves the loss gains as they are"),
        "1.5 only"),
    Row("deterministic", None, _default_only(True, "ftrecipe runs Ultralytics deterministically",
                                             "ftrecipe always runs deterministically"), "true only"),
    Row("patience", None, kind=NO_EQUIVALENT, how="ftrecipe runs every epoch it is given (no early stopping)"),
    Row("time", None, kind=NO_EQUIVALENT, how="ftrecipe counts epochs or steps, not hours"),
    Row("save", None, _default_only(True, "ftrecipe saves best.pt and last.pt", "ftrecipe always saves"), "true only"),
    Row("save_period", None, _default_only(-1, "checkpoints at each epoch's end, as ftrecipe keeps them",
                                           "ftrecipe checkpoints every training.checkpoint_every steps"), "-1 only"),
    Row("cache", None, _default_only(False, "no image cache", "ftrecipe does not cache images"), "false only"),
    Row("single_cls", None, _default_only(False, "classes as the data names them", "no single-class switch"),
        "false only"),
    Row("rect", None, _default_only(False, "square batches", "no rectangular batches"), "false only"),
    Row("resume", None, _default_only(False, "a fresh run", "resume with `ftrecipe run RECIPE --resume`"), "false only"),
    Row("fraction", None, _default_only(1.0, "all the training images", "use data.limit for a count of images"),
        "1.0 only"),
    Row("profile", None, _default_only(False, "off", "no profiler switch"), "false only"),
    Row("multi_scale", None, _default_only((0.0, False), "off", "no multi-scale training"), "off only"),
    Row("compile", None, _default_only(False, "off", "ftrecipe's YOLO runs do not compile"), "false only"),
    Row("val", None, _default_only(True, "ftrecipe validates every epoch", "ftrecipe always validates"), "true only"),
    Row("plots", None, lambda value, ctx: Nothing("ftrecipe writes its own report"), "ftrecipe writes its own report"),
    Row("verbose", None, lambda value, ctx: Nothing("ftrecipe run --quiet decides"), "ftrecipe run --quiet decides"),
    Row("cls_remap", None, _default_only(True, "Ultralytics' default (class-name matched head rows), which ftrecipe "
                                         "leaves in place", "ftrecipe leaves Ultralytics' cls_remap on"), "true only"),
    Row("cls_pw", None, _default_only(0.0, "no class weighting, Ultralytics' default, which ftrecipe leaves in place",
                                      "ftrecipe leaves class weighting off"), "0.0 only"),
    Row("dis", None, _default_only(6.0, "Ultralytics' default distillation gain (no teacher: unused)",
                                   "ftrecipe's YOLO modality does not distil"), "6.0 only"),
    Row("distill_model", None, kind=NO_EQUIVALENT, how="ftrecipe's YOLO modality does not distil"),
    Row("channels_last", None, kind=NO_EQUIVALENT, how="ftrecipe leaves Ultralytics' automatic memory format"),
    Row("quantize", None, kind=NO_EQUIVALENT,
        how="ftrecipe trains without quantization (Ultralytics' predict/val/export precision or QAT)"),
    Row("cfg", None, kind=NO_EQUIVALENT, how="another config file: import that file instead"),
    *VALIDATION_ROWS,
    *TASK_ROWS,
    *MODE_ROWS,
)

DEFAULTS = (
    Default("training.epochs", 100, "epochs", 100, "1", f"{DEFAULT_YAML}#L12"),
    Default("training.batch_size", 16, "batch", 16, 8, f"{DEFAULT_YAML}#L15"),
    Default("training.seed", 0, "seed", 0, 42, f"{DEFAULT_YAML}#L29"),
    Default("training.learning_rate", 0.01, "lr0", 0.01, 0.002, f"{DEFAULT_YAML}#L94", when=_named_optimizer,
            note="with a named optimizer ('auto' sets its own)"),
    Default("hardware.dataloader_workers", 8, "workers", 8, "none (0 in a YOLO run)", f"{DEFAULT_YAML}#L21"),
)
"""Ultralytics' defaults that differ from ftrecipe's YOLO ones. Equal, pinned by the tests but not written: image
size 640 (L16), lrf 0.01 (L95), weight decay 0.0005 (L97), 3 warm-up epochs (L98), a linear schedule (cos_lr:
false, L33), close_mosaic 10 (L34), nbs 64 (L114), AMP on CUDA only (amp: true, L36) and the augmentations
(L115-L127). Not expressible: the 'auto' optimizer (L27), reported as not carried over."""

FORMAT = Format(
    name="ultralytics",
    tool="Ultralytics",
    what="Ultralytics training arguments: model.train(...) keys as YAML (ultralytics/cfg/default.yaml)",
    rows=ROWS,
    defaults=DEFAULTS,
    skeleton={"model.modality": ("yolo", "Ultralytics detection training runs as ftrecipe's yolo modality"),
              "data.format": ("yolo", "an Ultralytics data YAML"),
              "head.mode": ("replace", "Ultralytics builds the head for the data's classes (with the weights' own "
                                       "classes, head.mode: keep)")},
    finish=_finish,
)
