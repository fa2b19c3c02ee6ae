"""The common runner: `ftrecipe run` for every modality (imports torch; loaded only by `run`)."""
