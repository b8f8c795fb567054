"""Fit single model parts of gate_plain's synthetic data sets: the gate and retry of each part.

A quicker look than :mod:`gate_plain` when one part is being worked on: for
each synthetic index (the shapes of ``gate_plain.synth_config``) it builds
the fit's statistics with the plain spec's default settings and runs the
named parts through the fit's own build / sample / gate / retry step
(``simengine.fitting.fit._fit_part``), printing the wall time and, per
attempt, whether it passed and its first failures.

An item ``crm:YYYY-MM-DD`` instead of an index fits the CRM export's plain
spec (:func:`gate_plain.plain_crm_spec`) as of that date, with
``gate_plain``'s seed for that origin.

Usage (numbers quoted in docs/validation-convergence.md)::

    .venv/bin/python benchmarks/gate_parts.py 0,2 arrivals,deal_size
    .venv/bin/python benchmarks/gate_parts.py 2 conversion
    .venv/bin/python benchmarks/gate_parts.py crm:2017-04-30,crm:2017-07-31 arrivals
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gate_plain import CRM, CRM_ORIGINS, PLAIN_SYNTH, WEEKS, plain_crm_spec, synth_config

from simengine._quiet import ignore_pytensor_blas_notice
from simengine.config.spec import parse_spec
from simengine.fitting import deal_size
from simengine.fitting.fit import _fit_part, fit_data, part_seeds, settings_from_spec
from simengine.io.records import load_records
from simengine.synth import generate


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(__doc__)
        return 2
    ignore_pytensor_blas_notice()
    spec = parse_spec(PLAIN_SYNTH)
    st = settings_from_spec(spec)
    for item in args[0].split(","):
        if item.startswith("crm:"):
            origin = item[4:]
            text = plain_crm_spec()
            cspec = parse_spec(text, source=str(CRM.parent / "plain.toml"))
            day = dt.date.fromisoformat(origin)
            data = fit_data(load_records(CRM, cspec), cspec, day, settings_from_spec(cspec))
            cst, seeds, name = (
                settings_from_spec(cspec),
                part_seeds(1 + CRM_ORIGINS.index(origin)),
                item,
            )
            print(name, "pairs", int(data.arrival_active.sum()), "weeks", data.n_weeks)
        else:
            i = int(item)
            cfg, shape = synth_config(i)
            res = generate(i, weeks=WEEKS, config=cfg)
            data = fit_data(res.records, spec, cfg.as_of, st)
            cst, seeds, name = st, part_seeds(i), str(i)
            print(i, shape, "won deals", data.deal_n, "deal-size centred", deal_size.centring(data))
        for part in args[1].split(","):
            t0 = time.perf_counter()
            out = _fit_part(part, data, cst, seeds, False)
            tries = [(a["passed"], a["failures"][:3]) for a in out.attempts]
            print(name, part, f"{time.perf_counter() - t0:.0f} s", tries, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
