"""The convergence gate on plain specs: synthetic data sets of varied shape and the CRM export.

A *plain* spec has only ``stages``, ``segment_by``, ``pipeline_stage`` (and,
for the CRM export, its ``[source]`` mapping): no ``[model]`` table, so every
sampler and model setting is the default, including the data-driven centring
and the automatic retry. Each data set is fitted once, without
``--allow-unconverged``; a fit passes when :func:`simengine.fitting.fit.fit`
returns (it raises :class:`~simengine.errors.ConvergenceError` otherwise).

Synthetic data sets (``simengine.synth`` with a shape per index ``i``):

* 1-4 segments (``1 + i % 4``) and 1-3 channels (``1 + (i // 4) % 3``);
* cell sizes: every cell thick (~2,000 units over the history) when ``i % 5
  == 0``, every cell thin (~20 units) when ``i % 5 == 1``, else a random mix
  of thin and thick cells;
* sales-sourced entry at ``opportunity`` in odd ``i`` only;
* rates, delays and deal sizes drawn per data set around the demo's.

Each fit prints one line (pass, the parts that needed the retry, the
predictive-check warnings, wall time) and, with ``--out``, appends it as a
JSON line; the summary gives the pass count, the retries and the fit times.

Usage (numbers quoted in docs/validation-convergence.md)::

    .venv/bin/python benchmarks/gate_plain.py --out gate.jsonl            # CRM, then 20 synthetic
    .venv/bin/python benchmarks/gate_plain.py --only synth --n 20
    .venv/bin/python benchmarks/gate_plain.py --only crm
    .venv/bin/python benchmarks/gate_plain.py --out gate.jsonl --resume   # go on after a stop
    .venv/bin/python benchmarks/gate_plain.py --draws 300 --tune 300      # iteration only:
                                                                          # not the defaults
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import numpy as np

from simengine._quiet import ignore_pytensor_blas_notice
from simengine.config.spec import parse_spec
from simengine.errors import ConvergenceError
from simengine.fitting.fit import fit, settings_from_spec
from simengine.io.records import load_records
from simengine.synth import SynthConfig, generate

REPO = Path(__file__).resolve().parents[1]
CRM = REPO.parent / "shared" / "data" / "crm-opportunities" / "sales_pipeline.csv"
CRM_ORIGINS = ("2017-04-30", "2017-05-31", "2017-06-30", "2017-07-31", "2017-08-31", "2017-09-30")
WEEKS = 78
"""Weeks of synthetic history (a year and a half: six drift periods)."""

THIN, THICK = 20.0, 2000.0
"""Units per cell over the history: a thin and a thick cell."""

PLAIN_SYNTH = """name = "plain"
stages = ["mql", "sql", "opportunity", "won"]
segment_by = ["segment", "channel"]
pipeline_stage = "opportunity"
"""


def plain_crm_spec() -> str:
    """The CRM spec without its ``[model]`` table (its comments dropped)."""
    raw = tomllib.loads((REPO / "models" / "crm-opportunities.toml").read_text())
    src = raw["source"]
    lines = [
        'name = "crm-plain"',
        f"stages = {json.dumps(raw['stages'])}",
        f"segment_by = {json.dumps(raw['segment_by'])}",
        f'pipeline_stage = "{raw["pipeline_stage"]}"',
        "",
        "[source]",
        f'date_format = "{src["date_format"]}"',
        "exclude = { deal_stage = " + json.dumps(src["exclude"]["deal_stage"]) + " }",
        'replace = { product = { GTXPro = "GTX Pro" } }',
        "",
    ]
    for j in src["join"]:
        lines += ["[[source.join]]", f'file = "{j["file"]}"', f'on = "{j["on"]}"', ""]
    lines.append("[source.columns]")
    for key, rule in src["columns"].items():
        if isinstance(rule, str):
            lines.append(f'{key} = "{rule}"')
        else:
            when = ", ".join(f"{k} = {json.dumps(v)}" for k, v in rule["when"].items())
            lines.append(f'{key} = {{ column = "{rule["column"]}", when = {{ {when} }} }}')
    return "\n".join(lines) + "\n"


def synth_config(i: int) -> tuple[SynthConfig, dict[str, Any]]:
    """The i-th data set's true parameters and a description of its shape."""
    rng = np.random.default_rng(20261206 + i)
    n_seg, n_ch = 1 + i % 4, 1 + (i // 4) % 3
    n_cells = n_seg * n_ch
    if i % 5 == 0:
        thick = np.ones(n_cells, bool)
    elif i % 5 == 1:
        thick = np.zeros(n_cells, bool)
    else:
        thick = rng.random(n_cells) < 0.5
        thick[rng.integers(n_cells)] = True  # at least one of each when there are two cells
        if n_cells > 1:
            thin_at = (int(np.flatnonzero(thick)[0]) + 1) % n_cells
            thick[thin_at] = False
    units = np.where(thick, THICK, THIN)
    sales = i % 2 == 1
    mql = (units / WEEKS).reshape(n_seg, n_ch)
    opp = (0.05 * units / WEEKS).reshape(n_seg, n_ch) if sales else np.zeros((n_seg, n_ch))
    cfg = SynthConfig(
        segments=tuple(f"s{k}" for k in range(n_seg)),
        channels=tuple(f"c{k}" for k in range(n_ch)),
        mql_per_week=tuple(map(tuple, mql)),
        opportunity_per_week=tuple(map(tuple, opp)),
        mql_trend_per_week=tuple(rng.normal(0.002, 0.002, n_ch)),
        conversion=tuple(rng.uniform([0.2, 0.5, 0.15], [0.4, 0.75, 0.3])),
        segment_logit_shift=tuple(map(tuple, rng.normal(0.0, 0.2, (n_seg, 3)))),
        channel_logit_shift=tuple(map(tuple, rng.normal(0.0, 0.1, (n_ch, 3)))),
        segment_delay_factor=tuple(rng.uniform(0.8, 1.4, n_seg)),
        deal_median=tuple(10.0 ** rng.uniform(3.5, 5.5, n_seg)),
        deal_sigma=tuple(rng.uniform(0.4, 0.7, n_seg)),
        channel_deal_shift=tuple(rng.normal(0.0, 0.1, n_ch)),
        expectation_paths=200,
        expectation_reps=2,
    )
    shape = {
        "segments": n_seg,
        "channels": n_ch,
        "thick_cells": int(thick.sum()),
        "thin_cells": int((~thick).sum()),
        "sales_sourced": sales,
    }
    return cfg, shape


def _commit() -> str:
    """The checkout's commit (``-dirty`` with uncommitted changes), or ``unknown``."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return f"{head}-dirty" if dirty else head or "unknown"


def _one(
    label: str,
    records: Any,
    spec_text: str,
    as_of: dt.date,
    seed: int,
    overrides: dict[str, int | None],
) -> dict[str, Any]:
    spec = parse_spec(spec_text)
    st = settings_from_spec(spec, **overrides)
    t0 = time.perf_counter()
    row: dict[str, Any] = {
        "data": label,
        "as_of": as_of.isoformat(),
        "units": len(records),
        "commit": _commit(),
    }
    try:
        idata = fit(records, spec, as_of, seed, settings=st)
    except ConvergenceError as exc:
        row.update(passed=False, failures=list(exc.failures), message=str(exc))
        attempts = None
        checks: dict[str, Any] = {}
    except Exception as exc:  # a crash is a failure to report, not to hide
        row.update(passed=False, error=f"{type(exc).__name__}: {exc}")
        attempts = None
        checks = {}
    else:
        attrs = idata["posterior"].attrs
        attempts = json.loads(attrs["simengine_fit_attempts"])
        checks = json.loads(attrs["simengine_ppc"])
        row["passed"] = True
    row["seconds"] = round(time.perf_counter() - t0, 1)
    if attempts is not None:
        row["retried"] = [p for p, a in attempts.items() if len(a) > 1]
    else:
        row["retried"] = "unknown (raised)"
    row["ppc_warnings"] = {p: c["outside"] for p, c in checks.items() if c["outside"]}
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=("synth", "crm"))
    ap.add_argument("--n", type=int, default=20, help="synthetic data sets")
    ap.add_argument("--start", type=int, default=0, help="first synthetic index")
    ap.add_argument("--draws", type=int, help="iteration only: not the defaults")
    ap.add_argument("--tune", type=int, help="iteration only: not the defaults")
    ap.add_argument("--out", type=Path, help="append one JSON line per fit")
    ap.add_argument(
        "--resume",
        action="store_true",
        help="skip the fits already in --out and summarise them with the new ones",
    )
    a = ap.parse_args(argv)
    ignore_pytensor_blas_notice()
    overrides = {"draws": a.draws, "tune": a.tune}
    rows: list[dict[str, Any]] = []
    done: set[tuple[str, str]] = set()
    if a.resume and a.out is not None and a.out.exists():
        rows = [json.loads(line) for line in a.out.read_text().splitlines() if line.strip()]
        done = {(r["data"], r["as_of"]) for r in rows}

    def report(row: dict[str, Any]) -> None:
        rows.append(row)
        print(json.dumps(row), flush=True)
        if a.out is not None:
            with a.out.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")

    if a.only in (None, "crm"):
        if not CRM.exists():
            print(f"CRM export not found at {CRM}; skipped", flush=True)
        else:
            text = plain_crm_spec()
            records = load_records(CRM, parse_spec(text, source=str(CRM.parent / "plain.toml")))
            for k, origin in enumerate(CRM_ORIGINS):
                day = dt.date.fromisoformat(origin)
                if ("crm", origin) in done:
                    continue
                report(_one("crm", records, text, day, 1 + k, overrides))
    if a.only in (None, "synth"):
        for i in range(a.start, a.start + a.n):
            cfg, shape = synth_config(i)
            if (f"synth-{i}", cfg.as_of.isoformat()) in done:
                continue
            res = generate(i, weeks=WEEKS, config=cfg)
            row = _one(f"synth-{i}", res.records, PLAIN_SYNTH, cfg.as_of, i, overrides)
            report({**row, **shape})
    _summary(rows)
    return 0


def _summary(rows: list[dict[str, Any]]) -> None:
    for kind in ("crm", "synth"):
        sel = [r for r in rows if r["data"].startswith(kind)]
        if not sel:
            continue
        passed = sum(r["passed"] for r in sel)
        retried = sum(bool(r["retried"]) and r["passed"] for r in sel)
        secs = np.array([r["seconds"] for r in sel])
        print(
            f"{kind}: {passed}/{len(sel)} passed the gate; {retried} passed after a retry "
            f"(parts retried: {sum(len(r['retried']) for r in sel if r['passed'])}); "
            f"fit time median {np.median(secs):.0f} s, max {secs.max():.0f} s, "
            f"total {secs.sum():.0f} s",
            flush=True,
        )


if __name__ == "__main__":
    sys.exit(main())
