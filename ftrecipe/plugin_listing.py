"""`ftrecipe plugins`: what is installed, who contributed it, and what failed to load."""

from __future__ import annotations

from typing import Any

from ftrecipe.registry import Registry


def _contributions(registry: Registry, plugin: str) -> dict[str, list[str]]:
    def names(records: Any) -> list[str]:
        return sorted({r.name for r in records if r.plugin == plugin})

    return {
        "modalities": names(registry.modalities.values()),
        "dataset_formats": names(registry.dataset_formats.values()),
        "augmentations": names(registry.augmentations.values()),
        "metrics": names(registry.metrics.values()),
        "callbacks": names(registry.callbacks.values()),
    }


def plugins_json(registry: Registry) -> dict[str, Any]:
    return {
        "plugins": [
            {
                "name": p.name,
                "version": p.version,
                "distribution": p.distribution,
                "module": p.module,
                "builtin": p.builtin,
                "hooks": p.hooks,
                "error": p.error,
                **_contributions(registry, p.name),
            }
            for p in registry.plugins
        ],
        "conflicts": registry.conflicts,
    }


def print_plugins(registry: Registry) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:  # piped into a file or a tool: don't truncate to 80 columns
        console = Console(width=200)
    table = Table(title="ftrecipe plugins", show_lines=False)
    for column in ("name", "version", "distribution", "kind", "contributes", "status"):
        table.add_column(column, overflow="fold")
    for plugin in registry.plugins:
        parts = [f"{kind.replace('_', ' ')}: {', '.join(items)}" for kind, items in _contributions(registry, plugin.name).items() if items]
        status = f"[red]failed: {plugin.error}[/red]" if plugin.error else "[green]ok[/green]"
        table.add_row(
            plugin.name,
            plugin.version,
            plugin.distribution,
            "built-in" if plugin.builtin else "third-party",
            "\n".join(parts) or "-",
            status,
        )
    console.print(table)
    for conflict in registry.conflicts:
        console.print(f"[red]conflict:[/red] {conflict}")
