"""``history.html``: a plan's forecast over time, variance to plan and what moved the number.

One self-contained page per store (charts are PNG data URIs, no network),
rendered with Jinja2, one section per plan key (newest plan first):

* the trend of the period's P10/P50/P90 revenue against the target and the
  realised-to-date, over as-of dates (total);
* the P(hit) trend, per segment and total;
* the variance-to-plan table of every snapshot (P50 and P(hit) against the
  target, and their change since the previous snapshot);
* the waterfall of the last move (total revenue P50).

:func:`history_tables` gives the same tables as DataFrames;
:func:`write_history_report` writes them as Parquet beside the page.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from simengine.history.movement import STEPS
from simengine.history.store import HistoryStore
from simengine.report import format as fmt
from simengine.report.charts import png_data_uri

__all__ = ["history_tables", "render_history", "trend_table", "write_history_report"]

_BLUE, _TARGET, _GREY = "#1f5fa8", "#c0392b", "#333333"


def trend_table(store: HistoryStore) -> pd.DataFrame:
    """One row per snapshot and segment: the ``history list`` table.

    Columns ``plan_key, snapshot_id, as_of, period_start, period_end,
    segment, target, realised, p10, p50, p90, prob_hit, prob_hit_se,
    p50_vs_target, d_p50, d_prob_hit`` (changes since the previous snapshot
    of the same plan; NaN for the first).
    """
    snaps = store.table("snapshots")
    summ = store.table("summary")
    if snaps.empty:
        return pd.DataFrame(
            columns=[
                "plan_key",
                "snapshot_id",
                "as_of",
                "period_start",
                "period_end",
                "segment",
                "target",
                "realised",
                "p10",
                "p50",
                "p90",
                "prob_hit",
                "prob_hit_se",
                "p50_vs_target",
                "d_p50",
                "d_prob_hit",
            ]
        )
    wide = summ.assign(key=summ["metric"] + ":" + summ["stat"]).pivot_table(
        index=["snapshot_id", "segment"], columns="key", values="value", aggfunc="first"
    )
    rows = []
    for _, s in snaps.iterrows():
        targets = json.loads(s["targets"])
        targets["total"] = float(sum(targets.values()))
        realised = json.loads(s["realised"] or "{}")
        for seg, tgt in targets.items():
            if (s["snapshot_id"], seg) not in wide.index:
                continue
            w = wide.loc[(s["snapshot_id"], seg)]
            rows.append(
                {
                    "plan_key": s["plan_key"],
                    "snapshot_id": s["snapshot_id"],
                    "as_of": pd.Timestamp(s["as_of"]).date(),
                    "period_start": pd.Timestamp(s["period_start"]).date(),
                    "period_end": pd.Timestamp(s["period_end"]).date(),
                    "segment": seg,
                    "target": tgt,
                    "realised": float(realised.get(seg, 0.0)),
                    "p10": float(w["revenue:p10"]),
                    "p50": float(w["revenue:p50"]),
                    "p90": float(w["revenue:p90"]),
                    "prob_hit": float(w["attainment:prob_hit"]),
                    "prob_hit_se": float(w["attainment:prob_hit_se"]),
                }
            )
    df = pd.DataFrame(rows).sort_values(["plan_key", "segment", "as_of", "snapshot_id"])
    df["p50_vs_target"] = df["p50"] - df["target"]
    g = df.groupby(["plan_key", "segment"], sort=False)
    df["d_p50"] = g["p50"].diff()
    df["d_prob_hit"] = g["prob_hit"].diff()
    return df.sort_values(["plan_key", "as_of", "segment"]).reset_index(drop=True)


def history_tables(store: HistoryStore) -> dict[str, pd.DataFrame]:
    """Return the tables ``variance`` (:func:`trend_table`), ``waterfall``, ``fan_end``.

    ``waterfall`` carries the as-of dates of both ends of each move.
    """
    snaps = store.table("snapshots")[["snapshot_id", "plan_key", "as_of"]]
    mv = store.table("movements")
    if not mv.empty:
        mv = mv.merge(
            snaps.rename(columns={"snapshot_id": "to_snapshot", "as_of": "to_as_of"})[
                ["to_snapshot", "to_as_of"]
            ],
            on="to_snapshot",
        ).merge(
            snaps.rename(columns={"snapshot_id": "from_snapshot", "as_of": "from_as_of"})[
                ["from_snapshot", "from_as_of"]
            ],
            on="from_snapshot",
        )
    fan = store.table("fan_end").merge(snaps, on="snapshot_id")
    return {"variance": trend_table(store), "waterfall": mv, "fan_end": fan}


def _fig(w: float = 7.5, h: float = 3.4) -> tuple[Figure, object]:
    fig = Figure(figsize=(w, h))
    ax = fig.add_subplot(1, 1, 1)
    return fig, ax


def _trend_chart(df: pd.DataFrame) -> str:
    tot = df[df["segment"] == "total"].sort_values("as_of")
    x = [np.datetime64(d.isoformat(), "D") for d in tot["as_of"]]
    fig, ax = _fig()
    ax.fill_between(x, tot["p10"], tot["p90"], color=_BLUE, alpha=0.25, lw=0, label="P10–P90")  # type: ignore[attr-defined]
    ax.plot(x, tot["p50"], "o-", color=_BLUE, label="P50")  # type: ignore[attr-defined]
    ax.plot(x, tot["realised"], "s--", color=_GREY, label="realised to date")  # type: ignore[attr-defined]
    ax.axhline(float(tot["target"].iloc[0]), color=_TARGET, label="target")  # type: ignore[attr-defined]
    ax.set_title("Period revenue by as-of date (total)")  # type: ignore[attr-defined]
    ax.yaxis.set_major_formatter(_money_fmt())  # type: ignore[attr-defined]
    ax.legend(loc="best", fontsize=8)  # type: ignore[attr-defined]
    fig.autofmt_xdate()
    fig.tight_layout()
    return png_data_uri(fig)


def _money_fmt() -> object:
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _p: fmt.money(v))


def _hit_chart(df: pd.DataFrame) -> str:
    fig, ax = _fig()
    for i, (seg, g) in enumerate(df.groupby("segment", sort=True)):
        g = g.sort_values("as_of")
        x = [np.datetime64(d.isoformat(), "D") for d in g["as_of"]]
        style = {"color": "k", "lw": 2.5} if seg == "total" else {"color": f"C{i}", "lw": 1.2}
        ax.plot(x, g["prob_hit"], "o-", label=str(seg), **style)  # type: ignore[attr-defined]
    ax.set_ylim(-0.02, 1.02)  # type: ignore[attr-defined]
    ax.set_ylabel("P(hit target)")  # type: ignore[attr-defined]
    ax.set_title("P(hit) by as-of date")  # type: ignore[attr-defined]
    ax.legend(loc="best", fontsize=8)  # type: ignore[attr-defined]
    fig.autofmt_xdate()
    fig.tight_layout()
    return png_data_uri(fig)


def _waterfall_chart(rows: pd.DataFrame, title: str) -> str:
    r = rows.set_index("step")["value"]
    labels = ["previous", *STEPS, "MC residual", "current"]
    start = float(r["start"])
    prev = float(r.get("previous", start))
    fig, ax = _fig(8.5, 3.6)
    level = prev
    ax.bar(0, prev, color=_GREY)  # type: ignore[attr-defined]
    for i, step in enumerate([*STEPS, "residual"], start=1):
        v = float(r.get(step, 0.0))
        ax.bar(i, v, bottom=level, color="#2e8b57" if v >= 0 else _TARGET)  # type: ignore[attr-defined]
        level += v
    ax.bar(len(labels) - 1, level, color=_BLUE)  # type: ignore[attr-defined]
    ax.set_xticks(range(len(labels)))  # type: ignore[attr-defined]
    ax.set_xticklabels(labels, rotation=20, fontsize=8)  # type: ignore[attr-defined]
    ax.yaxis.set_major_formatter(_money_fmt())  # type: ignore[attr-defined]
    levels = np.cumsum([prev, *(float(r.get(st, 0.0)) for st in [*STEPS, "residual"])])
    lo, hi = float(levels.min()), float(levels.max())
    pad = 0.08 * max(hi - lo, abs(hi) * 0.02, 1.0)
    ax.set_ylim(max(0.0, lo - pad), hi + pad)  # type: ignore[attr-defined]
    ax.set_title(title)  # type: ignore[attr-defined]
    fig.tight_layout()
    return png_data_uri(fig)


_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}
table{border-collapse:collapse;margin:0.5em 0 1.5em;font-size:0.9em}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}
.note{color:#555;font-size:0.9em}
img{max-width:100%}
</style><script>{{ check_script }}</script></head>
<body><main>
<h1>{{ title }}</h1>
<p class="note">{{ n_snapshots }} snapshot(s) in {{ store }}. Revenue is closed-won revenue in
the plan period; P50/P10/P90 include the revenue already won by each as-of date.</p>
{% for plan in plans %}
<section>
<h2>Plan {{ plan.period }}
<span class="note">(key {{ plan.key }}, target {{ plan.target }})</span></h2>
<h3>Forecast trend</h3>
<img src="{{ plan.trend }}" alt="P10/P50/P90 trend of period revenue against target and realised">
<img src="{{ plan.hit }}" alt="P(hit) trend">
<h3>Variance to plan</h3>
<table><tr>{% for h in plan.header %}<th>{{ h }}</th>{% endfor %}</tr>
{% for row in plan.rows %}<tr>{% for c in row %}<td>{{ c }}</td>{% endfor %}</tr>{% endfor %}
</table>
{% if plan.waterfall %}
<h3>What moved the number: {{ plan.move }}</h3>
<img src="{{ plan.waterfall }}" alt="Waterfall of the last move of total revenue P50">
<table><tr>{% for h in plan.wf_header %}<th>{{ h }}</th>{% endfor %}</tr>
{% for row in plan.wf_rows %}<tr>{% for c in row %}<td>{{ c }}</td>{% endfor %}</tr>{% endfor %}
</table>
<p class="note">Steps re-simulate the period with one input swapped at a time on common random
numbers (docs/history.md). "MC residual" is the recorded change minus the sum of the steps:
Monte Carlo noise of independent runs, shown with its standard error.</p>
{% endif %}
</section>
{% endfor %}
</main></body></html>
"""


