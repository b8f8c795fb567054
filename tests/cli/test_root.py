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


def test_error_messages_keep_square_brackets(monkeypatch, capsys):
    # rich would swallow "[model]" as markup: the messages are printed escaped
    import simengine.cli as cli
    from simengine.errors import ConvergenceError

    def boom(**_: object) -> None:
        raise ConvergenceError("try more draws ([model] draws/tune)", ["x"])

    monkeypatch.setattr(cli, "app", boom)
    assert main(["fit"]) == 3
    err = capsys.readouterr().err
    assert "([model] draws/tune)" in err


def test_every_command_module_is_registered() -> None:
    """A new command module that is not listed in simengine/cli/__init__.py fails here."""
    import pkgutil

    import simengine.cli as cli

    public = {m.name for m in pkgutil.iter_modules(cli.__path__) if not m.name.startswith("_")}
    assert {m.__name__.rsplit(".", 1)[1] for m in cli.COMMAND_MODULES} == public
    names = {c.name for c in cli.app.registered_commands} | {
        g.name for g in cli.app.registered_groups
    }
    assert {"simulate", "history", "reforecast", "fit", "backtest"} <= names
