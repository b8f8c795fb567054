"""How the conversion drift steps' centring changes the sampler's mixing of the drift sd.

For each synthetic seed (the cases of the synthetic calibration test:
``models/demo.toml``, 52 weeks of history, the fit at the backtest origin)
this builds the conversion model once and samples it three times with the
drift steps' centring set through the data container
``conversion_drift_centred`` (one compilation, the cache's ``with_data``):
the data's choice (:func:`simengine.fitting.conversion.centring`), no step
centred, every step centred. It prints per choice the sampling time, the
drift sd's posterior mean, bulk and tail ESS and r_hat, and the
convergence gate of the whole part (:mod:`simengine.fitting.diagnostics`).

Usage (figures quoted in docs/validation-tests.md)::

    nice -n 10 .venv/bin/python benchmarks/drift_centring_mixing.py 1,2 500,500,4

(seeds, then draws,tune,chains; target acceptance 0.9, sampler seed 1).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path


def main(argv: list[str]) -> None:
    """Sample the conversion part of seeds ``argv[0]`` with settings ``argv[1]``."""
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

    ignore_pytensor_blas_notice()
    pytensor.config.blas__ldflags = ""
    spec = load_spec(Path("models/demo.toml"))
    st = settings_from_spec(spec)
    draws, tune, chains = (int(x) for x in argv[1].split(","))
    for s in (int(x) for x in argv[0].split(",")):
        records, origin, _ = synthetic_case(s, history_weeks=52)
        data = fit_data(records, spec, origin, st)
        cm = conversion.centring(data, st.prior_scales)
        model = conversion.build_model(data, st.prior_scales, centred=cm)
        names = [v.name for v in model.free_RVs] + list(conversion.OUTPUT_VARS)
        choices = {
            "the data's": np.asarray(cm["drift"], bool),
            "none": np.zeros(cm["drift"].shape, bool),
            "all": np.ones(cm["drift"].shape, bool),
        }
        for label, mask in choices.items():
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
                f"seed {s}, drift steps centred: {label} ({int(mask.sum())}/{mask.size}): "
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
