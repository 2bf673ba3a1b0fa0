"""``bastion scan`` through ``main``: output formats, exit codes, allowlist options."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
from pathlib import Path

import pytest

from bastion.cli.app import main


class Evil:
    def __init__(self, canary: Path) -> None:
        self.canary = canary

    def __reduce__(self) -> tuple[object, ...]:
        return os.system, (f"touch {self.canary}",)


@pytest.fixture
def models(tmp_path: Path, canary: Path) -> Path:
    root = tmp_path / "models"
    root.mkdir()
    (root / "ok.pkl").write_bytes(pickle.dumps({"w": [1.0, 2.0]}))
    (root / "bad.bin").write_bytes(pickle.dumps(Evil(canary)))
    (root / "custom.pkl").write_bytes(b"\x80\x02cmylib.models\nNet\n)R.")
    return root


def test_clean_file_exits_0(models: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", str(models / "ok.pkl")]) == 0
    assert "no findings" in capsys.readouterr().out


def test_json_report_and_exit_1(models: Path, canary: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", str(models), "--format", "json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["tool"] == "bastion scan"
    assert doc["summary"]["by_severity"]["critical"] == 1
    assert doc["summary"]["by_severity"]["high"] == 1
    critical = doc["findings"][0]
    assert critical["rule"] == "pickle.global.dangerous"
    assert critical["location"]["path"].endswith("bad.bin")
    assert critical["evidence"]["global"] == "posix.system"
    assert critical["principle"] == "2.2"
    assert critical["techniques"] == ["AML.T0010.003", "AML.T0011.000"]
    assert critical["remediation"]
    files = {Path(f["path"]).name: f for f in doc["summary"]["files"]}
    assert files["bad.bin"]["format"] == "pickle" and files["bad.bin"]["sha256"] is None
    assert not canary.exists()


def test_digest_binds_the_report_to_the_bytes(
    models: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["scan", str(models / "ok.pkl"), "--format", "json", "--digest"]) == 0
    sha256 = json.loads(capsys.readouterr().out)["summary"]["files"][0]["sha256"]
    assert sha256 == hashlib.sha256((models / "ok.pkl").read_bytes()).hexdigest()


def test_allow_and_fail_on(models: Path) -> None:
    custom = str(models / "custom.pkl")
    assert main(["scan", custom]) == 1
    assert main(["scan", custom, "--allow", "mylib.models.Net"]) == 0
    assert main(["scan", custom, "--fail-on", "critical"]) == 0


def test_policy_file(models: Path, tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('allow = ["mylib.models:Net"]\n')
    assert main(["scan", str(models / "custom.pkl"), "--policy", str(policy)]) == 0


def test_sarif_to_output_file(models: Path, tmp_path: Path) -> None:
    out = tmp_path / "scan.sarif"
    assert main(["scan", str(models), "--format", "sarif", "--output", str(out)]) == 1
    sarif = json.loads(out.read_text())
    assert sarif["version"] == "2.1.0"
    results = sarif["runs"][0]["results"]
    assert {r["ruleId"] for r in results} >= {"pickle.global.dangerous", "pickle.global.unknown"}


def test_junit_report_for_ci(models: Path, tmp_path: Path, canary: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    from junitparser import Failure, JUnitXml

    (models / "cut.pkl").write_bytes(pickle.dumps(list(range(50)))[:-9])  # truncated stream
    assert main(["scan", str(models), "--format", "junit"]) == 1
    out = capsys.readouterr().out
    (suite,) = list(JUnitXml.fromstring(out.encode()))
    cases = {(c.classname, Path(c.name.split(" ")[0]).name): c for c in suite}
    assert suite.name == "bastion scan"
    # the run's wall time, to the millisecond (a fast scan may round to 0.000)
    assert re.search(r'<testsuite [^>]*time="\d+\.\d{3}"', out)
    dangerous = cases["pickle.global.dangerous", "bad.bin"]
    assert isinstance(dangerous.result[0], Failure)
    assert "posix.system" in dangerous.result[0].message
    assert cases["bastion.scan", "ok.pkl"].is_passed
    (cut,) = [c for (_, name), c in cases.items() if name == "cut.pkl"]
    assert cut.is_error  # a file the scanner could not finish is never a pass
    assert suite.failures + suite.errors >= 3 and not canary.exists()
    # the exit code keeps following --fail-on; the report says what passed under it
    out = tmp_path / "scan.xml"
    assert main(["scan", str(models / "ok.pkl"), "--format", "junit", "--output",
                 str(out)]) == 0
    (clean,) = list(JUnitXml.fromfile(str(out)))
    assert (clean.tests, clean.failures, clean.errors) == (1, 0, 0)


@pytest.mark.parametrize("argv", [
    ["scan", "/no/such/path"],
    ["scan", ".", "--fail-on", "sometimes"],
    ["scan", ".", "--allow", "not valid"],
    ["scan", ".", "--policy", "/no/such/policy.toml"],
])
def test_errors_exit_2_with_a_message(argv: list[str], capsys: pytest.CaptureFixture[str],
                                      tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("bastion: error:") and "Traceback" not in err


def test_progress_bar_only_on_terminals() -> None:
    import io

    from rich.console import Console

    from bastion.cli._context import State
    from bastion.cli._scan import _progress

    piped = State(err=Console(file=io.StringIO()))
    with _progress(piped) as update:
        assert update is None  # pipes and files get no bar
    screen = io.StringIO()
    tty = State(err=Console(file=screen, force_terminal=True, width=80))
    with _progress(tty) as update:
        assert update is not None
        update(3, 7)
    assert "scanning" in screen.getvalue() and "3/7" in screen.getvalue()


def test_html_report(models: Path, tmp_path: Path, canary: Path) -> None:
    out = tmp_path / "scan.html"
    assert main(["scan", str(models), "--format", "html", "--output", str(out)]) == 1
    html = out.read_text()
    # The finding, where it is, and every file with its sniffed format.
    assert "pickle.global.dangerous" in html and "posix.system" in html
    assert f"{models / 'bad.bin'} @ " in html
    assert "<td>bad.bin</td>" not in html and f"<td>{models / 'ok.pkl'}</td>" in html
    assert "<td>pickle</td>" in html
    assert not canary.exists()


def test_html_needs_output(models: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", str(models / "ok.pkl"), "--format", "html"]) == 2
    assert "--format html needs --output FILE" in capsys.readouterr().err


def test_clean_scan_loads_no_heavy_library(models: Path) -> None:
    """Start-up is most of a scan's time: a clean scan must not import rich, jinja2, numpy,
    torch or the catalog's database stack (a table is only drawn when there are findings)."""
    import subprocess
    import sys

    code = ("import sys; from bastion.cli.app import main; rc = main(['scan', sys.argv[1]]); "
            "print(rc, sorted({m.split('.')[0] for m in sys.modules}))")
    out = subprocess.run([sys.executable, "-c", code, str(models / "ok.pkl")],
                         capture_output=True, text=True, check=True).stdout.splitlines()[-1]
    rc, loaded = out.split(" ", 1)
    assert rc == "0"
    for heavy in ("rich", "jinja2", "numpy", "torch", "sqlalchemy", "pydantic"):
        assert f"'{heavy}'" not in loaded, heavy


