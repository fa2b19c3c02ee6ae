"""mAP50, mAP50-95 and AP per class, by pycocotools' ``COCOeval`` on in-memory ground truth and detections.

Why pycocotools: it is the COCO reference implementation, the one torchvision's detection references
(``references/detection/coco_eval.py``) and the published Faster R-CNN numbers use, so a fine-tuned
model's mAP here means what the model zoo's numbers mean (101-point interpolated precision, IoU 0.50:0.95
in steps of 0.05, up to 100 detections per image). Nothing is written to disk: the ground truth is
built as a ``COCO`` object in memory.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def _xywh(box: Sequence[float]) -> list[float]:
    x1, y1, x2, y2 = (float(v) for v in box)
    return [x1, y1, x2 - x1, y2 - y1]


def coco_map(truths: Sequence[Mapping[str, Any]], detections: Sequence[Mapping[str, Any]],
             classes: Sequence[str]) -> dict[str, float]:
    """Scores of ``detections`` against ``truths`` (one of each per image, in the same order).

    A truth is ``{"size": [w, h], "boxes": [[x1, y1, x2, y2]], "labels": [class ids, 1-based]}``; a detection
    ``{"boxes", "labels", "scores"}`` (lists or arrays). Returns ``mAP50``, ``mAP50-95`` and, for every class
    with ground truth, ``AP50/<class>`` and ``AP/<class>`` (AP50-95)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, annotations, results = [], [], []
    for image_id, (truth, found) in enumerate(zip(truths, detections, strict=True), start=1):
        width, height = truth["size"]
        images.append({"id": image_id, "width": int(width), "height": int(height)})
        for box, label in zip(truth["boxes"], truth["labels"], strict=True):
            xywh = _xywh(box)
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": int(label), "bbox": xywh,
                                "area": xywh[2] * xywh[3], "iscrowd": 0})
        for box, label, score in zip(np.asarray(found["boxes"]).tolist(), np.asarray(found["labels"]).tolist(),
                                     np.asarray(found["scores"]).tolist(), strict=True):
            results.append({"image_id": image_id, "category_id": int(label), "bbox": _xywh(box), "score": float(score)})
    scores = {"mAP50": 0.0, "mAP50-95": 0.0}
    if not annotations or not results:  # nothing to find, or nothing found: COCOeval has no defined answer / 0
        return scores
    ground = COCO()
    ground.dataset = {"images": images, "annotations": annotations,
                      "categories": [{"id": i + 1, "name": name} for i, name in enumerate(classes)]}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress and table
        ground.createIndex()
        evaluation = COCOeval(ground, ground.loadRes(results), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    scores = {"mAP50": max(0.0, float(evaluation.stats[1])), "mAP50-95": max(0.0, float(evaluation.stats[0]))}
    precision = evaluation.eval["precision"]  # [IoU thresholds, recall points, classes, area ranges, max detections]
    present = {int(a["category_id"]) for a in annotations}
    for index, category in enumerate(evaluation.params.catIds):
        if category not in present:
            continue
        name = classes[category - 1]
        every = precision[:, :, index, 0, -1]
        at50 = precision[0, :, index, 0, -1]
        scores[f"AP50/{name}"] = float(np.mean(at50[at50 > -1])) if (at50 > -1).any() else 0.0
        scores[f"AP/{name}"] = float(np.mean(every[every > -1])) if (every > -1).any() else 0.0
    return scores
