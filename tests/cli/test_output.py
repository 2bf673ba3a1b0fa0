"""``emit_findings`` and ``--format``: every format a command offers renders, and one it cannot
render ends as a usage error that names the formats it has, never a traceback."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console
from tests.deps.conftest import EDGE_RECORDS, write_records

from bastion.cli._context import State
from bastion.cli._output import emit_findings
from bastion.cli.app import main
from bastion.errors import UsageError
from bastion.findings import Finding, Location, Principle, Severity
from bastion.report import OutputFormat
from bastion.report.junit import Checked
from bastion.store.workspace import init_workspace

FINDING = Finding(rule="pickle.global.dangerous", severity=Severity.HIGH, title="os.system",
                  principle=Principle.P2_2, location=Location("bad.pkl"))


def _state() -> tuple[State, io.StringIO]:
    out = io.StringIO()
    return State(out=Console(file=out), err=Console(file=io.StringIO())), out


def test_junit_is_rendered_with_the_checked_things_and_the_same_exit_code() -> None:
    st, out = _state()
    listed: list[str] = []

    def checked() -> list[Checked]:
        listed.append("called")
        return [Checked(Location("bad.pkl")), Checked(Location("good.onnx"))]

    code = emit_findings(st, [FINDING], tool="scan", fmt=OutputFormat.JUNIT,
                         fail_on=Severity.HIGH, summary={"elapsed_s": 0.5}, checked=checked)
    xml = out.getvalue()
    assert code == 1 and listed == ["called"]
    assert 'tests="2" failures="1" errors="0" skipped="0" time="0.500"' in xml
    assert 'name="good.onnx"' in xml
    assert emit_findings(st, [FINDING], tool="scan", fmt=OutputFormat.JUNIT,
                         fail_on=Severity.CRITICAL) == 0


def test_the_checked_things_are_listed_only_for_junit() -> None:
    st, out = _state()

    def checked() -> list[Checked]:
        raise AssertionError("listed for JSON")

    assert emit_findings(st, [FINDING], tool="scan", fmt=OutputFormat.JSON,
                         fail_on=Severity.HIGH, checked=checked) == 1
    assert json.loads(out.getvalue())["findings"][0]["rule"] == FINDING.rule


def test_a_format_a_command_lacks_names_the_formats_it_has() -> None:
    st, _ = _state()
    with pytest.raises(UsageError) as refused:
        emit_findings(st, [], tool="verify", fmt=OutputFormat.HTML, fail_on=Severity.HIGH)
    assert refused.value.hint == "use table, json, sarif or junit"
    with pytest.raises(UsageError) as refused:
        emit_findings(st, [], tool="verify", fmt=OutputFormat.TABLE, fail_on=Severity.HIGH,
                      output=Path("report"))
    assert refused.value.message == "--output needs --format json, sarif or junit"


def _profile_csv(tmp_path: Path) -> list[str]:
    path = tmp_path / "d.csv"
    path.write_text("x,label\n1,a\n2,b\n", encoding="utf-8")
    return ["data", "profile", str(path)]


def _audit_sample(tmp_path: Path) -> list[str]:
    path = tmp_path / "sample.csv"
    path.write_text("label,stratum_size,verdict\na,10,wrong\na,10,correct\nb,5,correct\n",
                    encoding="utf-8")
    return ["data", "audit-result", str(path)]


def _audit_log(tmp_path: Path) -> list[str]:
    home = tmp_path / "project"
    init_workspace(home, env={"BASTION_ACTOR": "tester"}).close()
    return ["--home", str(home / ".bastion"), "audit", "log"]


def _db_info(tmp_path: Path) -> list[str]:
    db = tmp_path / "index.sqlite"
    assert main(["deps", "db", "import", str(write_records(tmp_path / "v", EDGE_RECORDS[:1])),
                 "--db", str(db)]) == 0
    return ["deps", "db", "info", "--db", str(db)]


@pytest.mark.parametrize(("command", "formats"), [
    (_audit_log, "table or json"),
    (_db_info, "table or json"),
    (_profile_csv, "table, json or html"),
    (_audit_sample, "table or json"),
])
def test_commands_without_junit_refuse_it_with_a_usage_error(
    command: Callable[[Path], list[str]], formats: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("BASTION_HOME", raising=False)
    monkeypatch.delenv("BASTION_DATABASE_URL", raising=False)
    argv = command(tmp_path)
    capsys.readouterr()
    assert main([*argv, "--format", "junit"]) == 2
    err = capsys.readouterr().err
    assert "--format junit is not available" in err and formats in err
    assert "Traceback" not in err
