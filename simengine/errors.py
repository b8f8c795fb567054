"""Errors raised on bad input, and the row-level report they carry.

Every user-facing input problem (records, specs, plans, assumption and
scenario files) is raised as :class:`InputError`, which carries a list of
:class:`Issue` rows naming the file, row, column, value and rule broken. The
CLI prints the report and exits with status 2; nothing is written.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ConvergenceError", "InputError", "Issue"]


@dataclass(frozen=True)
class Issue:
    """One broken rule at one place of one input file.

    Parameters
    ----------
    file : str
        The file the problem is in (as given by the user).
    row : int or None
        1-based data row number as a spreadsheet shows it (the header is row 1,
        so the first record is row 2); ``None`` where the rule is about the
        whole file.
    column : str or None
        The column (canonical or source name), or the key in a TOML file.
    value : str
        The offending value as text (``""`` if blank).
    rule : str
        The rule, in words a user can act on.
    """

    file: str
    row: int | None
    column: str | None
    value: str
    rule: str

    def format(self) -> str:
        """Return the issue as one human-readable line."""
        where = self.file
        if self.row is not None:
            where += f", row {self.row}"
        if self.column is not None:
            where += f", column {self.column!r}"
        value = f" (value {self.value!r})" if self.value != "" else ""
        return f"{where}: {self.rule}{value}"


class InputError(ValueError):
    """Bad user input, with every failing place listed.

    Parameters
    ----------
    issues : iterable of Issue
        The problems found; at least one.
    summary : str, optional
        A one-line headline; defaults to a count of the issues.
    """

    def __init__(self, issues: Iterable[Issue], summary: str | None = None) -> None:
        self.issues: list[Issue] = list(issues)
        if not self.issues:
            raise ValueError("InputError needs at least one Issue")
        files = sorted({i.file for i in self.issues})
        self.summary = summary or (f"{len(self.issues)} problem(s) in {', '.join(files)}")
        super().__init__(self.report())

    @classmethod
    def single(
        cls,
        file: str | Path,
        rule: str,
        *,
        row: int | None = None,
        column: str | None = None,
        value: object = "",
    ) -> InputError:
        """Build an error with one issue."""
        return cls([Issue(str(file), row, column, "" if value is None else str(value), rule)])

    def report(self, limit: int | None = None) -> str:
        """Return the multi-line report: a headline, then one line per issue."""
        shown = self.issues if limit is None else self.issues[:limit]
        lines = [self.summary, *("  - " + i.format() for i in shown)]
        if limit is not None and len(self.issues) > limit:
            lines.append(f"  ... and {len(self.issues) - limit} more")
        return "\n".join(lines)


class ConvergenceError(RuntimeError):
    """A fit missed the convergence gate (r_hat, ESS, divergences or BFMI).

    Parameters
    ----------
    message : str
        Which parameters failed which check, and what to try.
    failures : list of str
        One entry per failed check, for programmatic use.
    """

    def __init__(self, message: str, failures: list[str]) -> None:
        super().__init__(message)
        self.failures = failures
