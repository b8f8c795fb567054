"""Funnel specifications: the TOML files in ``models/``.

A spec names a funnel's ordered stages, the columns that define its cells
(``segment_by``), the stage from which a unit counts as pipeline, an optional
mapping from a source export to the canonical record format, and model
options. See ``models/demo.toml`` and ``models/crm-opportunities.toml``.

Canonical names fixed here (and in ARCHITECTURE.md):

* a stage's date column is ``f"{stage}_at"``; ``lost_at``, ``amount`` and
  ``id`` complete the record format;
* a *step* is labelled by the stage it leads to (``steps = stages[1:]``);
* a *cell* is one combination of ``segment_by`` values, labelled by joining
  them with ``/`` (``"mid/webinar"``); the first ``segment_by`` column is the
  reporting *segment*.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simengine.errors import InputError, Issue

__all__ = [
    "CELL_SEP",
    "MODEL_PARTS",
    "ColumnRule",
    "FunnelSpec",
    "ModelOptions",
    "SourceJoin",
    "SourceMapping",
    "cell_label",
    "load_spec",
    "parse_spec",
]

CELL_SEP = "/"

MODEL_PARTS = ("conversion", "arrivals", "deal_size")
"""The fit's model parts (one PyMC model each), in seeding order."""

_PART_KEYS = ("target_accept", "mass_matrix")
"""Sampler options that ``[model.parts.<part>]`` may set for one part."""
_RESERVED = {"id", "lost", "amount", "total"}


def cell_label(values: tuple[str, ...] | list[str]) -> str:
    """Join ``segment_by`` values into a cell label (``"mid/webinar"``)."""
    return CELL_SEP.join(str(v) for v in values)


@dataclass(frozen=True)
class ColumnRule:
    """How one canonical column is read from a source export.

    Parameters
    ----------
    column : str
        Source column to read.
    when : dict of str to tuple of str
        Keep the value only on rows where each named source column holds one
        of the listed values (else blank), e.g. ``{"deal_stage": ("Won",)}``.
    """

    column: str
    when: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class SourceJoin:
    """A lookup file joined onto the main export.

    Parameters
    ----------
    file : str
        Path relative to the main data file's folder.
    on : str
        Key column present in both files.
    """

    file: str
    on: str


