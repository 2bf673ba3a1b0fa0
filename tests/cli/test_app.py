from __future__ import annotations

from pathlib import Path

import pytest

from bastion import __version__
from bastion.cli.app import main


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"bastion {__version__}"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["no-such-command"], "No such command 'no-such-command'"),
        (["init", "-q"], "No such option: -q"),
        (["audit", "log", "--limit", "zero"], "Invalid value for '--limit'"),
    ],
)
def test_usage_errors_say_what_is_wrong_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Try 'bastion" in err
    assert "Traceback" not in err and "internal error" not in err


def test_bastion_errors_are_one_line_with_a_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BASTION_HOME", raising=False)
    assert main(["audit", "verify"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bastion: error: no Bastion workspace")
    assert "hint: run 'bastion init'" in err
    assert "Traceback" not in err


def test_debug_shows_the_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BASTION_HOME", raising=False)
    assert main(["--debug", "audit", "verify"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_init_twice_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", str(tmp_path)]) == 0
    assert "created workspace" in capsys.readouterr().err
    assert main(["init", str(tmp_path)]) == 2
    assert "already exists" in capsys.readouterr().err
