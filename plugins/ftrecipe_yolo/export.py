"""Exports of trained weights through Ultralytics' exporter."""

from __future__ import annotations

from pathlib import Path

from ftrecipe.plugin import RunFailure


def export_onnx(weights: Path, image_size: int) -> Path:
    """``weights`` as ONNX beside it (static shape, no graph simplifier: that would install onnxslim)."""
    from ultralytics import YOLO

    try:
        path = YOLO(str(weights)).export(format="onnx", imgsz=image_size, simplify=False, dynamic=False, verbose=False)
    except ImportError as error:
        raise RunFailure(f"ONNX export needs the onnx package ({error}): pip install \"ftrecipe[yolo]\"") from error
    return Path(path)
