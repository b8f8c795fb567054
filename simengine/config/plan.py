"""The plan file: a period to forecast, its revenue targets and marketing's plan.

Example (TOML)::

    start = 2027-01-04      # first day of the period
    end = 2027-04-04        # last day, inclusive
    as_of = 2027-01-04      # data cut-off (default: start)
    horizon_days = 180      # optional: simulate past the end (counted from start)
    [targets]
    smb = 150000
    [new_units]
    mid = { mql = 1430 }    # planned new units in the period, per entry stage

Day conventions used by every module: day ``0`` is the as-of date; the
simulation covers days ``0 .. sim_days - 1``; the period is days
``start_offset .. end_offset`` inclusive.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from pydantic import Field

from simengine.config import tables
from simengine.config.tables import Date, Table, non_empty, number, rule
from simengine.errors import InputError, Issue

__all__ = ["Plan", "load_plan", "parse_plan"]


@dataclass(frozen=True)
class Plan:
    """A forecast period with targets.

    Parameters
    ----------
    start, end : datetime.date
        First and last (inclusive) day of the period.
    as_of : datetime.date
        Data cut-off; the open pipeline is taken as of this day.
    targets : dict of str to float
        Revenue target per reporting segment.
    new_units : dict of str to dict of str to float
        Planned new units in the period per segment and entry stage; replaces
        the fitted (or assumed) arrival mean of that segment and stage.
    horizon_days : int or None
        Simulate until ``start + horizon_days - 1`` (if later than ``end``).
    text : str
        The TOML text (hashed for provenance).
    path : str or None
        Where it was read from.
    """

    start: dt.date
    end: dt.date
    as_of: dt.date
    targets: dict[str, float]
    new_units: dict[str, dict[str, float]] = field(default_factory=dict)
    horizon_days: int | None = None
    text: str = ""
    path: str | None = None

    @property
    def period_days(self) -> int:
        """Days in the period, ``end - start + 1``."""
        return (self.end - self.start).days + 1

    @property
    def horizon_end(self) -> dt.date:
        """Last simulated day: ``end`` or ``start + horizon_days - 1``."""
        if self.horizon_days is None:
            return self.end
        return max(self.end, self.start + dt.timedelta(days=self.horizon_days - 1))

    @property
    def sim_days(self) -> int:
        """Days simulated from the as-of date (day 0) to the horizon end."""
        return (self.horizon_end - self.as_of).days + 1

    @property
    def start_offset(self) -> int:
        """Day index of ``start`` counted from the as-of date."""
        return (self.start - self.as_of).days

    @property
    def end_offset(self) -> int:
        """Day index of ``end`` counted from the as-of date."""
        return (self.end - self.as_of).days

    @property
    def total_target(self) -> float:
        """Sum of the segment targets (the target of ``total``)."""
        return float(sum(self.targets.values()))

    @property
    def sha256(self) -> str:
        """SHA-256 of the plan's TOML text."""
        return hashlib.sha256(self.text.encode()).hexdigest()

    def check_segments(self, segments: Iterable[str], entry_stages: Iterable[str] = ()) -> None:
        """Check targets and planned units against the segments the data has.

        Parameters
        ----------
        segments : iterable of str
            Reporting segments present in the data or parameters.
        entry_stages : iterable of str
            Stages at which units may enter (for ``new_units``); empty skips
            that check.

        Raises
        ------
        InputError
            A target for an unknown segment, a segment without a target, or
            planned units for an unknown segment or stage.
        """
        known = list(segments)
        stages = list(entry_stages)
        file = self.path or "<plan>"
        issues = [
            Issue(
                file,
                None,
                f"targets.{s}",
                str(self.targets[s]),
                f"segment not in the data; the data's segments are {known}",
            )
            for s in self.targets
            if s not in known
        ]
        issues += [
            Issue(file, None, "targets", s, "segment in the data has no target")
            for s in known
            if s not in self.targets
        ]
        for seg, per_stage in self.new_units.items():
            if seg not in known:
                issues.append(
                    Issue(
                        file,
                        None,
                        f"new_units.{seg}",
                        "",
                        f"segment not in the data; the data's segments are {known}",
                    )
                )
            for stage in per_stage:
                if stages and stage not in stages:
                    issues.append(
                        Issue(
                            file,
                            None,
                            f"new_units.{seg}.{stage}",
                            "",
                            f"not an entry stage; entry stages are {stages}",
                        )
                    )
        if issues:
            raise InputError(issues, summary=f"plan {file} does not fit the data")


def load_plan(path: str | Path) -> Plan:
    """Read and check a plan TOML file.

    Raises
    ------
    InputError
        If the file is missing, not TOML, or breaks a rule of the format.
    """
    return parse_plan(tables.read_text(path, "plan"), source=str(Path(path)))


_Target = Annotated[float, number(lambda v: 0 < v < math.inf, "must be a positive number")]
_Units = Annotated[float, number(lambda v: 0 <= v < math.inf, "must be a non-negative number")]


class _PlanFile(Table):
    """A plan file's keys and what each must hold."""

    name: str | None = None
    description: str | None = None
    start: Date
    end: Date
    as_of: Date | None = None
    horizon_days: Annotated[
        int | None,
        rule(
            lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 1),
            "must be a positive whole number",
        ),
    ] = None
    targets: Annotated[
        dict[str, _Target], non_empty("needs a [targets] table with one target per segment")
    ] = Field(default_factory=dict, validate_default=True)
    new_units: dict[
        str,
        Annotated[
            dict[str, _Units],
            rule(lambda v: isinstance(v, dict), "must be a table of entry stage = units"),
        ],
    ] = Field(default_factory=dict)


def parse_plan(text: str, source: str = "<plan>") -> Plan:
    """Parse plan TOML text; see :func:`load_plan`."""
    raw = tables.toml_table(text, source)
    issues: list[Issue] = []
    top = tables.validate(_PlanFile, raw, source, issues, salvage=True)
    if top is not None:
        as_of = top.as_of or top.start
        if top.end < top.start:
            issues.append(Issue(source, None, "end", str(top.end), "must not be before start"))
        if as_of > top.start:
            issues.append(Issue(source, None, "as_of", str(as_of), "must not be after start"))
    if issues or top is None:
        raise InputError(issues, summary=f"invalid plan {source}")
    return Plan(
        start=top.start,
        end=top.end,
        as_of=as_of,
        targets=dict(top.targets),
        new_units={seg: dict(units) for seg, units in top.new_units.items()},
        horizon_days=top.horizon_days,
        text=text,
        path=source,
    )
