"""Fit single model parts of gate_plain's synthetic data sets: the gate and retry of each part.

A quicker look than :mod:`gate_plain` when one part is being worked on: for
each synthetic index (the shapes of ``gate_plain.synth_config``) it builds
the fit's statistics with the plain spec's default settings and runs the
named parts through the fit's own build / sample / gate / retry step
(``simengine.fitting.fit._fit_part``), printing the wall time and, per
attempt, whether it passed and its first failures.

Usage (numbers quoted in docs/validation-convergence.md)::

    .venv/bin/python benchmarks/gate_parts.py 0,2 arrivals,deal_size
    .venv/bin/python benchmarks/gate_parts.py 2 conversion
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gate_plain import PLAIN_SYNTH, WEEKS, synth_config

from simengine._quiet import ignore_pytensor_blas_notice
from simengine.config.spec import parse_spec
from simengine.fitting import deal_size
from simengine.fitting.fit import _fit_part, fit_data, part_seeds, settings_from_spec
from simengine.synth import generate


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(__doc__)
        return 2
    ignore_pytensor_blas_notice()
    spec = parse_spec(PLAIN_SYNTH)
    st = settings_from_spec(spec)
    for i in map(int, args[0].split(",")):
        cfg, shape = synth_config(i)
        res = generate(i, weeks=WEEKS, config=cfg)
        data = fit_data(res.records, spec, cfg.as_of, st)
        print(i, shape, "won deals", data.deal_n, "deal-size centred", deal_size.centring(data))
        for part in args[1].split(","):
            t0 = time.perf_counter()
            out = _fit_part(part, data, st, part_seeds(i), False)
            tries = [(a["passed"], a["failures"][:3]) for a in out.attempts]
            print(i, part, f"{time.perf_counter() - t0:.0f} s", tries, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
