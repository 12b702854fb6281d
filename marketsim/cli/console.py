"""The CLI's consoles and formatting: one place for progress bars, numbers and plugin warnings."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from marketsim.registry import Registry

out = Console()
err = Console(stderr=True)
for _console in (out, err):
    if not _console.is_terminal:  # logs and pipes: wide enough that tables do not truncate
        _console.width = 130


def fmt(v: float | None, digits: int = 4) -> str:
    """A number for a table: thousands separators, ``digits`` decimals, a dash for missing."""
    return "—" if v is None or v != v else f"{v:,.{digits}f}"


def counting_progress(title: str, unit: str, quiet: bool) -> Progress:
    """A progress bar on stderr counting ``unit`` done out of a total, with elapsed time and ETA."""
    return Progress(
        TextColumn(f"[bold]{escape(title)}"), BarColumn(), MofNCompleteColumn(), TextColumn(unit),
        TimeElapsedColumn(), TimeRemainingColumn(), console=err, transient=True, disable=quiet,
    )  # fmt: skip


def warn_plugin_problems(registry: Registry) -> None:
    """Print each plugin that failed to load (the run goes on without it)."""
    for p in registry.problems:
        err.print(f"[yellow]problem in plugin {escape(repr(p.plugin))}:[/] {escape(p.reason)}", highlight=False)
