"""``simengine validate``: counts on the real export, exit status 2 and a report on bad input."""

from __future__ import annotations

from simengine.cli import main

SPEC = 'stages = ["mql", "sql", "won"]\nsegment_by = ["segment"]\npipeline_stage = "sql"\n'
HEADER = "id,segment,mql_at,sql_at,won_at,lost_at,amount"


def _flat(text: str) -> str:
    """Undo rich's line wrapping (the console is 80 columns wide in tests)."""
    return " ".join(text.split())


def _files(tmp_path, lines):
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC)
    data = tmp_path / "records.csv"
    data.write_text("\n".join([HEADER, *lines]) + "\n")
    return data, spec


def test_validate_crm_export(crm_dir, models_dir, capsys):
    code = main(
        [
            "validate",
            str(crm_dir / "sales_pipeline.csv"),
            "--model",
            str(models_dir / "crm-opportunities.toml"),
        ]
    )
    out = _flat(capsys.readouterr().out)
    assert code == 0
    assert "units: 8,300" in out
    assert "won: 4,238" in out
    assert "lost: 2,473" in out
    assert "open at 2017-12-31: 1,589" in out  # default as-of: the latest date in the file
    assert "2016-10-20 to 2017-12-31" in out
    assert "Central" in out
    assert "West" in out


def test_validate_as_of(tmp_path, capsys):
    data, spec = _files(
        tmp_path,
        [
            "a,smb,2024-01-01,2024-01-10,2024-02-01,,100",
            "b,mid,2024-01-02,,,2024-01-20,",
            "c,mid,2024-01-03,2024-01-05,,,",
        ],
    )
    assert main(["validate", str(data), "--model", str(spec), "--as-of", "2024-01-15"]) == 0
    out = _flat(capsys.readouterr().out)
    assert "units: 3" in out
    assert "open at 2024-01-15: 3" in out  # a won and b lost after 01-15
    assert main(["validate", str(data), "--model", str(spec)]) == 0
    assert "open at 2024-02-01: 1" in _flat(capsys.readouterr().out)


def test_validate_bad_input_exits_2_with_report(tmp_path, capsys):
    data, spec = _files(
        tmp_path,
        ["a,smb,2024-01-01,2024-01-10,2024-02-01,,", "a,,2024-01-05,2024-01-02,,,"],
    )
    before = data.read_bytes()
    assert main(["validate", str(data), "--model", str(spec)]) == 2
    err = _flat(capsys.readouterr().err)
    assert "row 2" in err
    assert "missing amount" in err
    assert "row 3" in err
    assert "duplicate id" in err
    assert "blank segment" in err
    assert "out of order" in err
    assert data.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["records.csv", "spec.toml"]


def test_validate_bad_as_of_and_missing_file(tmp_path, capsys):
    data, spec = _files(tmp_path, ["a,smb,2024-01-01,,,,"])
    assert main(["validate", str(data), "--model", str(spec), "--as-of", "31/01/2024"]) == 2
    assert "not an ISO date" in _flat(capsys.readouterr().err)
    assert main(["validate", str(tmp_path / "none.csv"), "--model", str(spec)]) == 2
    assert "file not found" in _flat(capsys.readouterr().err)
