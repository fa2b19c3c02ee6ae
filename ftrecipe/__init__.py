"""ftrecipe: fine-tuning from declarative YAML recipes."""

from ftrecipe.hookspec import hookimpl

__version__ = "0.1.0"
__all__ = ["__version__", "hookimpl"]
