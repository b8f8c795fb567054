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
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError.single(p, f"cannot read the plan file: {exc.strerror or exc}") from None
    return parse_plan(text, source=str(p))


def _date(raw: dict[str, Any], key: str, file: str, issues: list[Issue]) -> dt.date | None:
    v = raw.get(key)
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    if isinstance(v, str):
        try:
            return dt.date.fromisoformat(v)
        except ValueError:
            pass
    issues.append(
        Issue(
            file,
            None,
            key,
            "" if v is None else str(v),
            "must be a date (YYYY-MM-DD)" if v is not None else "is required",
        )
    )
    return None


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    f = float(v)
    return f if f == f and f not in (float("inf"), float("-inf")) else None


def parse_plan(text: str, source: str = "<plan>") -> Plan:
    """Parse plan TOML text; see :func:`load_plan`."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError.single(source, f"not valid TOML: {exc}") from None
    issues: list[Issue] = []
    known = {"start", "end", "as_of", "horizon_days", "targets", "new_units", "name", "description"}
    issues += [
        Issue(source, None, k, "", f"unknown key; known keys: {sorted(known)}")
        for k in raw
        if k not in known
    ]
    start = _date(raw, "start", source, issues)
    end = _date(raw, "end", source, issues)
    as_of = _date(raw, "as_of", source, issues) if "as_of" in raw else start
    if start and end and end < start:
        issues.append(Issue(source, None, "end", str(end), "must not be before start"))
    if start and as_of and as_of > start:
        issues.append(Issue(source, None, "as_of", str(as_of), "must not be after start"))
    horizon = raw.get("horizon_days")
    if horizon is not None and (
        isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1
    ):
        issues.append(
            Issue(source, None, "horizon_days", str(horizon), "must be a positive whole number")
        )
        horizon = None
    targets: dict[str, float] = {}
    raw_targets = raw.get("targets")
    if not isinstance(raw_targets, dict) or not raw_targets:
        issues.append(
            Issue(
                source, None, "targets", "", "needs a [targets] table with one target per segment"
            )
        )
    else:
        for seg, v in raw_targets.items():
            f = _number(v)
            if f is None or f <= 0:
                issues.append(
                    Issue(source, None, f"targets.{seg}", str(v), "must be a positive number")
                )
            else:
                targets[str(seg)] = f
    new_units: dict[str, dict[str, float]] = {}
    raw_units = raw.get("new_units", {})
    if not isinstance(raw_units, dict):
        issues.append(Issue(source, None, "new_units", str(raw_units), "must be a table"))
    else:
        for seg, per_stage in raw_units.items():
            if not isinstance(per_stage, dict):
                issues.append(
                    Issue(
                        source,
                        None,
                        f"new_units.{seg}",
                        str(per_stage),
                        "must be a table of entry stage = units",
                    )
                )
                continue
            for stage, v in per_stage.items():
                f = _number(v)
                if f is None or f < 0:
                    issues.append(
                        Issue(
                            source,
                            None,
                            f"new_units.{seg}.{stage}",
                            str(v),
                            "must be a non-negative number",
                        )
                    )
                else:
                    new_units.setdefault(str(seg), {})[str(stage)] = f
    if issues or start is None or end is None or as_of is None:
        raise InputError(
            issues or [Issue(source, None, None, "", "incomplete plan")],
            summary=f"invalid plan {source}",
        )
    return Plan(
        start=start,
        end=end,
        as_of=as_of,
        targets=targets,
        new_units=new_units,
        horizon_days=horizon,
        text=text,
        path=source,
    )
