from __future__ import annotations

import subprocess
import sys

from simengine.cli import main


def test_version_command(capsys):
    assert main(["version"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("simengine ")
    assert "numba" in out


def test_unknown_command_exits_nonzero():
    assert main(["no-such-command"]) == 2


def test_console_script_runs():
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from simengine.cli import main; raise SystemExit(main(['--help']))",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0
    assert "version" in proc.stdout
