"""Typed TOML tables: read a file, validate its tables with pydantic, report Issue rows.

Every configuration file (spec, plan, assumptions, scenarios) is a TOML
document whose tables are described by pydantic models (dataclasses or
:class:`Table` models) with ``extra="forbid"`` and strict types, so that a
TOML ``true`` is not a number and text is not a count. :func:`validate`
runs one model over one table and turns each pydantic error into an
:class:`~simengine.errors.Issue` naming the file, the dotted key
(``model.parts.deal_size.target_accept``, ``scenario[2].shock[1].value``),
the value and the rule in words. A field whose rule needs words of its own
says so with :func:`rule` (a check run before the type check) so the report
reads "must be a positive number" rather than pydantic's message.

Checks that relate several keys (a pipeline stage must be one of the stages)
stay in the modules that own the files; they append to the same issue list,
so one report lists every problem of a file at once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import numbers
import tomllib
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar, cast

import numpy as np
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, ValidationError
from pydantic_core import PydanticCustomError

from simengine.errors import InputError, Issue

__all__ = [
    "STRICT",
    "Date",
    "Strings",
    "Table",
    "finite",
    "is_number",
    "non_empty",
    "number",
    "read_text",
    "rule",
    "toml_table",
    "validate",
]

T = TypeVar("T")

STRICT = ConfigDict(extra="forbid", strict=True)
"""Configuration of every table's model: unknown keys are errors, no coercion."""

_TYPE_NAMES = {
    "int_type": "int",
    "int_from_float": "int",
    "float_type": "float",
    "bool_type": "bool",
    "string_type": "str",
    "dict_type": "table",
    "model_type": "table",
    "dataclass_type": "table",
    "list_type": "list",
    "tuple_type": "list",
    "date_type": "date",
}
"""Pydantic type errors, by type, as the type a user should write."""


class Table(BaseModel):
    """A TOML table: unknown keys are errors and values keep their TOML types."""

    model_config = ConfigDict(**STRICT, frozen=True)


def is_number(v: object) -> bool:
    """Whether ``v`` is a real number (a TOML int or float, a NumPy scalar; not a bool)."""
    return isinstance(v, numbers.Real) and not isinstance(v, bool | np.bool_)


def finite(v: object) -> bool:
    """Whether ``v`` is a finite real number (not a bool)."""
    return is_number(v) and math.isfinite(v)  # type: ignore[arg-type]


def number(check: Callable[[float], bool], words: str) -> BeforeValidator:
    """Return a validator that takes a real number passing ``check`` as a float.

    Anything else (text, a bool, NaN where ``check`` rejects it) is reported
    with the rule ``words``.
    """

    def run(v: Any) -> float:
        if not is_number(v) or not check(float(v)):
            raise PydanticCustomError("simengine_rule", words)
        return float(v)

    return BeforeValidator(run)


def rule(
    check: Callable[[Any], bool], words: str, *, after: bool = False
) -> BeforeValidator | AfterValidator:
    """Return a validator that rejects values failing ``check`` with the rule ``words``.

    By default it runs before the field's type check, so ``words`` is what
    the report says for a value of the wrong type too; with ``after`` it
    runs on a value of the right type (a wrong type then reads "must be of
    type float").
    """

    def run(v: Any) -> Any:
        if not check(v):
            raise PydanticCustomError("simengine_rule", words)
        return v

    return AfterValidator(run) if after else BeforeValidator(run)


def non_empty(words: str) -> BeforeValidator:
    """Return a validator that requires a non-empty table or array (else the rule ``words``).

    Give the field ``Field(default_factory=..., validate_default=True)`` so
    that a missing one is reported with ``words`` too.
    """

    def run(v: Any) -> Any:
        if not isinstance(v, dict | list) or len(v) == 0:
            raise PydanticCustomError("simengine_rule", words)
        return v

    return BeforeValidator(run)


def _as_strings(v: Any) -> Any:
    if isinstance(v, str):
        return (v,)
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return tuple(v)
    raise PydanticCustomError("simengine_rule", "must be a string or a list of strings")


Strings = Annotated[tuple[str, ...], BeforeValidator(_as_strings)]
"""A TOML string or list of strings, as a tuple."""


def _as_date(v: Any) -> Any:
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    if isinstance(v, str):
        try:
            return dt.date.fromisoformat(v)
        except ValueError:
            pass
    raise PydanticCustomError("simengine_rule", "must be a date (YYYY-MM-DD)")


