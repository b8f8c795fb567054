"""Atomic output files and folders: a failed run leaves nothing behind.

Every writer in simengine (forecasts, posteriors, reports, exports, tables)
writes into a temporary sibling and renames it onto the target only when the
body finished, so a reader never sees a half-written output.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from simengine.errors import InputError

__all__ = ["atomic_dir", "atomic_file", "umask_mode"]


def umask_mode(mode: int) -> int:
    """Return ``mode`` with the process umask applied.

    ``tempfile`` creates 0600 files and 0700 folders; outputs get the mode
    any other file the user writes would get.
    """
    mask = os.umask(0)
    os.umask(mask)
    return mode & ~mask



@contextmanager
def atomic_dir(out: Path, *, force: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling directory that replaces ``out`` on success.

    Nothing is left at ``out`` if the body raises. An existing ``out`` is an
    error unless ``force``.
    """
    out = Path(out)
    if out.exists() and not force:
        raise InputError.single(out, "output exists; pass --force to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    os.chmod(tmp, umask_mode(0o777))  # mkdtemp makes 0700; outputs get the usual mode
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        old = out.with_name(f".{out.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(out)


@contextmanager
def atomic_file(out: Path, *, force: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling path that is renamed onto ``out`` on success."""
    out = Path(out)
    if out.exists() and not force:
        raise InputError.single(out, "output exists; pass --force to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=out.suffix, dir=out.parent)
    os.close(fd)
    tmp = Path(name)
    os.chmod(tmp, umask_mode(0o666))  # mkstemp makes 0600; outputs get the usual mode
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, out)
