"""Writing a planning table and its chart together, atomically."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["write_table_and_chart"]


def write_table_and_chart(
    df: pd.DataFrame,
    out_dir: str | Path,
    *,
    csv_name: str,
    png_name: str,
    plot: Callable[[pd.DataFrame], Any],
    force: bool = False,
) -> Path:
    """Write ``df`` as ``csv_name`` and ``plot(df)`` as ``png_name`` into ``out_dir``.

    Both files appear together or not at all (``atomic_dir``); an existing
    ``out_dir`` is an error unless ``force``. NaN is written as ``nan``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from simengine.io.atomic import atomic_dir

    out = Path(out_dir)
    with atomic_dir(out, force=force) as tmp:
        df.to_csv(tmp / csv_name, index=False, na_rep="nan")
        fig = plot(df)
        fig.savefig(tmp / png_name, dpi=120, bbox_inches="tight")
        plt.close(fig)
    return out