def render_history(store: HistoryStore, title: str = "Forecast history") -> str:
    """Render the ``history.html`` page of a store (see the module docstring)."""
    import jinja2

    from simengine.report.html import _CHECK_SCRIPT

    tables = history_tables(store)
    var, mv = tables["variance"], tables["waterfall"]
    plans = []
    for key, df in sorted(
        var.groupby("plan_key"), key=lambda kv: kv[1]["as_of"].max(), reverse=True
    ):
        df = df.sort_values(["as_of", "segment"])
        tot = df[df["segment"] == "total"]
        rows = [
            [
                r.as_of.isoformat(),
                r.segment,
                fmt.money(r.target),
                fmt.money(r.realised),
                fmt.money(r.p10),
                fmt.money(r.p50),
                fmt.money(r.p90),
                fmt.money(r.p50_vs_target),
                fmt.percent(r.prob_hit),
                "" if pd.isna(r.d_p50) else fmt.money(r.d_p50),
                "" if pd.isna(r.d_prob_hit) else f"{r.d_prob_hit * 100:+.1f} pts",
            ]
            for r in df.itertuples()
        ]
        plan: dict[str, object] = {
            "key": key,
            "period": f"{tot['period_start'].iloc[0]} – {tot['period_end'].iloc[0]}",
            "target": fmt.money(float(tot["target"].iloc[0])),
            "trend": _trend_chart(df),
            "hit": _hit_chart(df),
            "header": [
                "as of",
                "segment",
                "target",
                "realised",
                "P10",
                "P50",
                "P90",
                "P50 − target",
                "P(hit)",
                "Δ P50",
                "Δ P(hit)",
            ],
            "rows": rows,
            "waterfall": None,
        }
        m = mv[mv["plan_key"] == key] if not mv.empty else mv
        if not m.empty:
            last = m.sort_values("to_as_of").iloc[-1]
            pair = m[
                (m["to_snapshot"] == last["to_snapshot"])
                & (m["from_snapshot"] == last["from_snapshot"])
            ]
            a_d, b_d = (
                pd.Timestamp(last["from_as_of"]).date(),
                pd.Timestamp(last["to_as_of"]).date(),
            )
            move = f"{a_d} → {b_d}"
            p50 = pair[(pair["segment"] == "total") & (pair["metric"] == "revenue_p50")]
            plan["waterfall"] = _waterfall_chart(p50, f"Total revenue P50, {move}")
            plan["move"] = move
            wf = pair.pivot_table(
                index=["segment", "step"], columns="metric", values=["value", "se"]
            )
            order = ["previous", *STEPS, "residual", "current", "recorded change", "start", "end"]
            plan["wf_header"] = ["segment", "step", "P50 effect", "± se", "P(hit) effect", "± se"]
            plan["wf_rows"] = [
                [
                    seg,
                    step,
                    fmt.money(wf.loc[(seg, step), ("value", "revenue_p50")]),
                    fmt.money(wf.loc[(seg, step), ("se", "revenue_p50")]),
                    f"{wf.loc[(seg, step), ('value', 'prob_hit')] * 100:+.1f} pts",
                    f"{wf.loc[(seg, step), ('se', 'prob_hit')] * 100:.1f} pts",
                ]
                for seg in sorted(pair["segment"].unique(), key=lambda s: (s == "total", s))
                for step in order
                if (seg, step) in wf.index
            ]
        plans.append(plan)
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(_TEMPLATE).render(
        title=title,
        store=store.path.name,
        n_snapshots=int(var["snapshot_id"].nunique()) if not var.empty else 0,
        plans=plans,
        check_script=jinja2.utils.markupsafe.Markup(_CHECK_SCRIPT),
    )


def write_history_report(store: HistoryStore, out_dir: str | Path, *, force: bool = False) -> Path:
    """Write ``out_dir/history.html`` and ``variance/waterfall/fan_end.parquet`` atomically."""
    from simengine.io.atomic import atomic_dir

    out = Path(out_dir)
    page = render_history(store)
    tables = history_tables(store)
    with atomic_dir(out, force=force) as tmp:
        (tmp / "history.html").write_text(page, encoding="utf-8")
        for name, df in tables.items():
            df.to_parquet(tmp / f"{name}.parquet", index=False)
    return out / "history.html"
