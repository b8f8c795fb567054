"""The notebooks run top to bottom on the public API, and are committed without outputs."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = ["01-quickstart.ipynb", "02-real-crm.ipynb", "03-reforecast.ipynb"]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_without_outputs(repo_root: Path, name: str):
    nb = nbformat.read(repo_root / "notebooks" / name, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "a notebook without code"
    for cell in code:
        assert cell.outputs == []
        assert cell.execution_count is None
    # Only the public API: no private modules.
    src = "\n".join(c.source for c in code)
    assert "._" not in src.replace("__", "")


# 03 (the reforecast) runs in CI; 01 and 02 are `heavy` (make test-slow only).
RUNS = [
    pytest.param(n, marks=pytest.mark.heavy) if not n.startswith("03") else n for n in NOTEBOOKS
]


@pytest.mark.slow
@pytest.mark.parametrize("name", RUNS)
def test_notebook_runs(repo_root: Path, name: str, request: pytest.FixtureRequest):
    from nbclient import NotebookClient

    if name.startswith(("02", "03")):
        request.getfixturevalue("crm_dir")  # skips where ../shared is absent
    nb = nbformat.read(repo_root / "notebooks" / name, as_version=4)
    client = NotebookClient(
        nb,
        timeout=1500,
        kernel_name="python3",
        resources={"metadata": {"path": str(repo_root / "notebooks")}},
    )
    client.execute()
    errors = [
        o for c in nb.cells if c.cell_type == "code" for o in c.outputs
        if o.get("output_type") == "error"
    ]
    assert errors == []
