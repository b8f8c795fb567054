"""How the conversion drift steps' centring changes the sampler's mixing of the drift sd.

For each synthetic seed (the cases of the synthetic calibration test:
``models/demo.toml``, 52 weeks of history, the fit at the backtest origin;
optionally with every arrival mean multiplied by ``VOLUME``, for thick
cells) this builds the conversion model once and samples it once per choice
of the drift steps' centring, set through the data container
``conversion_drift_centred`` (one compilation, the cache's ``with_data``):
the rule's choice (:func:`simengine.fitting.conversion.centring`, the drift
sd's low posterior quantile), the former rule's (``drift_sd_quantile=None``:
the sd's moment estimate), no step centred, every step centred. A choice
whose mask equals an earlier one's is not sampled again (its line says
which). It prints per choice the sampling time, the drift sd's posterior
mean, bulk and tail ESS and r_hat, and the convergence gate of the whole
part (:mod:`simengine.fitting.diagnostics`).

Usage (figures quoted in docs/validation-tests.md)::

    nice -n 10 .venv/bin/python benchmarks/drift_centring_mixing.py 1,3 500,500,4
    nice -n 10 .venv/bin/python benchmarks/drift_centring_mixing.py 2 500,500,4 10

(seeds, then draws,tune,chains, then the optional VOLUME (default 1);
target acceptance 0.9, sampler seed 1).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path


def main(argv: list[str]) -> None:
    """Sample the conversion part of seeds ``argv[0]`` with settings ``argv[1]``."""
    import dataclasses

    import arviz as az
    import numpy as np
    import pymc as pm
    import pytensor

    from simengine._quiet import ignore_pytensor_blas_notice
    from simengine.backtest.synthetic import synthetic_case
    from simengine.config.spec import load_spec
    from simengine.fitting import conversion
    from simengine.fitting.diagnostics import check_convergence
    from simengine.fitting.fit import fit_data, sample_model, settings_from_spec
    from simengine.synth import SynthConfig

    ignore_pytensor_blas_notice()
    pytensor.config.blas__ldflags = ""
    spec = load_spec(Path("models/demo.toml"))
    st = settings_from_spec(spec)
    draws, tune, chains = (int(x) for x in argv[1].split(","))
    volume = float(argv[2]) if len(argv) > 2 else 1.0
    cfg = SynthConfig()
    if volume != 1.0:
        cfg = dataclasses.replace(
            cfg,
            mql_per_week=tuple(tuple(x * volume for x in r) for r in cfg.mql_per_week),
            opportunity_per_week=tuple(
                tuple(x * volume for x in r) for r in cfg.opportunity_per_week
            ),
        )
    for s in (int(x) for x in argv[0].split(",")):
        records, origin, _ = synthetic_case(s, history_weeks=52, config=cfg)
        data = fit_data(records, spec, origin, st)
        cm = conversion.centring(data, st.prior_scales)
        former = conversion.centring(data, st.prior_scales, drift_sd_quantile=None)
        model = conversion.build_model(data, st.prior_scales, centred=cm)
        names = [v.name for v in model.free_RVs] + list(conversion.OUTPUT_VARS)
        choices = {
            "the rule's": np.asarray(cm["drift"], bool),
            "the former rule's": np.asarray(former["drift"], bool),
            "none": np.zeros(cm["drift"].shape, bool),
            "all": np.ones(cm["drift"].shape, bool),
        }
        done: dict[str, np.ndarray] = {}
        for label, mask in choices.items():
            same = next((k for k, m in done.items() if np.array_equal(m, mask)), None)
            if same is not None:
                print(
                    f"seed {s}, volume x{volume:g}, drift steps centred: {label} "
                    f"({int(mask.sum())}/{mask.size}): the same mask as {same}",
                    flush=True,
                )
                continue
            done[label] = mask
            with model:
                pm.set_data({"conversion_drift_centred": mask.astype(np.float64)})
            t = time.perf_counter()
            idata = sample_model(
                model,
                draws=draws,
                tune=tune,
                chains=chains,
                target_accept=0.9,
                seed=1,
                label="conversion",
            )
            wall = time.perf_counter() - t
            gate = check_convergence(idata, names, part="conversion")
            tau = idata["posterior"]["drift_sd"].values
            print(
                f"seed {s}, volume x{volume:g}, drift steps centred: {label} "
                f"({int(mask.sum())}/{mask.size}): "
                f"{wall:.0f} s (the first includes the compilation); drift_sd mean "
                f"{float(tau.mean()):.3f}, bulk ESS {float(az.ess(tau, method='bulk')):.0f}, "
                f"tail ESS {float(az.ess(tau, method='tail')):.0f}, "
                f"r_hat {float(az.rhat(tau)):.3f}; gate passed {gate.ok} (worst r_hat "
                f"{gate.worst_rhat:.3f}, min bulk ESS {gate.min_ess_bulk:.0f}, min tail ESS "
                f"{gate.min_ess_tail:.0f}, divergences {gate.divergences})",
                flush=True,
            )


if __name__ == "__main__":
    main(sys.argv[1:])