Date = Annotated[dt.date, BeforeValidator(_as_date)]
"""A TOML date (or ISO 8601 text), as a :class:`datetime.date`."""


def read_text(path: str | Path, what: str) -> str:
    """Return a configuration file's text; an :class:`InputError` if it cannot be read."""
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError.single(p, f"cannot read the {what} file: {exc.strerror or exc}") from None


def toml_table(text: str, source: str) -> dict[str, Any]:
    """Parse TOML text; an :class:`InputError` naming ``source`` if it is not TOML."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError.single(source, f"not valid TOML: {exc}") from None


def validate(
    model: type[T],
    raw: Any,
    file: str,
    issues: list[Issue],
    *,
    where: str = "",
    salvage: bool = False,
) -> T | None:
    """Validate one table against ``model``; on failure append issues and return ``None``.

    Parameters
    ----------
    model : type
        A pydantic model or dataclass.
    raw : object
        The table as TOML parsed it.
    file : str
        The file it came from (named in the issues).
    issues : list of Issue
        Where problems are appended.
    where : str
        Dotted key of the table in its file (``""`` at the top level); array
        positions count from 1 (``scenario[1]`` is the first scenario).
    salvage : bool
        On failure, return the table validated without its bad keys (their
        defaults in their place) so that checks across keys can still run
        and report; ``None`` if that fails too.
    """
    if not isinstance(raw, dict):
        issues.append(Issue(file, None, where or None, _text(raw), "must be a table"))
        return None
    try:
        return _construct(model, raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
    issues.extend(_issue(model, err, file, where) for err in errors)
    if salvage:
        bad = {err["loc"][0] for err in errors if err["loc"]}
        try:
            return _construct(model, {k: v for k, v in raw.items() if k not in bad})
        except ValidationError:
            pass
    return None


def _construct(model: type[T], raw: dict[str, Any]) -> T:
    if dataclasses.is_dataclass(model):
        # a pydantic dataclass validates its fields (strictly) on construction
        return model(**raw)
    return cast("T", cast("type[BaseModel]", model).model_validate(raw))


_UNKNOWN = ("extra_forbidden", "unexpected_keyword_argument")
_MISSING = ("missing", "missing_argument", "missing_keyword_argument")


def _issue(model: type, err: Any, file: str, where: str) -> Issue:
    loc: tuple[int | str, ...] = err["loc"]
    column = where
    for part in loc:
        if isinstance(part, int):
            column += f"[{part + 1}]"
        else:
            column = f"{column}.{part}" if column else str(part)
    kind = err["type"]
    value = "" if kind in _UNKNOWN + _MISSING else _text(err.get("input"))
    if kind in _UNKNOWN:
        owner = _annotation_at(model, loc[:-1])
        known = sorted(_field_names(owner))
        noun = getattr(owner, "unknown_key_noun", "key")
        if noun == "key":
            words = f"unknown key; known keys: {known}"
        else:
            words = f"unknown {noun}; known: {known}"
    elif kind in _MISSING:
        words = "is required"
    elif kind in _TYPE_NAMES:
        words = f"must be of type {_TYPE_NAMES[kind]}"
    elif kind == "value_error":
        words = str(err["ctx"]["error"])
    else:
        words = str(err["msg"])
    return Issue(file, None, column or None, value, words)


def _text(v: Any) -> str:
    if v is None:
        return ""
    return repr(v) if isinstance(v, dict | list) else str(v)


def _field_names(tp: Any) -> list[str]:
    """Return the keys a table model accepts (a field's alias where it has one)."""
    fields = getattr(tp, "__pydantic_fields__", None) or {}
    return [f.alias or name for name, f in fields.items()]


def _unwrap(tp: Any) -> Any:
    """Strip ``Annotated`` and ``X | None`` down to the table type."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            tp = args[0]
        else:
            return tp


def _annotation_at(model: Any, loc: tuple[int | str, ...]) -> Any:
    """Return the table type at ``loc`` inside ``model`` (whose keys an unknown key is not)."""
    tp = _unwrap(model)
    hints_cache: dict[Any, dict[str, Any]] = {}
    for part in loc:
        fields = _field_names(tp)
        if fields and isinstance(part, str):
            if tp not in hints_cache:
                hints_cache[tp] = typing.get_type_hints(tp, include_extras=True)
            tp = _unwrap(hints_cache[tp].get(part, Any))
        elif typing.get_origin(tp) in (dict, list, tuple):
            tp = _unwrap(typing.get_args(tp)[-1 if typing.get_origin(tp) is dict else 0])
        else:
            return tp
    return tp
