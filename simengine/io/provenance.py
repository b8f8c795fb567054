"""Provenance: package versions and file hashes recorded in every output."""

from __future__ import annotations

import hashlib
from importlib import metadata
from pathlib import Path

__all__ = ["file_sha256", "package_versions"]

_PACKAGES = ("simengine", "numpy", "numba", "pymc", "pytensor", "arviz", "xarray", "pandas")


def package_versions() -> dict[str, str]:
    """Return ``{package: version}`` for simengine and its numerical stack."""
    out = {}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def file_sha256(path: str | Path) -> str:
    """Return the SHA-256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
