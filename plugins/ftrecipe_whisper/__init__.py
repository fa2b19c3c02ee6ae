"""Whisper plugin for ftrecipe: audio loading, manifests, augmentation, tiny offline models and metrics."""
