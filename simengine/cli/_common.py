"""Shared CLI helpers: the console and a progress bar for long simulations."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console

from simengine.io.atomic import atomic_dir, atomic_file

__all__ = ["atomic_dir", "atomic_file", "console", "progress_bar"]

console = Console()


@contextmanager
def progress_bar(label: str = "simulating") -> Iterator[Callable[[int, int], None]]:
    """Yield an ``on_block(done, total)`` callback that draws a rich progress bar.

    The bar appears only once a run has taken over 2 s, so short runs print
    nothing; it is stopped when the block exits.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    t0 = time.perf_counter()
    state: dict[str, Any] = {}

    def on_block(done: int, total: int) -> None:
        if "bar" not in state:
            if time.perf_counter() - t0 < 2.0 or done >= total:
                return
            bar = Progress(
                TextColumn(label),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("paths"),
                TimeRemainingColumn(),
                console=console,
                transient=False,
            )
            bar.start()
            state["bar"] = bar
            state["task"] = bar.add_task("paths", total=total)
        state["bar"].update(state["task"], completed=done)

    try:
        yield on_block
    finally:
        if "bar" in state:
            state["bar"].stop()