@dataclass(frozen=True)
class SourceMapping:
    """Mapping from a source export's names and formats to canonical records.

    Parameters
    ----------
    columns : dict of str to ColumnRule
        Canonical column name to the rule that fills it.
    joins : tuple of SourceJoin
        Lookup files joined (left join, in order) before mapping.
    date_format : str or None
        ``strptime`` format of the source's dates (``"%m/%d/%Y"``); ``None``
        for ISO 8601.
    exclude : dict of str to tuple of str
        Rows whose source column holds one of these values are not units of
        the funnel (they have not entered it) and are dropped.
    replace : dict of str to dict of str to str
        Value replacements per source column, applied before joins (e.g.
        ``{"product": {"GTXPro": "GTX Pro"}}``).
    """

    columns: dict[str, ColumnRule]
    joins: tuple[SourceJoin, ...] = ()
    date_format: str | None = None
    exclude: dict[str, tuple[str, ...]] = field(default_factory=dict)
    replace: dict[str, dict[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelOptions:
    """Model and sampler options of a spec (``[model]`` table).

    Parameters
    ----------
    drift : bool
        Let step conversion rates drift over time (random walk on the logit
        rate over periods of ``drift_period_days``).
    drift_period_days : int
        Length of one drift period (91 days: quarters).
    arrival_trend : bool
        Fit a log-linear trend in weekly arrivals.
    arrival_history_weeks : int
        Weeks of history before the as-of date used for the arrival model.
    left_truncated : bool
        The export only holds units still open on its first recorded close
        (a left-truncated file): fit conversions, delays and losses only on
        units that entered on or after that date, and start the arrival
        window there (``simengine.fitting.data.first_exit``).
    draws, tune, chains : int
        Sampler settings (per chain).
    target_accept : float
        NUTS target acceptance rate.
    sampler : str
        ``"nutpie"`` or ``"pymc"``.
    mass_matrix : str
        ``"diag"`` (the default: a diagonal mass matrix adapted in tuning) or
        ``"low_rank"`` (nutpie only: diagonal plus a low-rank correction that
        adapts to strongly correlated parameters, such as a drifting rate's
        anchor and its random-walk steps; slower per draw).
    priors : dict of str to float
        Overrides of the named prior scales in ``simengine.fitting.priors``.
    parts : dict of str to dict
        Per-part sampler options (``[model.parts.<part>]``, part one of
        :data:`MODEL_PARTS`, keys ``target_accept`` and ``mass_matrix``)
        that override the ones above for that part's model.
    deal_size_centred_min_deals : float or None
        ``None`` (TOML ``"auto"``, the default): each cell's deal-size log-sd
        is sampled centred or not by how informative its amounts are
        (``simengine.fitting.deal_size.centring``). Expert override: a number
        centres the cells with at least that many won amounts; ``inf`` none.
    delay_centred_min_delays : float or None
        ``None`` (``"auto"``, the default): log-median delay levels centred
        or not from the data (``simengine.fitting.conversion.centring``). A
        number centres them when every cell and step has that many delays;
        ``inf`` never.
    """

    drift: bool = True
    drift_period_days: int = 91
    arrival_trend: bool = True
    arrival_history_weeks: int = 52
    left_truncated: bool = False
    draws: int = 1000
    tune: int = 1000
    chains: int = 4
    target_accept: float = 0.9
    sampler: str = "nutpie"
    mass_matrix: str = "diag"
    priors: dict[str, float] = field(default_factory=dict)
    parts: dict[str, dict[str, Any]] = field(default_factory=dict)
    deal_size_centred_min_deals: float | None = None
    delay_centred_min_delays: float | None = None


@dataclass(frozen=True)
class FunnelSpec:
    """A funnel: ordered stages, cells, pipeline stage, mapping and options.

    Parameters
    ----------
    name : str
        Short name of the funnel.
    stages : tuple of str
        Ordered stage names; the last is the revenue event (closed-won).
    segment_by : tuple of str
        Columns defining cells; the first is the reporting segment.
    pipeline_stage : str
        First stage at which a unit counts as open pipeline.
    source : SourceMapping or None
        How to read a source export; ``None`` if data come canonical.
    options : ModelOptions
        Model and sampler options.
    text : str
        The TOML text the spec was read from (hashed for provenance).
    path : str or None
        Where it was read from.
    """

    name: str
    stages: tuple[str, ...]
    segment_by: tuple[str, ...] = ("segment",)
    pipeline_stage: str = "opportunity"
    source: SourceMapping | None = None
    options: ModelOptions = field(default_factory=ModelOptions)
    text: str = ""
    path: str | None = None

    @property
    def steps(self) -> tuple[str, ...]:
        """Step labels: the stage each step leads to (``stages[1:]``)."""
        return self.stages[1:]

    @property
    def stage_columns(self) -> tuple[str, ...]:
        """Canonical date columns, ``f"{stage}_at"`` in stage order."""
        return tuple(f"{s}_at" for s in self.stages)

    @property
    def last_stage(self) -> str:
        """The revenue event (closed-won) stage."""
        return self.stages[-1]

    @property
    def segment_column(self) -> str:
        """The reporting segment column (first of ``segment_by``)."""
        return self.segment_by[0]

    @property
    def pipeline_index(self) -> int:
        """Index of :attr:`pipeline_stage` in :attr:`stages`."""
        return self.stages.index(self.pipeline_stage)

    @property
    def canonical_columns(self) -> tuple[str, ...]:
        """All canonical record columns in their documented order."""
        return ("id", *self.segment_by, *self.stage_columns, "lost_at", "amount")

    def stage_index(self, stage: str) -> int:
        """Return the position of ``stage``; raise ``KeyError`` if unknown."""
        try:
            return self.stages.index(stage)
        except ValueError:
            raise KeyError(f"unknown stage {stage!r}; stages are {list(self.stages)}") from None

    @property
    def sha256(self) -> str:
        """SHA-256 of the spec's TOML text."""
        return hashlib.sha256(self.text.encode()).hexdigest()


def load_spec(path: str | Path) -> FunnelSpec:
    """Read and check a funnel spec TOML file.

    Parameters
    ----------
    path : str or Path
        The ``.toml`` file.

    Returns
    -------
    FunnelSpec

    Raises
    ------
    InputError
        If the file is missing, not TOML, or breaks a rule of the format.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError.single(p, f"cannot read the spec file: {exc.strerror or exc}") from None
    return parse_spec(text, source=str(p))


def _str_tuple(v: Any, where: str, file: str, issues: list[Issue]) -> tuple[str, ...]:
    if isinstance(v, str):
        return (v,)
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return tuple(v)
    issues.append(Issue(file, None, where, repr(v), "must be a string or a list of strings"))
    return ()


def parse_spec(text: str, source: str = "<spec>") -> FunnelSpec:
    """Parse spec TOML text; see :func:`load_spec`."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError.single(source, f"not valid TOML: {exc}") from None
    issues: list[Issue] = []
    known = {"name", "description", "stages", "segment_by", "pipeline_stage", "source", "model"}
    for key in raw:
        if key not in known:
            issues.append(Issue(source, None, key, "", f"unknown key; known keys: {sorted(known)}"))

    stages = _str_tuple(raw.get("stages", []), "stages", source, issues)
    if len(stages) < 2:
        issues.append(
            Issue(source, None, "stages", repr(list(stages)), "needs at least two stages")
        )
    if len(set(stages)) != len(stages):
        issues.append(
            Issue(source, None, "stages", repr(list(stages)), "stage names must be unique")
        )
    for s in stages:
        if not s.isidentifier() or s != s.lower() or s in _RESERVED:
            issues.append(
                Issue(
                    source,
                    None,
                    "stages",
                    s,
                    "stage names must be lower-case identifiers, not id/lost/amount/total",
                )
            )
    segment_by = _str_tuple(raw.get("segment_by", ["segment"]), "segment_by", source, issues)
    if not segment_by:
        issues.append(Issue(source, None, "segment_by", "", "needs at least one column"))
    for col in segment_by:
        if col in _RESERVED or col.endswith("_at"):
            issues.append(Issue(source, None, "segment_by", col, "clashes with a canonical column"))
    pipeline_stage = raw.get("pipeline_stage", "opportunity")
    if stages and pipeline_stage not in stages:
        issues.append(
            Issue(
                source,
                None,
                "pipeline_stage",
                str(pipeline_stage),
                f"must be one of the stages {list(stages)}",
            )
        )
    elif stages and pipeline_stage == stages[-1]:
        issues.append(
            Issue(
                source,
                None,
                "pipeline_stage",
                str(pipeline_stage),
                "cannot be the last (closed-won) stage",
            )
        )

    options = _parse_options(raw.get("model", {}), source, issues)
    mapping = None
    if "source" in raw:
        canonical = {"id", *segment_by, *(f"{s}_at" for s in stages), "lost_at", "amount"}
        mapping = _parse_source(raw["source"], canonical, source, issues)

    if issues:
        raise InputError(issues, summary=f"invalid funnel spec {source}")
    return FunnelSpec(
        name=str(raw.get("name", Path(source).stem)),
        stages=stages,
        segment_by=segment_by,
        pipeline_stage=str(pipeline_stage),
        source=mapping,
        options=options,
        text=text,
        path=source,
    )


_AUTO_KEYS = ("deal_size_centred_min_deals", "delay_centred_min_delays")
"""``[model]`` options that also accept ``"auto"`` (centring chosen from the data)."""


def _parse_options(raw: Any, file: str, issues: list[Issue]) -> ModelOptions:
    if not isinstance(raw, dict):
        issues.append(Issue(file, None, "model", repr(raw), "must be a table"))
        return ModelOptions()
    defaults = ModelOptions()
    kwargs: dict[str, Any] = {}
    types: dict[str, type] = {
        "drift": bool,
        "drift_period_days": int,
        "arrival_trend": bool,
        "arrival_history_weeks": int,
        "left_truncated": bool,
        "draws": int,
        "tune": int,
        "chains": int,
        "target_accept": float,
        "sampler": str,
        "mass_matrix": str,
        "priors": dict,
        "parts": dict,
        "deal_size_centred_min_deals": float,
        "delay_centred_min_delays": float,
    }
    for key, value in raw.items():
        if key not in types:
            issues.append(
                Issue(file, None, f"model.{key}", "", f"unknown option; known: {sorted(types)}")
            )
            continue
        want = types[key]
        if key in _AUTO_KEYS and value == "auto":
            kwargs[key] = None
            continue
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, want) or (want is int and isinstance(value, bool)):
            issues.append(
                Issue(file, None, f"model.{key}", repr(value), f"must be of type {want.__name__}")
            )
            continue
        kwargs[key] = value
    parts = _parse_parts(kwargs.pop("parts", {}), file, issues)
    opts = ModelOptions(**{**defaults.__dict__, **kwargs, "parts": parts})
    if opts.sampler not in ("nutpie", "pymc"):
        issues.append(
            Issue(file, None, "model.sampler", opts.sampler, "must be 'nutpie' or 'pymc'")
        )
    _check_sampler_options(
        file, "model", opts.target_accept, opts.mass_matrix, opts.sampler, issues
    )
    for part, own in parts.items():
        _check_sampler_options(
            file,
            f"model.parts.{part}",
            own.get("target_accept", 0.9),
            own.get("mass_matrix", "diag"),
            opts.sampler,
            issues,
        )
    for key in _AUTO_KEYS:
        if getattr(opts, key) is not None and not getattr(opts, key) >= 0:  # also NaN
            issues.append(
                Issue(
                    file,
                    None,
                    f"model.{key}",
                    str(getattr(opts, key)),
                    "must be >= 0 (inf: every cell non-centred) or \"auto\"",
                )
            )
    for key in ("drift_period_days", "arrival_history_weeks", "draws", "tune", "chains"):
        if getattr(opts, key) < 1:
            issues.append(
                Issue(file, None, f"model.{key}", str(getattr(opts, key)), "must be >= 1")
            )
    for k, v in opts.priors.items():
        if not isinstance(v, int | float) or isinstance(v, bool) or v <= 0:
            issues.append(
                Issue(file, None, f"model.priors.{k}", repr(v), "must be a positive number")
            )
    return opts


def _parse_parts(raw: dict[str, Any], file: str, issues: list[Issue]) -> dict[str, dict[str, Any]]:
    """Read ``[model.parts.<part>]`` tables (types only; values checked by the caller)."""
    out: dict[str, dict[str, Any]] = {}
    for part, table in raw.items():
        where = f"model.parts.{part}"
        if part not in MODEL_PARTS:
            issues.append(Issue(file, None, where, "", f"unknown part; known: {list(MODEL_PARTS)}"))
            continue
        if not isinstance(table, dict):
            issues.append(Issue(file, None, where, repr(table), "must be a table"))
            continue
        own: dict[str, Any] = {}
        for key, value in table.items():
            if key not in _PART_KEYS:
                issues.append(
                    Issue(
                        file,
                        None,
                        f"{where}.{key}",
                        "",
                        f"unknown option; known: {list(_PART_KEYS)}",
                    )
                )
            elif key == "target_accept" and (
                isinstance(value, bool) or not isinstance(value, int | float)
            ):
                issues.append(Issue(file, None, f"{where}.{key}", repr(value), "must be a number"))
            elif key == "mass_matrix" and not isinstance(value, str):
                issues.append(Issue(file, None, f"{where}.{key}", repr(value), "must be a string"))
            else:
                own[key] = float(value) if key == "target_accept" else value
        out[part] = own
    return out


def _check_sampler_options(
    file: str,
    where: str,
    target_accept: float,
    mass_matrix: str,
    sampler: str,
    issues: list[Issue],
) -> None:
    """Check one ``target_accept`` / ``mass_matrix`` pair (``[model]`` or a part)."""
    if not 0.5 <= target_accept < 1:
        issues.append(
            Issue(file, None, f"{where}.target_accept", str(target_accept), "must be in [0.5, 1)")
        )
    if mass_matrix not in ("diag", "low_rank"):
        issues.append(
            Issue(file, None, f"{where}.mass_matrix", mass_matrix, "must be 'diag' or 'low_rank'")
        )
    elif mass_matrix == "low_rank" and sampler != "nutpie":
        issues.append(
            Issue(
                file,
                None,
                f"{where}.mass_matrix",
                mass_matrix,
                "'low_rank' needs sampler = 'nutpie' (PyMC's NUTS adapts a diagonal one)",
            )
        )


def _parse_source(
    raw: Any, canonical: set[str], file: str, issues: list[Issue]
) -> SourceMapping | None:
    if not isinstance(raw, dict):
        issues.append(Issue(file, None, "source", repr(raw), "must be a table"))
        return None
    columns: dict[str, ColumnRule] = {}
    for name, rule in raw.get("columns", {}).items():
        if name not in canonical:
            issues.append(
                Issue(
                    file,
                    None,
                    f"source.columns.{name}",
                    "",
                    f"not a canonical column; canonical: {sorted(canonical)}",
                )
            )
            continue
        if isinstance(rule, str):
            rule = {"column": rule}
        if not isinstance(rule, dict) or not isinstance(rule.get("column"), str):
            issues.append(
                Issue(
                    file,
                    None,
                    f"source.columns.{name}",
                    repr(rule),
                    "must be a column name or a table with 'column' (and optional 'when')",
                )
            )
            continue
        when = {
            k: _str_tuple(v, f"source.columns.{name}.when.{k}", file, issues)
            for k, v in rule.get("when", {}).items()
        }
        columns[name] = ColumnRule(column=rule["column"], when=when)
    for required in ("id",):
        if required not in columns:
            issues.append(
                Issue(
                    file, None, "source.columns", "", f"must map the canonical column {required!r}"
                )
            )
    joins = []
    for j, join in enumerate(raw.get("join", [])):
        if not isinstance(join, dict) or not {"file", "on"} <= set(join):
            issues.append(
                Issue(file, None, f"source.join[{j}]", repr(join), "needs 'file' and 'on'")
            )
            continue
        joins.append(SourceJoin(file=str(join["file"]), on=str(join["on"])))
    exclude = {
        k: _str_tuple(v, f"source.exclude.{k}", file, issues)
        for k, v in raw.get("exclude", {}).items()
    }
    replace: dict[str, dict[str, str]] = {}
    for k, v in raw.get("replace", {}).items():
        if not isinstance(v, dict) or not all(isinstance(x, str) for x in v.values()):
            issues.append(
                Issue(file, None, f"source.replace.{k}", repr(v), "must map strings to strings")
            )
            continue
        replace[k] = dict(v)
    date_format = raw.get("date_format")
    if date_format is not None and not isinstance(date_format, str):
        issues.append(
            Issue(file, None, "source.date_format", repr(date_format), "must be a strptime format")
        )
        date_format = None
    return SourceMapping(
        columns=columns,
        joins=tuple(joins),
        date_format=date_format,
        exclude=exclude,
        replace=replace,
    )
