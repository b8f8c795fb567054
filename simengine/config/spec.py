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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import BeforeValidator, ConfigDict
from pydantic import Field as PydanticField
from pydantic.dataclasses import dataclass as pydantic_dataclass
from pydantic_core import PydanticCustomError

from simengine.config import tables
from simengine.config.tables import STRICT, Strings, Table, is_number, rule
from simengine.errors import InputError, Issue

__all__ = [
    "CELL_SEP",
    "MASS_MATRICES",
    "MODEL_PARTS",
    "SAMPLERS",
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

_RESERVED = {"id", "lost", "amount", "total"}


def cell_label(values: tuple[str, ...] | list[str]) -> str:
    """Join ``segment_by`` values into a cell label (``"mid/webinar"``)."""
    return CELL_SEP.join(str(v) for v in values)


# ---------------------------------------------------------------- [source]


def _as_column_rule(v: Any) -> Any:
    if isinstance(v, str):
        return {"column": v}
    if isinstance(v, dict) and isinstance(v.get("column"), str):
        return v
    raise PydanticCustomError(
        "simengine_rule", "must be a column name or a table with 'column' (and optional 'when')"
    )


def _as_tuple(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


class ColumnRule(Table):
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
    when: dict[str, Strings] = PydanticField(default_factory=dict)


class SourceJoin(Table):
    """A lookup file joined onto the main export (``[[source.join]]``).

    Parameters
    ----------
    file : str
        Path relative to the main data file's folder.
    on : str
        Key column present in both files.
    """

    file: str
    on: str


class SourceMapping(Table):
    """Mapping from a source export's names and formats to canonical records (``[source]``).

    Parameters
    ----------
    columns : dict of str to ColumnRule
        Canonical column name to the rule that fills it (TOML: a source
        column name, or a table with ``column`` and ``when``).
    joins : tuple of SourceJoin
        Lookup files joined (left join, in order) before mapping (TOML:
        ``[[source.join]]``).
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

    model_config = ConfigDict(**STRICT, frozen=True, populate_by_name=True)

    columns: dict[str, Annotated[ColumnRule, BeforeValidator(_as_column_rule)]] = PydanticField(
        default_factory=dict
    )
    joins: Annotated[tuple[SourceJoin, ...], BeforeValidator(_as_tuple)] = PydanticField(
        default=(), alias="join"
    )
    date_format: Annotated[
        str | None, rule(lambda v: v is None or isinstance(v, str), "must be a strptime format")
    ] = None
    exclude: dict[str, Strings] = PydanticField(default_factory=dict)
    replace: dict[
        str,
        Annotated[
            dict[str, str],
            rule(
                lambda v: isinstance(v, dict) and all(isinstance(x, str) for x in v.values()),
                "must map strings to strings",
            ),
        ],
    ] = PydanticField(default_factory=dict)


# ---------------------------------------------------------------- [model]

SAMPLERS = ("nutpie", "pymc")
"""The samplers a fit can use (``[model] sampler``)."""
MASS_MATRICES = ("diag", "low_rank")
"""NUTS mass matrices (``[model] mass_matrix``; ``low_rank`` is nutpie's)."""

_AtLeastOne = Annotated[int, rule(lambda v: v >= 1, "must be >= 1", after=True)]
_TargetAccept = Annotated[float, rule(lambda v: 0.5 <= v < 1, "must be in [0.5, 1)", after=True)]
_MassMatrix = Annotated[
    str, rule(lambda v: v in MASS_MATRICES, "must be 'diag' or 'low_rank'", after=True)
]
_Threshold = Annotated[
    float | None,  # None = "auto"; NaN fails v >= 0
    rule(
        lambda v: v is None or v >= 0,
        'must be >= 0 (inf: every cell non-centred) or "auto"',
        after=True,
    ),
    BeforeValidator(lambda v: None if v == "auto" else v),
]


class _PartOptions(Table):
    """``[model.parts.<part>]``: sampler options of one model part."""

    unknown_key_noun: ClassVar[str] = "option"

    target_accept: Annotated[
        _TargetAccept | None, rule(lambda v: v is None or is_number(v), "must be a number")
    ] = None
    mass_matrix: Annotated[
        _MassMatrix | None, rule(lambda v: v is None or isinstance(v, str), "must be a string")
    ] = None


class _Parts(Table):
    """``[model.parts]``: one optional table per part of :data:`MODEL_PARTS`."""

    unknown_key_noun: ClassVar[str] = "part"

    conversion: _PartOptions | None = None
    arrivals: _PartOptions | None = None
    deal_size: _PartOptions | None = None

    def as_dict(self) -> dict[str, dict[str, float | str]]:
        """Return the parts given, each with the options it sets."""
        return {
            p: own.model_dump(exclude_none=True)
            for p in MODEL_PARTS
            if (own := getattr(self, p)) is not None
        }


@pydantic_dataclass(frozen=True, config=STRICT)
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
    left_truncated : bool, optional
        The export only holds units still open on its first recorded close
        (a left-truncated file): fit conversions, delays and losses only on
        units that entered on or after that date, and start the arrival
        window there (``simengine.fitting.data.first_exit``). Absent (the
        default): detected from the data at each as-of date
        (``simengine.fitting.data.detect_left_truncation``); ``true`` or
        ``false`` overrides the detection.
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

    Notes
    -----
    This is the one settings model of a fit, with its one set of defaults:
    the spec's ``[model]`` table is validated by it, and
    :class:`simengine.fitting.fit.FitSettings` extends it (with the priors
    resolved) for the fit.
    """

    unknown_key_noun: ClassVar[str] = "option"

    drift: bool = True
    drift_period_days: _AtLeastOne = 91
    arrival_trend: bool = True
    arrival_history_weeks: _AtLeastOne = 52
    left_truncated: bool | None = None
    draws: _AtLeastOne = 1000
    tune: _AtLeastOne = 1000
    chains: _AtLeastOne = 4
    target_accept: _TargetAccept = 0.9
    sampler: Annotated[
        str, rule(lambda v: v in SAMPLERS, "must be 'nutpie' or 'pymc'", after=True)
    ] = "nutpie"
    mass_matrix: _MassMatrix = "diag"
    priors: dict[
        str, Annotated[float, rule(lambda v: is_number(v) and v > 0, "must be a positive number")]
    ] = field(default_factory=dict)
    parts: dict[str, dict[str, float | str]] = field(default_factory=dict)
    deal_size_centred_min_deals: _Threshold = None
    delay_centred_min_delays: _Threshold = None

    def for_part(self, part: str) -> tuple[float, str]:
        """Return ``(target_accept, mass_matrix)`` for one model part."""
        own = self.parts.get(part, {})
        return (
            float(own.get("target_accept", self.target_accept)),
            str(own.get("mass_matrix", self.mass_matrix)),
        )


@dataclass(frozen=True)
class FunnelSpec:
    """A funnel: ordered stages, cells, pipeline stage, mapping and options.

    The spec names its own stages, in funnel order; every model, kernel and
    report follows that order, and cells are the distinct values of the
    ``segment_by`` columns.

    Attributes
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
        How to read a source export (``None``: the data are canonical
        records already).
    options : ModelOptions
        Model and sampler options.
    text : str
        The TOML text the spec was read from, hashed for provenance.
    path : str or None
        The file it was read from.
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

    The file is read as UTF-8 TOML and handed to :func:`parse_spec`, which
    names the file in every error.

    Parameters
    ----------
    path : str or Path
        The spec's ``.toml`` file.

    Returns
    -------
    FunnelSpec
        The checked spec, with its text kept for provenance.

    Raises
    ------
    InputError
        If the file is missing, not TOML, or breaks a rule of the format.
    """
    return parse_spec(tables.read_text(path, "spec"), source=str(Path(path)))


class _SpecFile(Table):
    """The top level of a spec file (tables checked by their own models)."""

    name: str | None = None
    description: str | None = None
    stages: Strings = ()
    segment_by: Strings = ("segment",)
    pipeline_stage: str = "opportunity"
    source: dict[str, Any] | None = None
    model: dict[str, Any] = PydanticField(default_factory=dict)


def parse_spec(text: str, source: str = "<spec>") -> FunnelSpec:
    """Parse spec TOML text; see :func:`load_spec`."""
    raw = tables.toml_table(text, source)
    issues: list[Issue] = []
    top = tables.validate(_SpecFile, raw, source, issues, salvage=True) or _SpecFile()

    def bad(column: str, value: str, words: str) -> None:
        issues.append(Issue(source, None, column, value, words))

    stages = top.stages
    if len(stages) < 2 and ("stages" in top.model_fields_set or "stages" not in raw):
        bad("stages", repr(list(stages)), "needs at least two stages")
    if len(set(stages)) != len(stages):
        bad("stages", repr(list(stages)), "stage names must be unique")
    for s in stages:
        if not s.isidentifier() or s != s.lower() or s in _RESERVED:
            bad("stages", s, "stage names must be lower-case identifiers, not id/lost/amount/total")
    if not top.segment_by:
        bad("segment_by", "", "needs at least one column")
    for col in top.segment_by:
        if col in _RESERVED or col.endswith("_at"):
            bad("segment_by", col, "clashes with a canonical column")
    if stages and top.pipeline_stage not in stages:
        bad("pipeline_stage", top.pipeline_stage, f"must be one of the stages {list(stages)}")
    elif stages and top.pipeline_stage == stages[-1]:
        bad("pipeline_stage", top.pipeline_stage, "cannot be the last (closed-won) stage")

    options = _parse_options(top.model, source, issues)
    mapping = None
    if top.source is not None:
        mapping = tables.validate(SourceMapping, top.source, source, issues, where="source")
        canonical = {"id", *top.segment_by, *(f"{s}_at" for s in stages), "lost_at", "amount"}
        for name in mapping.columns if mapping else ():
            if name not in canonical:
                bad(
                    f"source.columns.{name}",
                    "",
                    f"not a canonical column; canonical: {sorted(canonical)}",
                )
        if mapping and "id" not in mapping.columns:
            bad("source.columns", "", "must map the canonical column 'id'")

    if issues:
        raise InputError(issues, summary=f"invalid funnel spec {source}")
    return FunnelSpec(
        name=top.name or Path(source).stem,
        stages=stages,
        segment_by=top.segment_by,
        pipeline_stage=top.pipeline_stage,
        source=mapping,
        options=options,
        text=text,
        path=source,
    )


def _parse_options(raw: dict[str, Any], file: str, issues: list[Issue]) -> ModelOptions:
    """Validate ``[model]`` and its ``[model.parts.*]``; check the sampler's options together."""
    table = dict(raw)
    parts = tables.validate(_Parts, table.pop("parts", {}), file, issues, where="model.parts")
    table["parts"] = parts.as_dict() if parts is not None else {}
    opts = tables.validate(ModelOptions, table, file, issues, where="model")
    if opts is None:
        return ModelOptions()
    mass = {"model": opts.mass_matrix} | {
        f"model.parts.{p}": str(own["mass_matrix"])
        for p, own in opts.parts.items()
        if "mass_matrix" in own
    }
    for where, mm in mass.items():
        if mm == "low_rank" and opts.sampler != "nutpie":
            issues.append(
                Issue(
                    file,
                    None,
                    f"{where}.mass_matrix",
                    mm,
                    "'low_rank' needs sampler = 'nutpie' (PyMC's NUTS adapts a diagonal one)",
                )
            )
    return opts
