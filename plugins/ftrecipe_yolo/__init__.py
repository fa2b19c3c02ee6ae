"""ftrecipe's YOLO modality: object-detection fine-tuning through Ultralytics (AGPL-3.0, an opt-in extra)."""
