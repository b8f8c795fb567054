"""``simengine history``: record, list and report forecast snapshots in a DuckDB store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["add", "list_cmd", "register", "report"]

StoreOpt = Annotated[
    Path, typer.Option("--store", help="History store (DuckDB file; created on first record).")
]

history_app = typer.Typer(
    help="Forecast history: snapshots of a plan's forecasts, variance to plan, what moved.",
    no_args_is_help=True,
)


def record_forecast_dir(forecast_dir: Path, store: Path, label: str = "") -> tuple[bool, str]:
    """Record the forecast in ``forecast_dir`` in ``store``; return (added, plan key).

    A forecast whose period, targets or spec differ from every plan already
    in the store is kept apart under its own plan key, and a note says so.
    """
    import json

    from simengine.engine.forecast import Forecast
    from simengine.errors import InputError
    from simengine.history.record import snapshot_from_forecast, spec_identity
    from simengine.history.store import HistoryStore

    hs = HistoryStore(store)
    hs.check()
    nc = forecast_dir / "forecast.nc"
    if not nc.exists():
        raise InputError.single(
            forecast_dir, "no forecast.nc here (a `simengine simulate` output?)"
        )
    from simengine.report.data import read_forecast

    ds = read_forecast(forecast_dir)
    fc = Forecast.read(forecast_dir)
    del ds
    inputs = json.loads(fc.dataset.attrs.get("input_sha256", "{}"))
    paths = json.loads(fc.dataset.attrs.get("input_paths", "{}"))
    post = Path(paths["posterior"]) if "posterior" in paths else None
    spec_sha, converged = spec_identity(post, inputs)
    rec = snapshot_from_forecast(
        fc, spec_sha256=spec_sha, converged=converged, label=label or str(forecast_dir)
    )
    keys = set(hs.snapshots()["plan_key"]) if hs.path.exists() else set()
    added = hs.record(rec)
    if added and keys and rec.plan_key not in keys:
        from simengine.cli._common import console

        console.print(
            f"note: its period {rec.start} – {rec.end}, targets or spec differ from the "
            f"store's other snapshots: kept apart under its own plan key {rec.plan_key} "
            f"(the store has {len(keys)} other plan(s))"
        )
    return added, rec.plan_key


def add(
    forecast_dir: Annotated[
        Path, typer.Argument(help="A forecast folder (simengine simulate --out).")
    ],
    store: StoreOpt,
) -> None:
    """Record an existing forecast folder as a snapshot."""
    from simengine.cli._common import console

    added, key = record_forecast_dir(forecast_dir, store)
    console.print(
        f"{'recorded' if added else 'already recorded'}: {forecast_dir} -> {store} (plan {key})"
    )


def list_cmd(store: StoreOpt) -> None:
    """One row per snapshot: as-of, period, P(hit), P10/P50/P90 per segment and total."""
    from rich.table import Table

    from simengine.cli._common import console
    from simengine.history.report import trend_table
    from simengine.history.store import HistoryStore
    from simengine.report import format as fmt

    df = trend_table(HistoryStore(store))
    if df.empty:
        console.print(f"{store}: no snapshots")
        return
    segs = sorted(df["segment"].unique(), key=lambda s: (s == "total", s))
    for key, g in df.groupby("plan_key", sort=False):
        first = g.iloc[0]
        table = Table(
            title=f"plan {key}: {first['period_start']} – {first['period_end']}", show_lines=False
        )
        for col in ("as of", "snapshot", *[f"{s}" for s in segs]):
            table.add_column(col, justify="left" if col in ("as of", "snapshot") else "right")
        for (as_of, sid), snap in g.groupby(["as_of", "snapshot_id"], sort=True):
            by = snap.set_index("segment")
            cells = []
            for s in segs:
                if s not in by.index:
                    cells.append("")
                    continue
                r = by.loc[s]
                cells.append(
                    f"P(hit) {fmt.percent(r['prob_hit'])}\n"
                    f"{fmt.money(r['p10'])} / {fmt.money(r['p50'])} / {fmt.money(r['p90'])}"
                )
            table.add_row(str(as_of), str(sid)[:8], *cells)
        console.print(table)
    console.print("cells: P(hit target); P10 / P50 / P90 of period revenue (realised included)")


def report(
    store: StoreOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out.")] = False,
) -> None:
    """Write OUT/history.html (trend, P(hit), variance to plan, waterfall) and Parquet tables."""
    from simengine.cli._common import console
    from simengine.history.report import write_history_report
    from simengine.history.store import HistoryStore

    page = write_history_report(HistoryStore(store), out, force=force)
    console.print(f"wrote {page} and {out}/{{variance,waterfall,fan_end}}.parquet")


def register(app: typer.Typer) -> None:
    """Add the ``history`` command group to ``app``."""
    history_app.command("add")(add)
    history_app.command("list")(list_cmd)
    history_app.command("report")(report)
    app.add_typer(history_app, name="history")