def test_table_with_output_names_the_file_formats(
    models: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["scan", str(models / "ok.pkl"), "--output", str(tmp_path / "r")]) == 2
    assert "--output needs --format json, sarif, junit or html" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


_COMMAND_LINES = [
    ["scan", "m.pt"],
    ["scan", "a", "b", "--format", "json"],
    ["scan", "--format=sarif", "a", "--output", "out.sarif"],
    ["--debug", "scan", "a"],
    ["scan", "a", "--fail-on", "critical", "--allow", "x.Y", "--allow=z.*", "--digest"],
    ["scan", "a", "--digest", "--no-digest", "--policy", "p.toml", "--format", "html",
     "--output", "r.html", "--format", "json"],
    ["scan", "a", "--fail-on=LOW", "--output=o"],
    ["scan", "a", "--format", "junit", "--output", "scan.xml"],
]


@pytest.mark.parametrize("argv", _COMMAND_LINES)
@pytest.mark.parametrize("env", [None, "sarif", "junit", ""])
def test_a_scan_command_line_is_read_as_typer_reads_it(
    argv: list[str], env: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reading without Typer (the fast start of ``bastion scan``) and Typer's own."""
    from bastion.cli import _scan, app

    if env is None:
        monkeypatch.delenv(_scan.FORMAT_ENV, raising=False)
    else:
        monkeypatch.setenv(_scan.FORMAT_ENV, env)
    seen: list[_scan.ScanArgs] = []
    monkeypatch.setattr(_scan, "run", lambda st, args: seen.append(args) or 0)
    assert app._typer_main(argv) == 0
    assert _scan.parse(argv) == seen[0]


@pytest.mark.parametrize("argv", [
    ["scan"], ["scan", "--help"], ["scan", "a", "--format", "xml"], ["scan", "a", "--", "-b"],
    ["scan", "a", "--output"], ["scan", "a", "--bogus"], ["--home", "h", "scan", "a"],
    ["scan", ""], ["scan", "a", "--digest=yes"], ["list"], [], ["scan", "-"],
])
def test_anything_else_is_left_to_typer(argv: list[str]) -> None:
    from bastion.cli import _scan

    assert _scan.parse(argv) is None


@pytest.mark.parametrize(("error", "code", "message"), [
    (KeyboardInterrupt(), 130, ""), (EOFError(), 2, "bastion: aborted"),
    (BrokenPipeError(32, "Broken pipe"), "exit 1", ""),
])
def test_a_scan_ends_as_a_typer_command_ends(
    error: BaseException, code: int | str, message: str, models: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from bastion.cli import _scan

    def fail(st: object, args: object) -> int:
        raise error

    monkeypatch.setattr(_scan, "run", fail)
    monkeypatch.setattr(sys, "stdout", sys.stdout)  # replaced on a closed pipe: put back
    monkeypatch.setattr(sys, "stderr", sys.stderr)
    if code == "exit 1":
        with pytest.raises(SystemExit) as exited:
            main(["scan", str(models)])
        assert exited.value.code == 1
    else:
        assert main(["scan", str(models)]) == code
    assert message in capsys.readouterr().err


def test_the_console_script_scans_then_exits(models: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    import gc
    import sys

    from bastion.cli import app

    frozen: list[bool] = []
    monkeypatch.setattr(gc, "freeze", lambda: frozen.append(True))  # not this test process
    monkeypatch.setattr(gc, "set_threshold", lambda *a: None)
    for argv in (["scan", str(models / "ok.pkl")], ["--version"]):  # only a scan freezes
        monkeypatch.setattr(sys, "argv", ["bastion", *argv])
        with pytest.raises(SystemExit) as exited:
            app.run()
        assert exited.value.code == 0 and frozen == [True]
    assert "no findings" in capsys.readouterr().out
