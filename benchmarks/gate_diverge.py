"""Where a part's divergences are: one attempt of one gate_plain set, scales fixed or free.

Samples one model part of one synthetic set of :mod:`gate_plain` once, with
the first attempt's default settings (no retry), and prints

* the data per cell and step (units converted, lost, still open) and which
  levels the centring rule samples centred;
* the number of divergent transitions, and for each free variable the
  element whose divergent draws sit furthest from the posterior mean (in
  posterior sds), and for scalar scales the quantile of the divergent draws'
  median in the posterior (a funnel shows as divergences at the small end
  of a scale).

``--fix NAME=VALUE`` replaces a free variable by a constant (``pymc.do``),
to see which scale the divergences go away with: e.g.
``--fix conversion_cell_sd=0.6``.

Usage (numbers quoted in docs/validation-convergence.md)::

    .venv/bin/python benchmarks/gate_diverge.py 8 conversion
    .venv/bin/python benchmarks/gate_diverge.py 8 conversion --fix drift_sd=0.2
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pymc as pm

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gate_plain import PLAIN_SYNTH, WEEKS, synth_config

from simengine._quiet import ignore_pytensor_blas_notice
from simengine.config.spec import parse_spec
from simengine.fitting import conversion
from simengine.fitting.diagnostics import check_convergence
from simengine.fitting.fit import (
    _build_part,
    fit_data,
    part_seeds,
    sample_model,
    settings_from_spec,
)
from simengine.synth import generate


def _report(idata: object, names: list[str]) -> None:
    post = idata["posterior"]  # type: ignore[index]
    div = np.asarray(idata["sample_stats"]["diverging"].values, bool).ravel()  # type: ignore[index]
    print(f"divergent transitions: {int(div.sum())} of {div.size}")
    if not div.any():
        return
    for name in names:
        x = np.asarray(post[name].values)
        flat = x.reshape(-1, int(np.prod(x.shape[2:], dtype=np.int64)))
        sd = flat.std(axis=0)
        sd = np.where(sd > 0, sd, 1.0)
        shift = (flat[div].mean(axis=0) - flat.mean(axis=0)) / sd
        k = int(np.argmax(np.abs(shift)))
        idx = np.unravel_index(k, x.shape[2:]) if x.ndim > 2 else ()
        line = f"  {name}{list(idx) if idx else ''}: divergent mean {shift[k]:+.2f} sd"
        if flat.shape[1] == 1:
            q = float(np.mean(flat[:, 0] <= np.median(flat[div, 0])))
            line += (
                f"; posterior median {np.median(flat[:, 0]):.3f}, divergent median "
                f"{np.median(flat[div, 0]):.3f} (posterior quantile {q:.2f})"
            )
        print(line)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("index", type=int)
    ap.add_argument("part")
    ap.add_argument("--fix", action="append", default=[], help="NAME=VALUE")
    ap.add_argument("--retry-settings", action="store_true", help="the retry's settings")
    args = ap.parse_args(argv)
    ignore_pytensor_blas_notice()
    spec = parse_spec(PLAIN_SYNTH)
    st = settings_from_spec(spec)
    cfg, shape = synth_config(args.index)
    data = fit_data(generate(args.index, weeks=WEEKS, config=cfg).records, spec, cfg.as_of, st)
    print(args.index, shape)
    if args.part == "conversion":
        opened = np.zeros(data.n_converted.shape[:2])
        np.add.at(opened, (data.open_cell, data.open_step), data.open_count)
        print("converted (cell, step):", data.n_converted.sum(axis=2).tolist())
        print("lost (cell, step):", data.n_lost.sum(axis=2).tolist())
        print("open (cell, step):", opened.tolist())
        print("converted by period, step 0:", data.n_converted[:, 0].tolist())
        for k, v in conversion.centring(data, st.prior_scales).items():
            print(f"centred {k}:", np.asarray(v).astype(int).tolist())
    model, out_vars = _build_part(args.part, data, st)
    fixed = {}
    for item in args.fix:
        name, value = item.split("=")
        fixed[name] = float(value)
    if fixed:
        model = pm.do(model, fixed)
        print("fixed:", fixed)
    target_accept, mass_matrix = st.for_part(args.part)
    tune = st.tune
    if args.retry_settings:
        from simengine.fitting.fit import retry_settings

        tune, target_accept, mass_matrix = retry_settings(
            tune, target_accept, mass_matrix, st.sampler
        )
    t0 = time.perf_counter()
    idata = sample_model(
        model,
        draws=st.draws,
        tune=tune,
        chains=st.chains,
        target_accept=target_accept,
        seed=part_seeds(args.index)[args.part],
        sampler=st.sampler,
        mass_matrix=mass_matrix,
        reuse=False,
    )
    print(f"sampled in {time.perf_counter() - t0:.0f} s (tune {tune}, target {target_accept})")
    free = [v.name for v in model.free_RVs]
    gate = check_convergence(idata, [*free, *[v for v in out_vars if v not in fixed]])
    print("gate:", gate.ok, list(gate.failures)[:4])
    _report(idata, free)
    return 0


if __name__ == "__main__":
    sys.exit(main())
